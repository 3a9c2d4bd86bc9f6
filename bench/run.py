"""Benchmark rtctl against a reference Node socket.io server and plain python-socketio.

Every scenario runs against every target back to back in this one invocation, each on a fresh
server, and the table reports absolute numbers plus ratios against Node: on a shared machine
only the side-by-side ratios mean much.

  python bench/run.py [--targets node,pysio,rtctl] [--quick] [--profile DIR] [--json FILE]
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import resource
import select
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stacks import summarise
from targets import (
    BENCH,
    TARGETS,
    VENV_BIN,
    Server,
    cpu_seconds,
    footer,
    kill_all,
    kill_group,
    measured_run,
    rss_kib,
    running,
    spawn,
)

Result = dict[str, Any]
CLIENTS_JS = str(BENCH / "clients.js")


def json_lines(proc: subprocess.Popen[bytes], deadline: float) -> Iterator[Result]:
    """JSON objects printed by a clients.js process, one per line, until EOF or the deadline."""
    assert proc.stdout is not None
    fd, buf = proc.stdout.fileno(), b""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("load generator did not finish in time")
        if not select.select([fd], [], [], left)[0]:
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            return
        *lines, buf = (buf + chunk).split(b"\n")
        yield from (json.loads(line) for line in lines if line.strip())


def clients(server: Server, mode: str, opts: list[str], deflate: bool, timeout: float) -> list[str]:
    argv = ["node", CLIENTS_JS, mode, "--url", server.url, "--token", server.token, *opts]
    return [*argv, "--timeout", str(int(timeout)), *(["--deflate"] if deflate else [])]


def load(
    server: Server, argv: list[str], timeout: float, on_phase: Callable[[str], None]
) -> Result:
    """Run one load generator to completion; on_phase is called at its start/end marks."""
    proc = spawn(argv, stdout=subprocess.PIPE)
    try:
        result: Result = {}
        for msg in json_lines(proc, time.monotonic() + timeout + 60):
            if "phase" in msg:
                on_phase(msg["phase"])
            else:
                result = msg
        if not result:
            raise RuntimeError(f"load generator exited with {proc.wait()} and no result")
        return result
    finally:
        kill_group(proc)


@dataclass
class Window:
    """Server CPU and wall time between the load generator's start and end marks, and an
    optional py-spy recording of that window."""

    server: Server
    profile: Path | None = None
    marks: dict[str, tuple[float, float, float]] = field(default_factory=dict)
    spy: subprocess.Popen[bytes] | None = None

    def __call__(self, phase: str) -> None:
        self.marks[phase] = (time.monotonic(), *cpu_seconds(self.server.pid))
        if phase == "start" and self.profile:
            # --native shows C time (GC, syscalls, uvloop); it pauses the server per sample.
            spy = [str(VENV_BIN / "py-spy"), "record", "--pid", str(self.server.pid), "--native"]
            spy += ["--rate", "100", "--format", "raw", "-o", str(self.profile)]
            self.spy = spawn(spy, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if phase == "end" and self.spy:
            self.spy.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
            self.spy.wait(30)
            kill_group(self.spy)

    def server_cpu(self, res: Result) -> tuple[float, float]:
        """(server CPU seconds, wall seconds) of the measured window; adds both to res."""
        assert "end" in self.marks, "load generator printed no start/end marks"
        (t0, u0, s0), (t1, u1, s1) = self.marks["start"], self.marks["end"]
        res |= {"server_user_s": u1 - u0, "server_sys_s": s1 - s0, "window_s": t1 - t0}
        return (u1 - u0) + (s1 - s0), t1 - t0


def fanout(server: Server, args: argparse.Namespace) -> Result:
    profile = None
    if args.profile and server.name != "node":
        profile = args.profile / f"{server.name}-fanout.txt"
    win = Window(server, profile)
    opts = ["--clients", args.clients, "--messages", args.messages, "--window", args.window]
    res = load(server, clients(server, "fanout", opts, args.deflate, 120), 120, win)
    cpu, wall = win.server_cpu(res)
    res |= {"server_util": cpu / wall, "client_util": res["client_cpu_s"] / res["wall_s"]}
    res["server_us_per_delivery"] = cpu / max(1, res["received"]) * 1e6
    if profile and profile.exists():
        res["profile"] = str(profile)
    return res


def echo(server: Server, args: argparse.Namespace) -> Result:
    win = Window(server)
    opts = ["--clients", args.echo_clients, "--seconds", args.seconds, "--warmup", args.warmup]
    res = load(server, clients(server, "echo", opts, args.deflate, 60), 60, win)
    cpu, wall = win.server_cpu(res)
    res |= {"server_util": cpu / wall, "client_util": res["client_cpu_s"] / wall}
    res["server_us_per_rt"] = cpu / max(1, res["round_trips"]) * 1e6
    return res


def hold(server: Server, n: int, args: argparse.Namespace) -> subprocess.Popen[bytes]:
    """Start a clients.js process that opens n idle connections and holds them."""
    argv = clients(server, "idle", ["--clients", str(n)], args.deflate, 90)
    return spawn(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)


def opened(proc: subprocess.Popen[bytes]) -> Result:
    """The holder's report once it is done connecting: clients, connect_s, connect_errors."""
    return next(json_lines(proc, time.monotonic() + 120))


