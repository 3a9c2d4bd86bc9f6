"""Tasks on one embedded daemon: a real python-socketio client streams an echo or an
upstream completion; the CLI and the admin API list and stop it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.cli.conftest import cli_env, run_cli
from tests.conftest import DaemonProcess
from tests.server.live_client import LiveClient, connect, http, until
from tests.tasks.upstream import Upstream

pytestmark = pytest.mark.anyio
LONG = " ".join(f"word{i}" for i in range(400))


def completions(client: LiveClient, chat: str = "c1") -> list[dict[str, Any]]:
    return [e["data"]["data"] for e in client.received("events")
            if e.get("chat_id") == chat and e["data"]["type"] == "chat:completion"]  # fmt: skip


def of_type(client: LiveClient, kind: str) -> list[dict[str, Any]]:
    return [e for e in client.received("events") if e["data"]["type"] == kind]


async def start_chat(client: LiveClient, text: str, chat: str = "c1", model: str = "echo") -> Any:
    return await client.call("chat:completion", {
        "chat_id": chat, "message_id": "m1", "model": model, "stream": True,
        "messages": [{"role": "user", "content": text}],
    })  # fmt: skip


async def acli(d: DaemonProcess, tmp_path: Path, *args: str) -> Any:
    return await asyncio.to_thread(run_cli, list(args), cli_env(d.url, tmp_path))


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    server = await Upstream(delay=0.1).start()
    yield server
    await server.close()


async def test_echo_streams_and_stops_from_the_cli(make_daemon: Any, tmp_path: Path) -> None:
    d = make_daemon(RTCTL_ECHO_DELAY="0.05")
    client = await connect(d, "alice")
    try:
        ack = await start_chat(client, LONG)
        task_id = ack["task_id"]
        await until(lambda: len(completions(client)) >= 3, what="tokens")
        active = of_type(client, "chat:active")
        assert active[0]["chat_id"] == "c1" and active[0]["data"]["data"] == {"active": True}
        assert active[0]["message_id"] == "m1"  # an event about a chat carries both
        first = completions(client)[0]
        assert first == {"content": "word0 ", "delta": "word0 ", "seq": 1}
        assert client.received("events")[1]["message_id"] == "m1"

        listed = await acli(d, tmp_path, "tasks", "list", "-o", "json")
        assert listed.code == 0, listed.err
        [row] = listed.json()
        assert sorted(row) == [
            "id",
            "item_id",
            "kind",
            "message_id",
            "node",
            "started_at",
            "user_id",
        ]
        assert (row["id"], row["kind"], row["item_id"], row["message_id"], row["user_id"]) == (
            task_id, "echo", "c1", "m1", "alice")  # fmt: skip
        wide = await acli(d, tmp_path, "tasks", "list", "-o", "wide")
        assert wide.lines[0].split("\t")[:5] == [task_id, "echo", "c1", "m1", "alice"]
        assert "m1" not in (await acli(d, tmp_path, "tasks", "list")).out
        by_item = await acli(d, tmp_path, "tasks", "list", "--item", "nope", "-o", "json")
        assert by_item.json() == []

        stopped = await acli(d, tmp_path, "tasks", "stop", task_id, "--yes")
        assert stopped.code == 0, stopped.err
        assert stopped.out.split() == [task_id, "stopped"]
        cancel = await client.next_event(
            "events", lambda e: e["data"]["type"] == "chat:tasks:cancel"
        )
        assert cancel["chat_id"] == "c1" and cancel["data"]["data"] == {"task_id": task_id}
        ended = await client.next_event("events", lambda e: e["data"]["type"] == "chat:active"
                                        and e["data"]["data"] == {"active": False})  # fmt: skip
        assert ended["chat_id"] == "c1" and ended["message_id"] == "m1"
        count = len(completions(client))
        await asyncio.sleep(0.3)
        assert len(completions(client)) == count  # no token after the stop
        assert not any(c.get("done") for c in completions(client))
        assert (await acli(d, tmp_path, "tasks", "list", "-o", "json")).json() == []

        again = await acli(d, tmp_path, "tasks", "stop", task_id, "--yes")
        assert again.code == 1 and again.out.split() == [task_id, "not-found"]
        assert "not stopped" in again.err
    finally:
        await client.close()


async def test_echo_runs_to_done(make_daemon: Any) -> None:
    d = make_daemon(RTCTL_ECHO_DELAY="0")
    client = await connect(d, "bob")
    try:
        await start_chat(client, "hello  there world")
        done = await client.next_event(
            "events",
            lambda e: e["data"]["type"] == "chat:completion" and e["data"]["data"].get("done"),
        )
        assert done["data"]["data"] == {"done": True, "content": "hello  there world", "seq": 4}
        assert [c["delta"] for c in completions(client) if "delta" in c] == [
            "hello  ", "there ", "world"]  # fmt: skip
        await client.next_event("events", lambda e: e["data"]["type"] == "chat:active"
                                and e["data"]["data"] == {"active": False})  # fmt: skip
        assert (await http(d, "GET", "/api/v1/tasks"))[1] == []
    finally:
        await client.close()


async def test_bad_requests_are_refused(make_daemon: Any) -> None:
    d = make_daemon()
    client = await connect(d, "carol")
    try:
        ack = await start_chat(client, "hi", model="gpt-x")  # no upstream configured
        assert ack["ok"] is False and ack["error"]["code"] == "no_upstream"
        assert "RTCTL_UPSTREAM_URL" in ack["error"]["message"]
        ack = await client.call("chat:completion", {"chat_id": "c", "model": "echo"})
        assert ack["error"]["code"] == "invalid_request"
        status, body = await http(d, "POST", "/api/v1/tasks/stop", {"ids": ["nope"]})
        assert status == 200 and body == {"results": [{"id": "nope", "result": "not-found"}]}
        status, body = await http(d, "POST", "/api/v1/tasks/stop", {"ids": ["a"], "all": True})
        assert status == 400
        status, body = await http(d, "POST", "/api/v1/tasks/stop", {"item": "none"})
        assert status == 404
    finally:
        await client.close()


async def test_stop_closes_the_upstream_connection(
    make_daemon: Any, upstream: Upstream, tmp_path: Path
) -> None:
    d = make_daemon(RTCTL_UPSTREAM_URL=upstream.url, RTCTL_UPSTREAM_API_KEY="sk-test")
    client = await connect(d, "dave")
    try:
        ack = await start_chat(client, "anything", model="gpt-test")
        await until(lambda: len(completions(client)) >= 2, what="upstream tokens")
        assert completions(client)[1] == {"content": "w0 w1 ", "delta": "w1 ", "seq": 2}
        assert upstream.requests[0]["stream"] is True
        assert upstream.requests[0]["model"] == "gpt-test"
        assert upstream.headers[0]["Authorization"] == "Bearer sk-test"
        [row] = (await http(d, "GET", "/api/v1/tasks?item=c1"))[1]
        assert row["kind"] == "chat:completion"
        asked = time.monotonic()
        stopped = await acli(d, tmp_path, "tasks", "stop", "--item", "c1", "--yes")
        assert stopped.code == 0 and stopped.out.split() == [ack["task_id"], "stopped"]
        await until(lambda: upstream.disconnected, timeout=5.0, what="upstream disconnect")
        # long before the upstream would have finished its 200 words (20 s) by itself
        assert upstream.disconnected[0] - asked < 5.0
        assert upstream.finished == 0
        await client.next_event("events", lambda e: e["data"]["type"] == "chat:tasks:cancel")
    finally:
        await client.close()


async def test_characters_split_across_upstream_reads_arrive_whole(
    make_daemon: Any, upstream: Upstream
) -> None:
    d = make_daemon(RTCTL_UPSTREAM_URL=upstream.url)
    client = await connect(d, "dora")
    text = "café naïve 日本語 🎉 ok"  # 2-, 3- and 4-byte characters
    try:
        await start_chat(client, "bytes:" + text, model="gpt-test")
        done = await client.next_event(
            "events",
            lambda e: e["data"]["type"] == "chat:completion" and e["data"]["data"].get("done"),
            timeout=20,
        )
        assert done["data"]["data"]["content"] == text + " "
        deltas = [c["delta"] for c in completions(client) if "delta" in c]
        assert deltas == [word + " " for word in text.split(" ")]
    finally:
        await client.close()


async def test_upstream_errors_become_error_events(make_daemon: Any, upstream: Upstream) -> None:
    d = make_daemon(RTCTL_UPSTREAM_URL=upstream.url)
    client = await connect(d, "erin")
    try:
        await start_chat(client, "fail", model="gpt-test")
        error = await client.next_event(
            "events", lambda e: e["data"]["type"] == "chat:message:error"
        )
        assert "HTTP 500" in error["data"]["data"]["error"]["content"]
        assert "model overloaded" in error["data"]["data"]["error"]["content"]
        await client.next_event("events", lambda e: e["data"]["type"] == "chat:active"
                                and e["data"]["data"] == {"active": False})  # fmt: skip
    finally:
        await client.close()
    # an upstream that does not listen at all
    d2 = make_daemon(RTCTL_UPSTREAM_URL="http://127.0.0.1:9/v1")
    client = await connect(d2, "erin")
    try:
        await start_chat(client, "hi", model="gpt-test")
        error = await client.next_event(
            "events", lambda e: e["data"]["type"] == "chat:message:error"
        )
        assert "cannot reach the upstream" in error["data"]["data"]["error"]["content"]
    finally:
        await client.close()


async def test_tasks_per_user_are_capped(make_daemon: Any) -> None:
    """Eight running tasks per user by default: the next is refused, to a client and to
    the app's admin API alike, and a task that ends makes room again."""
    d = make_daemon(RTCTL_ECHO_DELAY="0.2")
    alice, bob = await connect(d, "alice"), await connect(d, "bob")
    try:
        acks = [await start_chat(alice, LONG, chat=f"c{i}") for i in range(8)]
        assert all("task_id" in ack for ack in acks), acks
        refused = await start_chat(alice, LONG, chat="c8")
        assert refused["ok"] is False and refused["error"]["code"] == "too_many_tasks"
        assert "8" in refused["error"]["message"]
        status, body = await http(d, "POST", "/api/v1/tasks", {"kind": "echo", "user": "alice"})
        assert status == 429 and body["error"]["code"] == "too_many_tasks", body
        assert "task_id" in await start_chat(bob, "hi", chat="b1")  # the cap is per user

        stopped = await http(d, "POST", "/api/v1/tasks/stop", {"ids": [acks[0]["task_id"]]})
        assert stopped[1]["results"][0]["result"] == "stopped"
        assert "task_id" in await start_chat(alice, LONG, chat="c9")

        # the user's last session leaves: the tasks run on, and still count
        await alice.close()
        listed = (await http(d, "GET", "/api/v1/tasks"))[1]
        assert len([t for t in listed if t["user_id"] == "alice"]) == 8
        alice = await connect(d, "alice")
        assert (await start_chat(alice, LONG, chat="c10"))["error"]["code"] == "too_many_tasks"
    finally:
        await alice.close()
        await bob.close()


