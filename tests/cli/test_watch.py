"""``-w/--watch`` as processes: the listing, then a line per change, in each format; on
a terminal, the table then changes, and Ctrl-C ends it cleanly (exit 0)."""

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
from tests.conftest import ROOT, DaemonProcess
from tests.redis_server import RedisServer
from tests.server.live_client import connect

pytestmark = pytest.mark.anyio


async def test_watch_prints_each_change_as_json_lines(
    daemon: DaemonProcess, tmp_path: Path
) -> None:
    first = await connect(daemon, "alice")
    watch = Tail(["sessions", "list", "-w", "-o", "json"], cli_env(daemon.url, tmp_path))
    try:
        listed = json.loads(await watch.line())
        assert listed == {"type": "ADDED", "object": listed["object"]}
        assert listed["object"]["sid"] == first.sid
        second = await connect(daemon, "bob")
        added = json.loads(await watch.line())
        assert (added["type"], added["object"]["sid"]) == ("ADDED", second.sid)
        await first.call("heartbeat", {})  # last_seen_at alone is no news
        await second.close()
        gone = json.loads(await watch.line())
        assert (gone["type"], gone["object"]["sid"]) == ("DELETED", second.sid)
    finally:
        assert watch.stop() == 0  # Ctrl-C is the way out of a watch
        await first.close()


async def test_watch_as_tab_separated_and_names(daemon: DaemonProcess, tmp_path: Path) -> None:
    env = cli_env(daemon.url, tmp_path)
    users = Tail(["users", "online", "-w"], env)
    names = Tail(["rooms", "list", "-w", "-q"], env)
    carol = None
    try:
        await asyncio.sleep(1.5)  # both have read the (empty) listing
        carol = await connect(daemon, "carol", name="Carol")
        assert (await users.line()).rstrip("\n").split("\t")[:4] == ["ADDED", "carol", "Carol", "1"]
        assert await names.line() == "ADDED\tuser:carol\n"
        again = await connect(daemon, "carol", name="Carol")
        assert (await users.line()).rstrip("\n").split("\t")[:4] == [
            "MODIFIED",
            "carol",
            "Carol",
            "2",
        ]
        await again.close()
    finally:
        if carol is not None:
            await carol.close()
        assert users.stop() == 0 and names.stop() == 0


def test_watch_on_a_terminal_ends_cleanly_on_ctrl_c(hub: DaemonProcess, tmp_path: Path) -> None:
    env = cli_env(hub.url, tmp_path, TERM="xterm-256color")
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "rtctl", "nodes", "list", "--watch"],
        stdin=slave, stdout=slave, stderr=subprocess.PIPE, env=env, cwd=ROOT,
        start_new_session=True,
    )  # fmt: skip
    os.close(slave)
    text = b""
    deadline = time.monotonic() + 20
    while b"HOST" not in text and time.monotonic() < deadline:
        text += os.read(master, 65536)
    os.killpg(proc.pid, signal.SIGINT)  # what the terminal sends on Ctrl-C
    code = proc.wait(10)
    os.close(master)
    err = proc.stderr.read().decode() if proc.stderr else ""
    assert b"HOST" in text and code == 0 and "Traceback" not in err, err


async def test_watch_on_redis_sees_a_node_die(
    make_daemon: Any, redis_server: RedisServer, tmp_path: Path
) -> None:
    d = make_daemon(RTCTL_REDIS_URL=redis_server.url, RTCTL_PREFIX="wn", RTCTL_NODE_ID="node-w",
                    RTCTL_NODE_TTL="2")  # fmt: skip
    env = cli_env("http://127.0.0.1:9", tmp_path, RTCTL_REDIS_URL=redis_server.url,
                  RTCTL_PREFIX="wn", RTCTL_NODE_TTL="2", RTCTL_ADMIN_TOKEN="")  # fmt: skip
    watch = Tail(["nodes", "list", "-w", "-o", "json"], env)
    try:
        assert json.loads(await watch.line())["object"]["id"] == "node-w"
        d.stop(signal.SIGKILL)
        gone = json.loads(await watch.line())
        assert (gone["type"], gone["object"]["id"]) == ("DELETED", "node-w")
    finally:
        assert watch.stop() == 0