def settled_rss(pid: int, wait: float = 2.0) -> int:
    time.sleep(wait)
    return rss_kib(pid)


def idle(server: Server, args: argparse.Namespace) -> Result:
    """Server RSS with no clients, then with 1k, then with `--idle` idle connections."""
    holders: list[subprocess.Popen[bytes]] = []
    try:
        warm = hold(server, 20, args)  # the first connections import and allocate lazily
        opened(warm)
        kill_group(warm)
        base = settled_rss(server.pid)
        holders.append(hold(server, 1000, args))
        n1 = opened(holders[0])["clients"]
        rss1 = settled_rss(server.pid)
        res: Result = {"base_kib": base, "conns_1k": n1, "kib_per_conn_1k": (rss1 - base) / n1}
        if (rest := args.idle - n1) > 0:
            # The connect phase is a window of its own: server CPU per connect, and a profile.
            profile = None
            if args.profile and server.name != "node":
                profile = args.profile / f"{server.name}-connect.txt"
            win = Window(server, profile)
            win("start")
            # Two processes: one Node process is CPU-bound opening ~10k sockets.
            more = [hold(server, part, args) for part in (rest // 2, rest - rest // 2)]
            holders += more
            reports = [opened(proc) for proc in more]
            win("end")
            n2 = n1 + sum(r["clients"] for r in reports)
            cpu, _ = win.server_cpu(res)
            res["server_us_per_connect"] = cpu / max(1, n2 - n1) * 1e6
            if profile and profile.exists():
                res["connect_profile"] = str(profile)
            rss2 = settled_rss(server.pid, 3.0)
            res |= {
                "conns_max": n2,
                "wanted_max": args.idle,
                "kib_per_conn_max": (rss2 - base) / n2,
            }
            res["connects_per_s"] = (n2 - n1) / max(r["connect_s"] for r in reports)
            res["connect_errors"] = [r["connect_errors"] for r in reports if r["connect_errors"]]
        return res
    finally:
        for proc in holders:
            kill_group(proc)


SCENARIOS: dict[str, Callable[[Server, argparse.Namespace], Result]] = {
    "fanout": fanout,
    "echo": echo,
    "idle": idle,
}


def run_all(args: argparse.Namespace) -> dict[str, dict[str, Result]]:
    """results[scenario][target]; a failing target records its error and the run goes on."""
    results: dict[str, dict[str, Result]] = {}
    with tempfile.TemporaryDirectory(prefix="rtctl-bench-") as tmp:
        for scenario in args.scenarios:
            for name in args.targets:
                scratch = Path(tmp) / f"{scenario}-{name}"
                scratch.mkdir()
                print(f"{scenario:>6} / {name:<5} ...", end=" ", file=sys.stderr, flush=True)
                try:
                    with running(name, scratch) as server:
                        res = SCENARIOS[scenario](server, args)
                except Exception as exc:
                    res = {"error": f"{type(exc).__name__}: {exc}"}
                results.setdefault(scenario, {})[name] = res
                print(brief(res), file=sys.stderr, flush=True)
    return results


def brief(res: Result) -> str:
    keys = ("deliveries_per_s", "round_trips_per_s", "kib_per_conn_1k", "kib_per_conn_max")
    shown = [f"{k}={res[k]:,.1f}" for k in keys if k in res]
    return res.get("error", "").splitlines()[0][:200] if "error" in res else " ".join(shown)


def sys_share(res: Result) -> float:
    return float(res["server_sys_s"] / (res["server_user_s"] + res["server_sys_s"]))


def utilisation(res: Result) -> str:
    """Share of one core used by the server and by the load generator (1 core = 100%)."""
    return f"{res['server_util']:.0%} / {res['client_util']:.0%}"


Row = tuple[str, str, Callable[[Result], Any], str]
ROWS: list[Row] = [
    ("fanout", "deliveries/s", lambda r: r["deliveries_per_s"], ",.0f"),
    ("fanout", "delivery latency p50 ms", lambda r: r["p50_ms"], ".1f"),
    ("fanout", "delivery latency p99 ms", lambda r: r["p99_ms"], ".1f"),
    ("fanout", "server CPU µs/delivery", lambda r: r["server_us_per_delivery"], ".2f"),
    ("fanout", "server CPU in kernel (sys)", sys_share, ".0%"),
    ("fanout", "server / client CPU util", utilisation, ""),
    ("fanout", "delivered / expected", lambda r: f"{r['received']}/{r['expected']}", ""),
    ("echo", "round trips/s", lambda r: r["round_trips_per_s"], ",.0f"),
    ("echo", "round trip p50 ms", lambda r: r["p50_ms"], ".2f"),
    ("echo", "round trip p99 ms", lambda r: r["p99_ms"], ".2f"),
    ("echo", "server CPU µs/round trip", lambda r: r["server_us_per_rt"], ".1f"),
    ("echo", "server CPU in kernel (sys)", sys_share, ".0%"),
    ("echo", "server / client CPU util", utilisation, ""),
    ("idle", "server RSS, no clients MiB", lambda r: r["base_kib"] / 1024, ".1f"),
    ("idle", "RSS KiB/conn @1k", lambda r: r["kib_per_conn_1k"], ".1f"),
    ("idle", "RSS KiB/conn @max", lambda r: r["kib_per_conn_max"], ".1f"),
    ("idle", "connections @max", lambda r: f"{r['conns_max']}/{r['wanted_max']}", ""),
    ("idle", "connects/s (2 clients)", lambda r: r["connects_per_s"], ",.0f"),
    ("idle", "server CPU µs/connect", lambda r: r["server_us_per_connect"], ",.0f"),
    ("idle", "server CPU in kernel (sys)", sys_share, ".0%"),
]


def ratio(value: Any, node: Any) -> str:
    if isinstance(value, float | int) and isinstance(node, float | int) and node:
        return f"{value / node:.2f}x"
    return ""


def table(results: dict[str, dict[str, Result]], names: list[str]) -> str:
    others = [n for n in names if n != "node"] if "node" in names else []
    header = ["scenario", "metric", *names, *(f"{n}/node" for n in others)]
    lines = []
    for scenario, label, get, fmt in ROWS:
        if scenario not in results:
            continue
        cells, raw = [], {}
        for name in names:
            res = results[scenario].get(name, {})
            try:
                raw[name] = get(res)
                cells.append(format(raw[name], fmt))
            except (KeyError, TypeError, ZeroDivisionError):
                cells.append("error" if "error" in res else "n/a")
        for name in others:
            cells.append(ratio(raw.get(name), raw.get("node")))
        if any(c not in ("n/a", "") for c in cells):
            lines.append([scenario, label, *cells])
    widths = [max(len(str(c)) for c in col) for col in zip(header, *lines, strict=True)]
    fmt_row = " | ".join(f"{{:{'<' if i < 2 else '>'}{w}}}" for i, w in enumerate(widths))
    rule = "-|-".join("-" * w for w in widths)
    return "\n".join([fmt_row.format(*header), rule, *(fmt_row.format(*r) for r in lines)])


def raise_fd_limit(wanted: int) -> int:
    """Raise the soft fd limit to the hard one (children inherit it); return the new limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < wanted:
        print(f"note: fd hard limit {hard} < {wanted}; idle connections capped", file=sys.stderr)
    return hard


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--targets", default="node,pysio,rtctl", help="comma-separated: %(default)s")
    p.add_argument("--scenarios", default="fanout,echo,idle", help="comma-separated")
    p.add_argument("--clients", type=int, default=1000, help="fan-out channel members")
    p.add_argument("--messages", type=int, default=200, help="fan-out messages sent")
    p.add_argument("--window", type=int, default=4, help="fan-out messages in flight")
    p.add_argument("--echo-clients", type=int, default=50)
    p.add_argument("--seconds", type=float, default=5.0, help="echo measuring time")
    p.add_argument("--warmup", type=float, default=1.0, help="echo warmup, not measured")
    p.add_argument("--idle", type=int, default=10_000, help="most idle connections to open")
    p.add_argument("--deflate", action="store_true", help="clients offer permessage-deflate")
    p.add_argument("--quick", action="store_true", help="~30 s smoke run: fewer of everything")
    p.add_argument("--profile", type=Path, help="py-spy Python servers: fan-out, idle connects")
    p.add_argument("--json", type=Path, help="also write all raw results here")
    args = p.parse_args(argv)
    if args.quick:
        args.messages, args.seconds, args.warmup, args.idle = 100, 2.0, 0.5, 1000
        args.clients = min(args.clients, 500)
    args.targets = [t for t in args.targets.split(",") if t]
    args.scenarios = [s for s in args.scenarios.split(",") if s]
    for bad in set(args.targets) - set(TARGETS) | set(args.scenarios) - set(SCENARIOS):
        p.error(f"unknown target or scenario: {bad}")
    for name in ("clients", "messages", "window", "echo_clients", "seconds", "warmup"):
        setattr(args, name, str(getattr(args, name)))  # handed to clients.js as argv
    return args


def main() -> None:
    args = parse_args()
    atexit.register(kill_all)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwind: finally blocks kill
    args.idle = max(1000, min(args.idle, raise_fd_limit(args.idle + 500) - 500))
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    results, meta = measured_run(args.targets, lambda: run_all(args),
                                 "every server and load generator was")  # fmt: skip
    print(table(results, args.targets))
    footer(meta, args.targets, "ratios are target/node.")
    for scenario, by_target in results.items():
        for name, res in by_target.items():
            if "error" in res:
                print(f"{scenario}/{name}: {res['error']}")
            if "server_errors" in res:
                print(f"{scenario}/{name}: server sent `error` events: {res['server_errors']}")
            for key, buckets in (("profile", "fanout"), ("connect_profile", "connect")):
                if key in res:
                    print(f"\n{summarise(Path(res[key]), buckets=buckets)}")
    if args.json:
        args.json.write_text(json.dumps({"meta": meta, **results}, indent=2))


if __name__ == "__main__":
    main()