async def test_task_cap_zero_disables_it(make_daemon: Any) -> None:
    d = make_daemon(RTCTL_ECHO_DELAY="0.2", RTCTL_MAX_TASKS_PER_USER="0")
    client = await connect(d, "alice")
    try:
        acks = [await start_chat(client, LONG, chat=f"c{i}") for i in range(20)]
        assert all("task_id" in ack for ack in acks), acks
    finally:
        await client.close()


async def test_a_task_ends_at_task_timeout_whoever_watches(make_daemon: Any) -> None:
    """A task runs on after the session that started it leaves, but not past
    task_timeout: its user's other sessions see it end as a failure, partial answer kept."""
    d = make_daemon(RTCTL_ECHO_DELAY="0.05", RTCTL_TASK_TIMEOUT="1.5")
    starter, watcher = await connect(d, "alice"), await connect(d, "alice")
    try:
        started = time.monotonic()
        task_id = (await start_chat(starter, LONG))["task_id"]
        await until(lambda: completions(watcher), what="the first token")
        await starter.close()
        error = await watcher.next_event(
            "events", lambda e: e["data"]["type"] == "chat:message:error", timeout=10
        )
        assert error["chat_id"] == "c1" and error["message_id"] == "m1"
        assert error["data"]["data"]["error"] == {
            "content": "the task ran past task_timeout (1.5s)"
        }
        assert 1.4 < time.monotonic() - started < 8
        assert 5 < len(completions(watcher)) < 400  # it streamed until then, not to the end
        await watcher.next_event("events", lambda e: e["data"] == {
            "type": "chat:active", "data": {"active": False}})  # fmt: skip
        assert (await http(d, "GET", "/api/v1/tasks"))[1] == []
        assert f"task {task_id} (echo) of user alice ran past task_timeout" in d.log()
    finally:
        await watcher.close()


async def test_drain_stops_tasks_cleanly(make_daemon: Any) -> None:
    d = make_daemon(RTCTL_ECHO_DELAY="0.05")
    client = await connect(d, "fred")
    try:
        await start_chat(client, LONG)
        await until(lambda: completions(client), what="tokens")
        code = await asyncio.to_thread(d.stop)
        assert code == 0
        assert of_type(client, "chat:tasks:cancel")
        assert "stopped 1 tasks" in d.log()
    finally:
        await client.close()
