"""``rtctl top`` as a process: rates per node from the nodes' own counts, the busiest
rooms, one JSON object per reading off a terminal, a live table on one; Ctrl-C ends
it with exit 0."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.cli.conftest import cli_env
from tests.cli.test_tail import Tail
from tests.conftest import ROOT
from tests.server.live_client import connect

pytestmark = pytest.mark.anyio


async def test_top_reports_rates_and_rooms_as_json_lines(make_daemon: Any, tmp_path: Path) -> None:
    d = make_daemon(RTCTL_NODE_TTL="1.5")  # a heartbeat every 0.5 s
    alice = await connect(d, "alice", channels=["busy"])
    top = Tail(["top", "-o", "json", "--interval", "0.3"], cli_env(d.url, tmp_path))
    try:
        await alice.call("channel:join", {"channel_id": "busy"})
        deadline, reading = time.monotonic() + 15, {}
        while time.monotonic() < deadline:
            for _ in range(20):
                await alice.call("heartbeat", {})
            reading = json.loads(await top.line())
            [node] = reading["nodes"]
            if (node["events_in_per_s"] or 0) > 0:
                break
        [node] = reading["nodes"]
        assert node["events_in_per_s"] > 0 and node["sessions"] == 1, reading
        assert {"room": "channel:busy", "members": 1, "nodes": [node["node"]]} in reading["rooms"]
    finally:
        assert top.stop() == 0
        await alice.close()


def test_top_on_a_terminal_ends_cleanly_on_ctrl_c(make_daemon: Any, tmp_path: Path) -> None:
    d = make_daemon()
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "rtctl", "top", "--interval", "0.3"],
        stdin=slave, stdout=slave, stderr=subprocess.PIPE, cwd=ROOT, start_new_session=True,
        env=cli_env(d.url, tmp_path, TERM="xterm-256color", COLUMNS="120"),
    )  # fmt: skip
    os.close(slave)
    text, deadline = b"", time.monotonic() + 20
    while b"BUSIEST ROOMS" not in text and time.monotonic() < deadline:
        text += os.read(master, 65536)
    os.killpg(proc.pid, signal.SIGINT)
    code = proc.wait(10)
    os.close(master)
    err = proc.stderr.read().decode() if proc.stderr else ""
    assert b"BUSIEST ROOMS" in text and b"DELIVERIES/S" in text, text[-500:]
    assert code == 0 and "Traceback" not in err, err


async def test_node_records_carry_their_counts(make_daemon: Any) -> None:
    d = make_daemon(RTCTL_NODE_TTL="1.5")
    alice = await connect(d, "alice")
    try:
        await alice.call("heartbeat", {})
        await asyncio.sleep(1.2)
        [node] = d.http("GET", "/api/v1/nodes")[1]
        assert set(node["stats"]) == {"events_in", "events_out", "deliveries", "connects",
                                      "loop_lag_ms", "connections"}  # fmt: skip
        assert node["stats"]["connects"] >= 1 and node["stats"]["events_in"] >= 1
    finally:
        await alice.close()
