"""task:resume: a new session of the same user (a page reload, another device, a
reconnect to another daemon) picks up a running task's stream with no gap and no repeat."""

from __future__ import annotations

import json
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


async def test_a_delta_stream_carries_only_new_text(make_daemon: Any) -> None:
    """``deltas: true``: each text event carries its new text and seq, not the text so
    far; a resuming page gets the text so far in the ack and adds the later deltas."""
    d = make_daemon(RTCTL_ECHO_DELAY="0.01")
    page = await connect(d, "alice")
    reloaded = None
    try:
        started = await page.call("chat:completion", {
            "chat_id": "c1", "message_id": "m1", "model": "echo", "deltas": True,
            "messages": [{"role": "user", "content": LONG}]})  # fmt: skip
        await until(lambda: len(completions(page, "c1")) >= 5, what="tokens")
        reloaded = await connect(d, "alice")
        ack = await reloaded.call("task:resume", {"task_id": started["task_id"]})
        assert ack["deltas"] is True
        await until(lambda: [c for c in completions(reloaded, "c1") if c.get("done")], timeout=20,
                    what="the end")  # fmt: skip
        later = [c for c in completions(reloaded, "c1") if c["seq"] > ack["seq"]]
        text = ack["content"] + "".join(c.get("delta", "") for c in later if not c.get("done"))
        assert text == LONG and later[-1] == {
            "done": True,
            "content": LONG,
            "seq": later[-1]["seq"],
        }
        assert all("content" not in c for c in later[:-1])
        refused = await page.call("chat:completion", {
            "chat_id": "c2", "model": "echo", "deltas": "yes",
            "messages": [{"role": "user", "content": "x"}]})  # fmt: skip
        assert refused["error"]["code"] == "invalid_request"
    finally:
        await page.close()
        if reloaded is not None:
            await reloaded.close()


async def test_deltas_keep_a_reply_s_bytes_linear(make_daemon: Any) -> None:
    """The bytes a 400-word reply puts on the wire, in each form (sizes, not timings)."""
    d = make_daemon(RTCTL_ECHO_DELAY="0")
    client = await connect(d, "alice")
    try:
        sizes = {}
        for chat, deltas in (("full", False), ("delta", True)):
            await client.call("chat:completion", {
                "chat_id": chat, "model": "echo", "deltas": deltas,
                "messages": [{"role": "user", "content": LONG}]})  # fmt: skip
            await until(lambda c=chat: [e for e in completions(client, c) if e.get("done")],
                        what="the end")  # fmt: skip
            sizes[chat] = sum(len(json.dumps(e)) for e in completions(client, chat))
        assert sizes["delta"] * 20 < sizes["full"], sizes
    finally:
        await client.close()
