"""``rtctl.Client`` from a plain script, against an embedded daemon and against Redis
with two daemons (SPEC §9): emits to a user, a room and a session, a call, membership,
a task started for a user and stopped by its chat."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from typing import Any

import pytest

from tests.conftest import ADMIN, ROOT, DaemonProcess
from tests.redis_server import RedisServer
from tests.server.live_client import LiveClient, until

pytestmark = pytest.mark.anyio
SCRIPT = str(ROOT / "tests" / "server" / "client_script.py")


async def run_script(*args: str) -> dict[str, Any]:
    done = await asyncio.to_thread(
        subprocess.run, [sys.executable, SCRIPT, *args], capture_output=True, text=True,
        timeout=60, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


async def check(alice: LiveClient, result: dict[str, Any]) -> None:
    assert result["sid"] == alice.sid
    assert result["joined"] == [alice.sid] and result["left"] == [alice.sid]
    assert result["reply"] == {"pong": {"x": 1}}
    assert result["not_found"] == "not_found"
    assert result["task"]["kind"] == "echo" and result["task"]["user_id"] == "alice"
    assert result["stopped"] == [{"id": result["task"]["id"], "result": "stopped"}]
    await alice.next_event("to-session")
    await alice.next_event("events:channel")
    events = alice.received("events")
    assert events[0]["data"]["type"] == "status"
    streamed = [e for e in events if e.get("message_id") == "msg-1"]
    assert streamed and all(e["chat_id"] == "chat-1" for e in streamed)

    def inactive() -> bool:
        return any(e["data"] == {"type": "chat:active", "data": {"active": False}}
                   for e in alice.received("events"))  # fmt: skip

    await until(inactive, what="chat:active false")


async def pong(data: Any) -> Any:
    return {"pong": data}


async def test_a_script_drives_an_embedded_daemon(daemon: DaemonProcess) -> None:
    alice = await LiveClient(daemon, daemon.token("alice")).connect()
    alice.replies["ping"] = pong
    try:
        await check(alice, await run_script("--url", daemon.url, "--admin-token", ADMIN))
    finally:
        await alice.close()


async def test_a_script_drives_redis_with_no_daemon_of_its_own(
    make_daemon: Any, redis_server: RedisServer
) -> None:
    nodes = [make_daemon(RTCTL_REDIS_URL=redis_server.url, RTCTL_NODE_ID=n, RTCTL_PREFIX="pc")
             for n in ("n1", "n2")]  # fmt: skip
    alice = await LiveClient(nodes[1], nodes[1].token("alice")).connect()
    alice.replies["ping"] = pong
    try:
        await check(alice, await run_script("--redis-url", redis_server.url, "--prefix", "pc"))
    finally:
        await alice.close()


async def test_emits_queue_in_order_and_a_lost_redis_is_reported(
    make_daemon: Any, redis_server: RedisServer
) -> None:
    import time

    import rtctl

    node = make_daemon(RTCTL_REDIS_URL=redis_server.url, RTCTL_PREFIX="pc")
    alice = await LiveClient(node, node.token("alice")).connect()
    hub = rtctl.AsyncClient(redis_url=redis_server.url, prefix="pc", timeout=1.0)
    try:
        for i in range(3000):
            await hub.emit("n", i, user="alice")
        await hub.flush()
        await until(lambda: len(alice.received("n")) == 3000, 10, "3000 emits")
        assert alice.received("n") == list(range(3000))  # in the order they were made
        with pytest.raises(rtctl.UsageError):
            await hub.emit("n", float("nan"), user="alice")  # refused before it is queued

        redis_server.kill()
        await hub.emit("lost", 1, user="alice")  # queued at once; cannot be sent
        started = time.monotonic()
        with pytest.raises(rtctl.BackendUnavailable):
            await hub.flush()
        assert time.monotonic() - started < 5
        redis_server.restart()
        await hub.emit("n", "back", user="alice")
        await hub.flush()  # the error was reported once; the client works again
    finally:
        await hub.close()
        await alice.close()
