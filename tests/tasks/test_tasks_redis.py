"""Tasks across two daemons on a real redis-server, operated by the CLI with only
``RTCTL_REDIS_URL`` (no daemon reached): list, stop, kill -9 of an owner."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from tests.cli.conftest import cli_env, run_cli
from tests.redis_server import RedisServer
from tests.server.live_client import LiveClient, connect, until
from tests.tasks.test_tasks_embedded import LONG, completions, start_chat

pytestmark = pytest.mark.anyio
NODE_TTL = 2.0


async def rcli(redis: RedisServer, tmp_path: Path, *args: str) -> Any:
    env = cli_env("http://127.0.0.1:9", tmp_path, RTCTL_REDIS_URL=redis.url, RTCTL_PREFIX="tk",
                  RTCTL_NODE_TTL=str(NODE_TTL), RTCTL_ADMIN_TOKEN="")  # fmt: skip
    return await asyncio.to_thread(run_cli, list(args), env)


async def test_stop_from_the_cli_and_kill_9_of_an_owner(
    make_daemon: Any, redis_server: RedisServer, tmp_path: Path
) -> None:
    env = {"RTCTL_REDIS_URL": redis_server.url, "RTCTL_PREFIX": "tk",
           "RTCTL_NODE_TTL": str(NODE_TTL), "RTCTL_ECHO_DELAY": "0.05"}  # fmt: skip
    a = make_daemon(RTCTL_NODE_ID="node-a", **env)
    b = make_daemon(RTCTL_NODE_ID="node-b", **env)
    clients: list[LiveClient] = []
    try:
        on_a = await connect(a, "alice")
        clients.append(on_a)
        ack = await start_chat(on_a, LONG, chat="chat-1")
        task_id = ack["task_id"]
        await until(lambda: len(completions(on_a, "chat-1")) >= 2, what="tokens")

        listed = await rcli(redis_server, tmp_path, "tasks", "list", "-o", "json")
        assert listed.code == 0, listed.err
        [row] = listed.json()
        assert (row["id"], row["node"], row["item_id"]) == (task_id, "node-a", "chat-1")

        stopped = await rcli(redis_server, tmp_path, "tasks", "stop", task_id, "-y")
        assert stopped.code == 0, stopped.err
        assert stopped.out.split() == [task_id, "stopped"]
        await on_a.next_event("events", lambda e: e["data"]["type"] == "chat:tasks:cancel")
        count = len(completions(on_a, "chat-1"))
        await asyncio.sleep(0.3)
        assert len(completions(on_a, "chat-1")) == count

        unknown = await rcli(redis_server, tmp_path, "tasks", "stop", "no-such-task", "-y")
        assert unknown.code == 1 and unknown.out.split() == ["no-such-task", "not-found"]

        # a task on A, then A dies without a word
        ack = await start_chat(on_a, LONG, chat="chat-2")
        ghost = ack["task_id"]
        await until(lambda: completions(on_a, "chat-2"), what="tokens")
        assert a.proc is not None
        a.proc.send_signal(signal.SIGKILL)
        a.proc.wait()
        killed = time.monotonic()
        stop = await rcli(redis_server, tmp_path, "tasks", "stop", ghost, "-y")
        assert stop.code == 1 and stop.out.split()[1] == "owner-gone"  # nothing listens for A

        async def gone() -> bool:
            out = await rcli(redis_server, tmp_path, "tasks", "list", "-o", "json")
            return out.code == 0 and out.json() == []

        await until(gone, timeout=NODE_TTL + 3, what="the ghost leaving the list")
        assert time.monotonic() - killed < NODE_TTL + 3

        on_b = await connect(b, "alice")
        clients.append(on_b)
        ack = await start_chat(on_b, "a new task for the same chat", chat="chat-2")
        await until(lambda: [c for c in completions(on_b, "chat-2") if c.get("done")],
                    what="the new task to finish")  # fmt: skip
        active = [e["data"]["data"] for e in on_b.received("events")
                  if e["data"]["type"] == "chat:active"]  # fmt: skip
        assert active[0] == {"active": True}  # the ghost did not count as a running task
        late = await rcli(redis_server, tmp_path, "tasks", "stop", ghost, "-y")
        assert late.code == 1 and late.out.split()[1] in ("owner-gone", "not-found")
    finally:
        for c in clients:
            await c.close()


async def test_a_stop_intent_reaches_an_owner_that_was_cut_off(
    make_daemon: Any, redis_server: RedisServer, tmp_path: Path
) -> None:
    """The owner does not hear the command (no subscriber); the durable intent stops the
    task on its next refresh."""
    from rtctl.state.base import TaskRecord
    from rtctl.state.redis import RedisState
    from rtctl.state.redis_url import open_client

    env = {"RTCTL_REDIS_URL": redis_server.url, "RTCTL_PREFIX": "tk",
           "RTCTL_NODE_TTL": str(NODE_TTL), "RTCTL_ECHO_DELAY": "0.05"}  # fmt: skip
    a = make_daemon(RTCTL_NODE_ID="node-a", **env)
    client = await connect(a, "alice")
    try:
        ack = await start_chat(client, LONG, chat="chat-3")
        # as if the stop was issued while node-a could not hear its channel
        state = RedisState(open_client(redis_server.url), "tk", "cli", node_ttl=NODE_TTL)
        try:
            found = await state.find_task(ack["task_id"])
            assert found is not None and found[1]
            record: TaskRecord = found[0]
            await state.request_stop(record, 30.0)
        finally:
            await state.close()
        await client.next_event("events", lambda e: e["data"]["type"] == "chat:tasks:cancel",
                                timeout=NODE_TTL + 2)  # fmt: skip
        out = await rcli(redis_server, tmp_path, "tasks", "list", "-o", "json")
        assert out.json() == []
    finally:
        await client.close()


async def test_the_task_cap_counts_every_node(make_daemon: Any, redis_server: RedisServer) -> None:
    env = {"RTCTL_REDIS_URL": redis_server.url, "RTCTL_PREFIX": "cap",
           "RTCTL_ECHO_DELAY": "0.2", "RTCTL_MAX_TASKS_PER_USER": "4"}  # fmt: skip
    a = make_daemon(RTCTL_NODE_ID="node-a", **env)
    b = make_daemon(RTCTL_NODE_ID="node-b", **env)
    on_b = await connect(b, "alice")
    many_on_a = [await connect(a, "alice") for _ in range(8)]
    try:
        assert "task_id" in await start_chat(on_b, LONG, chat="b1")
        # concurrent starts on one node (from many sessions: one session's events run in
        # turn) take the places left, and no more
        acks = await asyncio.gather(*(start_chat(c, LONG, chat=f"a{i}")
                                      for i, c in enumerate(many_on_a)))  # fmt: skip
        assert sum("task_id" in ack for ack in acks) == 3, acks
        assert {ack["error"]["code"] for ack in acks if "error" in ack} == {"too_many_tasks"}
        refused = await start_chat(on_b, LONG, chat="b2")
        assert refused["error"]["code"] == "too_many_tasks", refused
    finally:
        for client in (on_b, *many_on_a):
            await client.close()
