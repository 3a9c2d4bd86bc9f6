"""``rtctl events tail`` and ``rtctl tasks tail`` as processes: embedded through the
admin API, and in Redis mode straight off Redis with the event on another daemon."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.cli.conftest import cli_env, run_cli
from tests.conftest import ADMIN, ROOT, DaemonProcess
from tests.redis_server import RedisServer
from tests.server.live_client import connect, until
from tests.tasks.test_tasks_embedded import LONG, completions

pytestmark = pytest.mark.anyio


class Tail:
    """A ``rtctl … tail`` process; its stdout read line by line."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "rtctl", *args], env=env, cwd=ROOT,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip

    async def stderr_line(self) -> str:
        assert self.proc.stderr is not None
        return await asyncio.wait_for(asyncio.to_thread(self.proc.stderr.readline), 20)

    async def line(self) -> str:
        assert self.proc.stdout is not None
        return await asyncio.wait_for(asyncio.to_thread(self.proc.stdout.readline), 20)

    async def finish(self) -> tuple[int, str, str]:
        out, err = await asyncio.to_thread(self.proc.communicate, timeout=30)
        return self.proc.returncode, out, err

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return -9


async def follow_and_emit(env: dict[str, str], emit_env: dict[str, str]) -> list[dict[str, Any]]:
    tail = Tail(["events", "tail", "--user", "alice", "-o", "json"], env)
    try:
        assert "following user:alice" in await tail.stderr_line()
        for n in (1, 2):
            sent = await asyncio.to_thread(
                run_cli, ["emit", "events", json.dumps({"n": n, "evil": "\x1b[2J"}),
                          "--user", "alice"], emit_env)  # fmt: skip
            assert sent.code == 0, sent.err
        lines = [await tail.line(), await tail.line()]
        assert "\x1b" not in "".join(lines)  # escapes stay escaped
        return [json.loads(line) for line in lines]
    finally:
        assert tail.stop() == 0  # Ctrl-C is the way out of a tail


async def test_events_tail_embedded(daemon: DaemonProcess, tmp_path: Path) -> None:
    alice = await connect(daemon, "alice")
    try:
        env = cli_env(daemon.url, tmp_path)
        got = await follow_and_emit(env, env)
        assert [(r["room"], r["event"], r["data"]["n"]) for r in got] == [
            ("user:alice", "events", 1), ("user:alice", "events", 2)]  # fmt: skip
        assert got[0]["data"]["evil"] == "\x1b[2J" and got[0]["at"].endswith("Z")
        assert await alice.next_event("events")  # the session got them too
    finally:
        await alice.close()


async def test_events_tail_on_redis_with_no_daemon_asked(
    make_daemon: Any, redis_server: RedisServer, tmp_path: Path
) -> None:
    a = make_daemon(RTCTL_REDIS_URL=redis_server.url, RTCTL_PREFIX="tl", RTCTL_NODE_ID="node-a")
    alice = await connect(a, "alice")
    try:
        env = cli_env("http://127.0.0.1:9", tmp_path, RTCTL_REDIS_URL=redis_server.url,
                      RTCTL_PREFIX="tl", RTCTL_ADMIN_TOKEN="")  # fmt: skip
        got = await follow_and_emit(env, env)
        assert [r["data"]["n"] for r in got] == [1, 2]
    finally:
        await alice.close()


async def tail_a_task(
    d: DaemonProcess, env: dict[str, str], *extra: str, deltas: bool = False
) -> tuple[int, str, str]:
    client = await connect(d, "alice")
    try:
        task_id = (await client.call("chat:completion", {
            "chat_id": "c1", "message_id": "m1", "model": "echo", "deltas": deltas,
            "messages": [{"role": "user", "content": LONG}]}))["task_id"]  # fmt: skip
        await until(lambda: len(completions(client, "c1")) >= 3, what="tokens")
        tail = Tail(["tasks", "tail", task_id, *extra], env)
        return await tail.finish()
    finally:
        await client.close()


async def test_tasks_tail_prints_the_whole_reply(make_daemon: Any, tmp_path: Path) -> None:
    d = make_daemon(RTCTL_ECHO_DELAY="0.01")
    for deltas in (False, True):
        code, out, err = await tail_a_task(d, cli_env(d.url, tmp_path), deltas=deltas)
        assert (code, out) == (0, LONG + "\n"), (deltas, err)
    missing = await asyncio.to_thread(run_cli, ["tasks", "tail", "nope"], cli_env(d.url, tmp_path))
    assert missing.code == 3 and "nope" in missing.err


async def test_tasks_tail_on_redis_as_json_lines(
    make_daemon: Any, redis_server: RedisServer, tmp_path: Path
) -> None:
    d = make_daemon(RTCTL_REDIS_URL=redis_server.url, RTCTL_PREFIX="tt", RTCTL_ECHO_DELAY="0.01")
    env = cli_env("http://127.0.0.1:9", tmp_path, RTCTL_REDIS_URL=redis_server.url,
                  RTCTL_PREFIX="tt", RTCTL_ADMIN_TOKEN="")  # fmt: skip
    code, out, err = await tail_a_task(d, env, "-o", "json")
    assert code == 0, err
    first, *events = [json.loads(line) for line in out.splitlines()]
    text, seq = first["so_far"]["content"], first["so_far"]["seq"]
    for event in events:
        assert event["data"]["seq"] == seq + 1  # each once, in order
        seq, text = event["data"]["seq"], event["data"]["content"]
    assert events[-1]["data"]["done"] is True and text == LONG


