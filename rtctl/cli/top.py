"""``rtctl top``: live rates per node and the busiest rooms, until Ctrl-C.

Each node counts what it does (events from clients, emits to clients, deliveries to
sessions, connects) and writes the counts into its record with every heartbeat
(every 5 s at most). ``top`` reads the records (through the admin API embedded, from
Redis otherwise) every ``--interval`` seconds; a node's rates are the change in its
counts between its two latest heartbeats. The busiest rooms are those with the most
members, on every node.
"""

from __future__ import annotations

import sys
import time
from typing import Annotated, Any

import typer

from rtctl.cli.common import Invocation, command
from rtctl.cli.output import inert, json_line
from rtctl.cli.remote import Record, Remote

app = typer.Typer()

RATES = ("events_in", "events_out", "deliveries", "connects")
HEADERS = ("NODE", "SESSIONS", "IN/S", "OUT/S", "DELIVERIES/S", "CONNECTS/S")
BUSIEST = 10


class Rates:
    """Per node: its rates over its last heartbeat interval."""

    def __init__(self) -> None:
        self.seen: dict[str, Record] = {}  # node -> the record the rates were taken at
        self.rates: dict[str, dict[str, float]] = {}

    def update(self, nodes: list[Record]) -> list[Record]:
        rows = []
        for node in nodes:
            before = self.seen.get(node["id"])
            at = _epoch(node.get("last_seen_at"))
            if before is not None and at > _epoch(before.get("last_seen_at")):
                span = at - _epoch(before.get("last_seen_at"))
                now, then = node.get("stats") or {}, before.get("stats") or {}
                self.rates[node["id"]] = {
                    k: max(0.0, (now.get(k, 0) - then.get(k, 0)) / span) for k in RATES
                }
            if before is None or at > _epoch(before.get("last_seen_at")):
                self.seen[node["id"]] = node
            rates = self.rates.get(node["id"])
            rows.append({"node": node["id"], "sessions": node.get("sessions", 0),
                         **{f"{k}_per_s": None if rates is None else round(rates[k], 1)
                            for k in RATES}})  # fmt: skip
        return rows


def _epoch(iso_time: Any) -> float:
    from datetime import datetime

    try:
        return datetime.fromisoformat(str(iso_time).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


@command(app, "top", shared=("output", "no_color"))
def top(
    inv: Invocation,
    interval: Annotated[
        float, typer.Option("--interval", min=0.2, help="Seconds between two readings.")
    ] = 2.0,
) -> None:
    """Show live rates per node and the busiest rooms, until Ctrl-C.

    Rates are per second over each node's last heartbeat interval (5 s), so they
    appear one heartbeat after top starts. -o json prints one object per reading:
    {at, nodes: [{node, sessions, events_in_per_s, …}], rooms: [{room, members, nodes}]}.

    \b
    Examples:
      rtctl top
      rtctl top -o json --interval 5 | jq '.nodes[] | .deliveries_per_s'
    """
    remote, rates = inv.remote(), Rates()
    try:
        if inv.format in ("table", "wide"):
            _live(inv, remote, rates, interval)
        else:
            while True:
                _print(inv, _reading(remote, rates))
                time.sleep(interval)
    except KeyboardInterrupt:
        return  # the way out of top: not an error


def _reading(remote: Remote, rates: Rates) -> Record:
    rooms = sorted(remote.rooms(), key=lambda r: (-int(r.get("members", 0)), r.get("room", "")))
    return {"at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "nodes": rates.update(remote.nodes()), "rooms": rooms[:BUSIEST]}  # fmt: skip


def _print(inv: Invocation, reading: Record) -> None:
    if inv.format == "json":
        sys.stdout.write(json_line(reading))
    else:  # one line per node, then per room, each led by the reading's time
        for row in reading["nodes"]:
            cells = [_cell(row.get(f"{k}_per_s")) for k in RATES]
            sys.stdout.write("\t".join([reading["at"], "node", inert(row["node"]),
                                        str(row["sessions"]), *cells]) + "\n")  # fmt: skip
        for room in reading["rooms"]:
            sys.stdout.write(f"{reading['at']}\troom\t{inert(room['room'])}\t{room['members']}\n")
    sys.stdout.flush()


def _cell(value: Any) -> str:
    return "-" if value is None else f"{value:g}"


def _live(inv: Invocation, remote: Remote, rates: Rates, interval: float) -> None:
    from rich.console import Console, Group
    from rich.live import Live
    from rich.table import Table
    from rich.text import Text

    console = Console(no_color=inv.no_color or None)
    with Live(console=console, auto_refresh=False, transient=False) as live:
        while True:
            reading = _reading(remote, rates)
            nodes = Table(*HEADERS, title=f"rtctl top  {reading['at']}", title_justify="left")
            for row in reading["nodes"]:
                nodes.add_row(Text(row["node"], no_wrap=True), str(row["sessions"]),
                              *(_cell(row.get(f"{k}_per_s")) for k in RATES))  # fmt: skip
            rooms = Table("BUSIEST ROOMS", "MEMBERS", "NODES")
            for room in reading["rooms"]:
                rooms.add_row(Text(room["room"], no_wrap=True), str(room["members"]),
                              Text(",".join(room.get("nodes") or [])))  # fmt: skip
            live.update(Group(nodes, rooms), refresh=True)
            time.sleep(interval)
