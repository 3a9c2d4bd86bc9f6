"""task:resume: a new session of the same user (a page reload, another device, a
reconnect to another daemon) picks up a running task's stream with no gap and no repeat."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import DaemonProcess
from tests.redis_server import RedisServer
from tests.server.live_client import LiveClient, connect, until
from tests.tasks.test_tasks_embedded import LONG, completions, start_chat

pytestmark = pytest.mark.anyio


class Reader:
    """What a resuming client does: keep the ack's text, apply only events above its seq."""

    def __init__(self, client: LiveClient, chat: str) -> None:
        self.client, self.chat = client, chat

    async def resume(self, **by: str) -> dict[str, Any]:
        ack = await self.client.call("task:resume", by)
        assert "content" in ack, ack
        return ack

    async def finish(self, ack: dict[str, Any]) -> tuple[str, list[int]]:
        """The reply's text once the task is done, and the seqs applied after the ack."""
        done = lambda: [c for c in completions(self.client, self.chat) if c.get("done")]  # noqa: E731
        await until(done, timeout=20, what="the task's end")
        text, applied = ack["content"], []
        for event in completions(self.client, self.chat):
            if event["seq"] > ack["seq"]:
                applied.append(event["seq"])
                text = event["content"]
        return text, applied


async def reload_mid_stream(before: DaemonProcess, after: DaemonProcess, **by: str) -> None:
    """A task starts from a page, the page reloads (its socket goes), and the new page,
    on ``after``, resumes it: it ends with the whole reply, each event counted once."""
    page = await connect(before, "alice")
    ack = await start_chat(page, LONG, chat="c1")
    await until(lambda: len(completions(page, "c1")) >= 5, what="tokens")
    seen = [c["seq"] for c in completions(page, "c1")]
    assert seen == list(range(seen[0], seen[0] + len(seen)))  # numbered in order
    await page.close()
    reloaded = Reader(await connect(after, "alice"), "c1")
    try:
        by = {k: (ack["task_id"] if v == "task" else v) for k, v in by.items()}
        resumed = await reloaded.resume(**by)
        assert resumed["task_id"] == ack["task_id"] and resumed["chat_id"] == "c1"
        assert resumed["message_id"] == "m1" and resumed["done"] is False
        assert LONG.startswith(resumed["content"]) and len(resumed["content"]) > 0
        text, applied = await reloaded.finish(resumed)
        assert text == LONG
        assert applied == list(range(resumed["seq"] + 1, resumed["seq"] + 1 + len(applied)))
    finally:
        await reloaded.client.close()


async def test_a_reloaded_page_resumes_by_chat(make_daemon: Any) -> None:
    d = make_daemon(RTCTL_ECHO_DELAY="0.02")
    await reload_mid_stream(d, d, chat_id="c1")


async def test_another_daemon_resumes_by_task_id(
    make_daemon: Any, redis_server: RedisServer
) -> None:
    env = {"RTCTL_REDIS_URL": redis_server.url, "RTCTL_PREFIX": "rs", "RTCTL_ECHO_DELAY": "0.02"}
    a, b = make_daemon(RTCTL_NODE_ID="node-a", **env), make_daemon(RTCTL_NODE_ID="node-b", **env)
    await reload_mid_stream(a, b, task_id="task")


async def test_only_the_user_resumes_and_only_running_tasks(make_daemon: Any) -> None:
    d = make_daemon(RTCTL_ECHO_DELAY="0.05")
    alice, mallory = await connect(d, "alice"), await connect(d, "mallory")
    try:
        task_id = (await start_chat(alice, LONG, chat="c1"))["task_id"]
        for by in ({"task_id": task_id}, {"chat_id": "c1"}):
            refused = await mallory.call("task:resume", by)
            assert refused["error"]["code"] == "not_found", refused
        both = await alice.call("task:resume", {"task_id": task_id, "chat_id": "c1"})
        assert both["error"]["code"] == "invalid_request"
        assert (await alice.call("task:resume", {}))["error"]["code"] == "invalid_request"
        gone = await alice.call("task:resume", {"chat_id": "no-such-chat"})
        assert gone["error"]["code"] == "not_found"
        short = await start_chat(alice, "just three words", chat="c2")
        await until(lambda: [c for c in completions(alice, "c2") if c.get("done")], what="end")
        ended = await alice.call("task:resume", {"task_id": short["task_id"]})
        assert ended["error"]["code"] == "not_found"
    finally:
        await alice.close()
        await mallory.close()