def test_tail_needs_a_room_or_a_user(tmp_path: Path) -> None:
    env = cli_env("http://127.0.0.1:9", tmp_path)
    assert run_cli(["events", "tail"], env).code == 2
    assert run_cli(["events", "tail", "--room", "r", "--user", "u"], env).code == 2


def test_a_watcher_that_falls_behind_is_dropped() -> None:
    """A stalled terminal never grows the daemon: past MAX_QUEUED events, or
    MAX_QUEUED_BYTES, its watch ends and what it held is let go."""
    from engineio.packet import MESSAGE, Packet

    from rtctl.server.taps import MAX_QUEUED, MAX_QUEUED_BYTES, Taps

    taps = Taps()
    small, big = [Packet(MESSAGE, '2["e",1]')], [Packet(MESSAGE, "x" * (1 << 20))]
    with taps.watch("user:alice") as by_count, taps.watch("user:bob") as by_bytes:
        for _ in range(MAX_QUEUED + 5):
            taps.offer("user:alice", small)
        for _ in range(MAX_QUEUED_BYTES // (1 << 20) + 1):
            taps.offer("user:bob", big)
        for watch in (by_count, by_bytes):
            assert watch.dropped and watch.queue.qsize() == 1 and watch.queue.get_nowait() is None
            assert watch.queued_bytes == 0
        assert taps.rooms == {}  # no longer fed
    assert taps.watchers == 0


@given(text=st.text(max_size=300) | st.from_regex(r"\A[25][0-9]*-?(/[a-z]*,)?[0-9]*\[.*\Z"))
def test_any_packet_text_decodes_or_is_skipped(text: str) -> None:
    """A tail reads packets off Redis channels anyone with access may publish to."""
    from rtctl.state.wire import event_of

    found = event_of(text)
    assert found is None or (isinstance(found[0], str) and isinstance(found[1], list))


def test_event_of_reads_each_packet_form() -> None:
    from rtctl.state.wire import event_of

    assert event_of('2["events",{"a":1}]') == ("events", [{"a": 1}])
    assert event_of('2/admin,7["x",1,2]') == ("x", [1, 2])
    assert event_of('51-["b",{"_placeholder":true,"num":0}]') == (
        "b", [{"_placeholder": True, "num": 0}])  # fmt: skip
    for other in ("0", '3["ack"]', "2", "2[]", "2[1]", "5-[", "2/nsp"):
        assert event_of(other) is None


async def test_a_tail_never_holds_a_daemon_s_shutdown(make_daemon: Any, tmp_path: Path) -> None:
    d = make_daemon()
    tail = Tail(["events", "tail", "--user", "alice"], cli_env(d.url, tmp_path))
    assert "following user:alice" in await tail.stderr_line()
    started = time.monotonic()
    assert await asyncio.to_thread(d.stop) == 0
    assert time.monotonic() - started < 8  # the drain, not uvicorn's graceful timeout
    code, _, err = await tail.finish()
    assert code == 1 and "the daemon is stopping" in err
    assert "Traceback" not in d.log()


async def test_a_tail_that_reads_nothing_neither_grows_nor_holds_the_daemon(
    make_daemon: Any,
) -> None:
    """A real client asks for a tail, then never reads: the events pile up to the
    watcher's bound at most, and the daemon still drains and exits promptly."""
    import socket

    d = make_daemon()
    alice = await connect(d, "alice")
    stalled = socket.socket()
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.connect(("127.0.0.1", d.port))
    stalled.sendall(b"GET /api/v1/tail?user=alice HTTP/1.1\r\nHost: x\r\n"
                    b"Authorization: Bearer " + ADMIN.encode() + b"\r\n\r\n")  # fmt: skip
    try:
        await asyncio.sleep(0.5)
        big = "x" * 65536
        for n in range(300):  # ~19 MiB for the tail, which takes none of it
            status, _ = await asyncio.to_thread(
                d.http, "POST", "/api/v1/emit", {"event": "events", "data": {"n": n, "x": big},
                                                 "user": "alice"})  # fmt: skip
            assert status == 200
        started = time.monotonic()
        assert await asyncio.to_thread(d.stop) == 0
        assert time.monotonic() - started < 8
        assert "Traceback" not in d.log()
    finally:
        stalled.close()
        await alice.close()


async def test_tasks_tail_ends_when_the_task_s_node_dies(
    make_daemon: Any, redis_server: RedisServer, tmp_path: Path
) -> None:
    """No last event comes from a killed node: the tail notices the task is gone."""
    d = make_daemon(RTCTL_REDIS_URL=redis_server.url, RTCTL_PREFIX="td", RTCTL_NODE_TTL="2",
                    RTCTL_ECHO_DELAY="0.2")  # fmt: skip
    env = cli_env("http://127.0.0.1:9", tmp_path, RTCTL_REDIS_URL=redis_server.url,
                  RTCTL_PREFIX="td", RTCTL_NODE_TTL="2", RTCTL_ADMIN_TOKEN="")  # fmt: skip
    client = await connect(d, "alice")
    try:
        task_id = (await client.call("chat:completion", {
            "chat_id": "c1", "model": "echo",
            "messages": [{"role": "user", "content": LONG}]}))["task_id"]  # fmt: skip
        await until(lambda: completions(client, "c1"), what="tokens")
        tail = Tail(["tasks", "tail", task_id, "-o", "json"], env)
        assert "so_far" in json.loads(await tail.line())  # it follows
        d.stop(signal.SIGKILL)
        code, out, err = await tail.finish()
        assert code == 0 and "ended without a last event" in err, err
        assert json.loads(out.splitlines()[-1]) == {"ended": True}
    finally:
        await client.close()
