"""Listing commands: JSON field names, empty lists, ids, tab-separated text."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.cli.conftest import Cli
from tests.conftest import DaemonProcess

pytestmark = pytest.mark.anyio

SESSION_FIELDS = ["sid", "user_id", "user_name", "node", "rooms", "connected_at", "last_seen_at"]
NODE_FIELDS = ["id", "host", "pid", "version", "started_at", "last_seen_at", "sessions"]


def test_nodes_list_formats(cli: Cli) -> None:
    nodes = cli("nodes", "list", "-o", "json")
    assert nodes.code == 0, nodes.err
    [node] = nodes.json()
    assert list(node) == NODE_FIELDS
    assert node["started_at"].endswith("Z")  # ISO 8601 UTC
    assert cli("nodes", "list", "-o", "name").lines == [node["id"]]
    assert cli("nodes", "list", "-q").lines == [node["id"]]
    plain = cli("nodes", "list")  # stdout is a pipe: tab-separated, no header, no colour
    [line] = plain.lines
    assert line.split("\t")[:3] == [node["id"], node["host"], str(node["pid"])]
    assert "\x1b" not in plain.out
    assert len(cli("nodes", "list", "-o", "wide").lines[0].split("\t")) == 7


def test_empty_lists(cli: Cli) -> None:
    for args in (("sessions", "list"), ("usage", "list"), ("rooms", "list")):
        filtered = ("--user", "nobody-here") if args[0] == "sessions" else ()
        assert cli(*args, *filtered, "-o", "json").out == "[]\n"
        empty = cli(*args, *filtered)
        assert (empty.code, empty.out) == (0, "")
    assert cli("sessions", "list", "--user", "nobody-here", "-o", "name").out == ""


async def test_sessions_rooms_users_usage(hub: DaemonProcess, acli: Any, connect: Any) -> None:
    alice = await connect(hub.token("lister", name="Lister", channels=["general"]))
    joined = await alice.sio.call("channel:join", {"channel_id": "general"}, timeout=5)
    assert joined["ok"] is True
    await alice.sio.emit("usage", {"model": "m-listing"})

    sessions = (await acli("sessions", "list", "--user", "lister", "-o", "json")).json()
    assert [list(s) for s in sessions] == [SESSION_FIELDS]
    assert sessions[0]["sid"] == alice.sid
    assert sessions[0]["user_name"] == "Lister"
    assert sessions[0]["rooms"] == ["channel:general", "user:lister"]

    in_room = await acli("sessions", "list", "--room", "channel:general", "-q")
    assert alice.sid in in_room.lines
    plain = (await acli("sessions", "list", "--user", "lister")).lines
    assert plain[0].split("\t")[:3] == [alice.sid, "lister", "Lister"]
    assert plain[0].split("\t")[-1] == "channel:general,user:lister"

    members = await acli("rooms", "members", "user:lister", "-o", "json")
    assert [m["sid"] for m in members.json()] == [alice.sid]
    rooms = (await acli("rooms", "list", "-o", "json")).json()
    node = rooms[0]["nodes"][0]
    assert {"room": "user:lister", "members": 1, "nodes": [node]} in rooms
    assert "channel:general" in (await acli("rooms", "list", "-o", "name")).lines

    users = (await acli("users", "online", "-o", "json")).json()
    assert {"user_id": "lister", "user_name": "Lister", "sessions": 1, "nodes": [node]} in users
    assert f"lister\tLister\t1\t{node}" in (await acli("users", "online", "-o", "wide")).lines

    async def usage() -> list[dict[str, Any]]:
        marks = (await acli("usage", "list", "-o", "json")).json()
        return [u for u in marks if u["model"] == "m-listing"]

    found = await usage()
    for _ in range(20):
        if found:
            break
        await asyncio.sleep(0.1)
        found = await usage()
    assert list(found[0]) == ["model", "count", "sessions", "updated_at"]
    assert found[0]["sessions"] == [alice.sid]


def test_unknown_room_exits_3(cli: Cli) -> None:
    missing = cli("rooms", "members", "channel:nobody")
    assert missing.code == 3
    assert missing.out == ""
    assert missing.err.count("\n") == 1 and missing.err.startswith("rtctl: ")
