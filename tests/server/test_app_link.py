"""The hub and the app (SPEC §9): the auth hook, server-side membership and webhooks,
with a real HTTP server as the app and real python-socketio clients."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import socketio

from tests.app_server import AppServer, owui_token
from tests.conftest import DaemonProcess, free_port
from tests.server.live_client import LiveClient, http, until
from tests.server.test_docs_events import Editor

pytestmark = pytest.mark.anyio
WEBHOOK_SECRET = "webhook secret of the tests"


@pytest.fixture
def app() -> Iterator[AppServer]:
    server = AppServer().start()
    yield server
    server.stop()


def linked(make_daemon: Any, app: AppServer, **env: str) -> DaemonProcess:
    settings = dict(
        RTCTL_AUTH_HOOK_URL=f"{app.url}/hook", RTCTL_AUTH_HOOK_TIMEOUT="1",
        RTCTL_WEBHOOK_URL=f"{app.url}/webhook", RTCTL_WEBHOOK_SECRET=WEBHOOK_SECRET,
        RTCTL_WEBHOOK_DEBOUNCE="0.2",
    )  # fmt: skip
    settings.update(env)
    d: DaemonProcess = make_daemon(**settings)
    return d


async def refusal(d: DaemonProcess, token: str) -> dict[str, Any]:
    client = LiveClient(d, token)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await client.connect()
    assert client.connect_errors, "no connect_error"
    error: dict[str, Any] = client.connect_errors[0].get("data") or {}
    return {"message": client.connect_errors[0].get("message"), **error}


async def members(d: DaemonProcess, room: str) -> set[str]:
    status, body = await http(d, "GET", f"/api/v1/rooms/{room}/members")
    return {s["sid"] for s in body} if status == 200 else set()


async def metric(d: DaemonProcess, name: str) -> float:
    _, text = await http(d, "GET", "/metrics", auth=False)
    line = next(x for x in text.splitlines() if x.startswith(name + " "))
    return float(line.split()[1])


async def test_open_webui_tokens_work_through_the_hook(make_daemon: Any, app: AppServer) -> None:
    d = linked(make_daemon, app)
    alice, bob = owui_token("alice"), owui_token("bob")
    app.grant(alice, "alice", "Alice", channels=["c1", "c2"])
    app.grant(bob, "bob", "Bob", channels=["c1"])
    a = await LiveClient(d, alice).connect()
    b = await LiveClient(d, bob).connect()
    try:
        asked = app.hook_calls[0]
        assert asked["token"] == alice and asked["sid"] == a.sid
        assert "python" in asked["headers"]["user-agent"].lower()
        joined = await a.call("user-join", {"auth": {"token": alice}})
        assert joined == {"id": "alice", "name": "Alice"}
        assert await b.call("user-join", {"auth": {"token": bob}}) == {"id": "bob", "name": "Bob"}
        assert await members(d, "channel:c1") == {a.sid, b.sid}
        assert await members(d, "channel:c2") == {a.sid}

        event = {"type": "typing", "data": {"typing": True}}
        typing = {"channel_id": "c1", "message_id": None, "data": event}
        assert await b.call("events:channel", typing) == {"ok": True}
        seen = await a.next_event("events:channel")
        assert seen["message_id"] is None and seen["user"] == {"id": "bob", "name": "Bob"}

        message = {"channel_id": "c1", "data": {"type": "message", "data": {"id": "m1"}}}
        sent = {"event": "events:channel", "room": "channel:c1", "data": message}
        assert (await http(d, "POST", "/api/v1/emit", sent))[0] == 200
        for c in (a, b):
            await c.next_event("events:channel", lambda e: e["data"]["type"] == "message")
    finally:
        await a.close()
        await b.close()


async def test_a_refusing_slow_or_absent_app_is_a_clear_refusal(
    make_daemon: Any, app: AppServer
) -> None:
    d = linked(make_daemon, app)
    assert (await refusal(d, owui_token("mallory")))["code"] == "unauthorized"
    banned = owui_token("banned")
    app.answers[banned] = (403, {"detail": "banned"})
    assert (await refusal(d, banned))["code"] == "forbidden"
    app.grant(bad := owui_token("bad"), "bad")
    app.answers[bad] = (200, {"user": {"id": 42.5}})
    assert (await refusal(d, bad))["code"] == "unavailable"

    app.delay = 3.0  # the hook's timeout is 1 s
    slow = owui_token("slow")
    app.grant(slow, "slow")
    started = time.monotonic()
    error = await refusal(d, slow)
    assert error["code"] == "unavailable" and "did not answer" in error["message"]
    assert time.monotonic() - started < 2.5

    gone = linked(make_daemon, app, RTCTL_AUTH_HOOK_URL=f"http://127.0.0.1:{free_port()}/hook")
    assert (await refusal(gone, slow))["code"] == "unavailable"
    # the hub's own tokens still need the app: it decides who may connect
    assert (await refusal(gone, gone.token("alice")))["code"] == "unavailable"


async def test_answers_are_cached_and_shared_by_concurrent_connects(
    make_daemon: Any, app: AppServer
) -> None:
    d = linked(make_daemon, app, RTCTL_RATE_LIMIT="0", RTCTL_CONNECT_RATE="0")
    token = owui_token("alice")
    app.grant(token, "alice", channels=["c1"])
    app.delay = 0.3  # every connect below asks while the first call is in flight
    clients = [LiveClient(d, token) for _ in range(20)]
    try:
        await asyncio.gather(*(c.connect() for c in clients))
        assert len(app.hook_calls) == 1
        app.delay = 0.0
        more = [await LiveClient(d, token).connect() for _ in range(5)]
        clients += more
        assert len(app.hook_calls) == 1
        assert await metric(d, "rtctl_auth_hook_cache_hits_total") == 24

        # the app changes the user's rooms: the cached answer is stale at once
        status, result = await http(d, "POST", "/api/v1/rooms/channel:c7/join", {"user": "alice"})
        assert status == 200 and len(result["sessions"]) == 25
        clients.append(await LiveClient(d, token).connect())
        assert len(app.hook_calls) == 2
    finally:
        await asyncio.gather(*(c.close() for c in clients))


async def test_user_join_follows_the_grants(make_daemon: Any, app: AppServer) -> None:
    d = linked(make_daemon, app, RTCTL_AUTH_HOOK_CACHE="0.2")
    token = owui_token("alice")
    app.grant(token, "alice", channels=["c1", "c2"])
    a = await LiveClient(d, token).connect()
    try:
        await a.call("user-join", {"auth": {"token": token}})
        assert a.sid in await members(d, "channel:c1")
        assert (await http(d, "POST", "/api/v1/rooms/channel:c9/join", {"user": "alice"}))[0] == 200

        app.grant(token, "alice", channels=["c2"])  # alice left c1 in the app
        await asyncio.sleep(0.3)
        await a.call("user-join", {"auth": {"token": token}})
        assert a.sid not in await members(d, "channel:c1")
        assert a.sid in await members(d, "channel:c2")
        assert a.sid in await members(d, "channel:c9")  # the app put her there itself
        ack = await a.call("channel:join", {"channel_id": "c1"})
        assert ack["error"]["code"] == "forbidden"
    finally:
        await a.close()


async def test_rooms_join_and_leave_every_session_of_a_user(daemon: DaemonProcess) -> None:
    from tests.cli.conftest import cli_env, run_cli

    a1 = await LiveClient(daemon, daemon.token("alice")).connect()
    a2 = await LiveClient(daemon, daemon.token("alice")).connect()
    b = await LiveClient(daemon, daemon.token("bob")).connect()
    env = cli_env(daemon.url, daemon.data_dir)
    try:
        args = ["rooms", "join", "team", "--user", "alice", "-o", "json"]
        done = await asyncio.to_thread(run_cli, args, env)
        assert done.code == 0, done.err
        assert {r["sid"] for r in json.loads(done.out)} == {a1.sid, a2.sid}
        assert await members(daemon, "team") == {a1.sid, a2.sid}
        assert (await http(daemon, "POST", "/api/v1/emit", {"event": "hi", "room": "team"}))[
            0
        ] == 200
        for c in (a1, a2):
            await c.next_event("hi")

        status, result = await http(daemon, "POST", "/api/v1/rooms/team/leave", {"user": "alice"})
        assert status == 200 and result["action"] == "leave"
        assert await members(daemon, "team") == set()
        args = ["rooms", "join", "team", "--user", "nobody"]
        done = await asyncio.to_thread(run_cli, args, env)
        assert done.code == 3 and "no sessions" in done.err
        status, _ = await http(daemon, "POST", "/api/v1/rooms/user:bob/join", {"user": "alice"})
        assert status == 400
    finally:
        for c in (a1, a2, b):
            await c.close()
    assert not b.received("hi")


async def test_webhooks_record_reads_and_notes(make_daemon: Any, app: AppServer) -> None:
    d = linked(make_daemon, app, RTCTL_WEBHOOK_DEBOUNCE="2")
    alice, bob = owui_token("alice"), owui_token("bob")
    app.grant(alice, "alice", "Alice", channels=["c1"], docs=["note:*"])
    app.grant(bob, "bob", "Bob", channels=["c1"])
    a = await LiveClient(d, alice).connect()
    b = await LiveClient(d, bob).connect()
    try:
        for c, t in ((a, alice), (b, bob)):
            await c.call("user-join", {"auth": {"token": t}})
        app.webhook_statuses = [500, 503]  # the app hiccups: the hub tries again
        read = {"channel_id": "c1", "data": {"type": "last_read_at"}}
        assert await a.call("events:channel", read) == {"ok": True}
        await a.call("events:chat", {"chat_id": "chat-1", "data": {"type": "last_read_at"}})
        await until(lambda: app.received("chat.read"), 10, "chat.read")
        assert app.received("channel.read") == [{"channel_id": "c1", "user_id": "alice"}]
        assert app.received("chat.read") == [
            {
                "chat_id": "chat-1",
                "user_id": "alice",
                "data": {"type": "last_read_at", "data": None},
            }
        ]
        assert all(w.signed_with(WEBHOOK_SECRET) for w in app.webhooks)
        assert not b.received("events:channel")  # a read mark is nobody else's to see
        assert await metric(d, "rtctl_webhook_retries_total") == 2

        editor = Editor(a, "note:n1")
        await editor.join()
        await editor.edit(0, "hello")
        await editor.edit(5, " world")
        update = await until(lambda: app.received("document.updated"), 5, "document.updated")
        assert update[0]["document_id"] == "note:n1" and update[0]["text"] == "hello world"
        assert update[0]["json"] == {"content": "hello world"} and update[0]["updates"] == 2
        await editor.edit(11, "!")
        await a.call("ydoc:document:leave", {"document_id": "note:n1"})  # unloads: sent now
        last = await until(lambda: app.received("document.updated")[1:], 1.0, "on unload")
        assert last[0]["text"] == "hello world!"
    finally:
        await a.close()
        await b.close()


async def test_nodes_share_answers_and_membership_over_redis(
    make_daemon: Any, app: AppServer, redis_server: Any
) -> None:
    from tests.cli.conftest import cli_env, run_cli

    nodes = [linked(make_daemon, app, RTCTL_REDIS_URL=redis_server.url, RTCTL_NODE_ID=n,
                    RTCTL_PREFIX="link") for n in ("n1", "n2")]  # fmt: skip
    token = owui_token("alice")
    app.grant(token, "alice", channels=["c1"])
    a1 = await LiveClient(nodes[0], token).connect()
    a2 = await LiveClient(nodes[1], token).connect()  # the other node finds n1's answer
    try:
        assert len(app.hook_calls) == 1
        env = cli_env("", nodes[0].data_dir, RTCTL_REDIS_URL=redis_server.url,
                      RTCTL_PREFIX="link")  # fmt: skip
        done = await asyncio.to_thread(run_cli, ["rooms", "join", "team", "--user", "alice",
                                                 "-o", "name"], env)  # fmt: skip
        assert done.code == 0, done.err
        assert set(done.out.split()) == {a1.sid, a2.sid}
        assert await members(nodes[1], "team") == {a1.sid, a2.sid}
        a3 = await LiveClient(nodes[1], token).connect()  # the answer went stale: asked again
        await a3.close()
        assert len(app.hook_calls) == 2
    finally:
        await a1.close()
        await a2.close()


async def test_a_session_s_events_run_in_the_order_it_sent_them(
    make_daemon: Any, app: AppServer
) -> None:
    """Open WebUI's channel page sends user-join, then at once a read mark for a channel
    that user-join enters: with a slow app, the mark must still find the room."""
    d = linked(make_daemon, app, RTCTL_AUTH_HOOK_CACHE="0.001")
    token = owui_token("alice")
    app.grant(token, "alice", channels=["c1"])
    a = await LiveClient(d, token).connect()
    try:
        app.delay = 0.5
        await a.sio.emit("user-join", {"auth": {"token": token}})  # no ack, as Open WebUI
        read = {"channel_id": "c1", "message_id": None, "data": {"type": "last_read_at"}}
        assert await a.call("events:channel", read) == {"ok": True}
        await until(lambda: app.received("channel.read"), 5, "channel.read")
        assert not a.received("error")
    finally:
        await a.close()
