"""Client events (SPEC §4, §8) with real python-socketio clients against a real daemon."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from tests.conftest import DaemonProcess
from tests.server.live_client import LiveClient, connect, http, until

pytestmark = pytest.mark.anyio


async def session_of(d: DaemonProcess, sid: str) -> dict[str, Any] | None:
    status, sessions = await http(d, "GET", "/api/v1/sessions")
    assert status == 200
    return next((s for s in sessions if s["sid"] == sid), None)


async def members(d: DaemonProcess, room: str) -> list[str]:
    status, body = await http(d, "GET", f"/api/v1/rooms/{room}/members")
    return [s["sid"] for s in body] if status == 200 else []


async def barrier(d: DaemonProcess, client: LiveClient) -> None:
    """Wait until everything the daemon sent ``client`` before now has arrived.

    A session's events arrive in the order they were emitted, so once a marker
    emitted now is received, an event emitted earlier that has not arrived never will.
    """
    marker = f"barrier-{time.monotonic_ns()}"
    status, _ = await http(d, "POST", "/api/v1/emit", {"event": marker, "sid": client.sid})
    assert status == 200
    await client.next_event(marker)


def refused(ack: Any, code: str) -> bool:
    return isinstance(ack, dict) and ack.get("ok") is False and ack["error"]["code"] == code


async def test_heartbeat_acks_and_moves_last_seen(daemon: DaemonProcess) -> None:
    c = await connect(daemon)
    try:
        before = await session_of(daemon, c.sid)
        assert before is not None and before["last_seen_at"] == before["connected_at"]

        async def moved() -> bool:
            assert await c.call("heartbeat", {}) == {"ok": True}
            after = await session_of(daemon, c.sid)
            return after is not None and after["last_seen_at"] > before["last_seen_at"]

        await until(moved, what="last_seen_at to move after a heartbeat")
        assert await c.call("heartbeat") == {"ok": True}  # no payload at all is fine too
    finally:
        await c.close()


async def test_user_join_acks_the_identity_of_the_fresh_token(daemon: DaemonProcess) -> None:
    c = await connect(daemon, "alice", name="Alice")
    try:
        fresh = daemon.token("alice", name="Alice Liddell")
        assert await c.call("user-join", {"auth": {"token": fresh}}) == {
            "id": "alice",
            "name": "Alice Liddell",
        }
        # another user's token cannot switch the session's identity
        ack = await c.call("user-join", {"auth": {"token": daemon.token("mallory")}})
        assert refused(ack, "forbidden")
        ack = await c.call("user-join", {"auth": {"token": "not-a-jwt"}})
        assert refused(ack, "invalid_token")
        errors = await until(lambda: len(c.received("error")) >= 2 and c.received("error"))
        assert [e["event"] for e in errors] == ["user-join", "user-join"]
        assert await c.call("heartbeat", {}) == {"ok": True}
    finally:
        await c.close()


async def test_channel_join_follows_exact_and_glob_grants(daemon: DaemonProcess) -> None:
    c = await connect(daemon, "alice", name="Alice", channels=["general", "team-*"])
    try:
        assert await c.call("channel:join", {"channel_id": "general"}) == {
            "ok": True,
            "channel_id": "general",
        }
        ack = await c.call("channel:join", {"channel_id": "team-red"})
        assert ack["ok"] is True
        assert c.sid in await members(daemon, "channel:general")
        assert c.sid in await members(daemon, "channel:team-red")

        ack = await c.call("channel:join", {"channel_id": "random"})
        assert refused(ack, "forbidden")
        assert "random" in ack["error"]["message"]
        error = await c.next_event("error")
        assert error == {"event": "channel:join", **ack["error"]}
        assert set(error) == {"event", "code", "message"}
        status, _ = await http(daemon, "GET", "/api/v1/rooms/channel:random/members")
        assert status == 404

        # the refusal left the session usable
        assert c.sio.connected
        assert await c.call("heartbeat", {}) == {"ok": True}
        assert (await c.call("channel:join", {"channel_id": "team-blue"}))["ok"] is True
        session = await session_of(daemon, c.sid)
        assert session is not None
        assert session["rooms"] == sorted(
            ["user:alice", "channel:general", "channel:team-red", "channel:team-blue"]
        )
    finally:
        await c.close()


async def test_channel_join_refuses_malformed_ids(daemon: DaemonProcess) -> None:
    c = await connect(daemon, "alice", channels=["*"])
    try:
        for bad in [{}, {"channel_id": ""}, {"channel_id": None}, {"channel_id": "a\nb"}, "x"]:
            assert refused(await c.call("channel:join", bad), "invalid_request"), bad
        assert refused(await c.call("channel:join", {"channel_id": "x" * 300}), "invalid_request")
        assert (await c.call("channel:join", {"channel_id": "ok"}))["ok"] is True
    finally:
        await c.close()


async def test_channel_leave(daemon: DaemonProcess) -> None:
    c = await connect(daemon, "alice", channels=["general"])
    try:
        await c.call("channel:join", {"channel_id": "general"})
        assert c.sid in await members(daemon, "channel:general")
        assert await c.call("channel:leave", {"channel_id": "general"}) == {
            "ok": True,
            "channel_id": "general",
        }
        status, _ = await http(daemon, "GET", "/api/v1/rooms/channel:general/members")
        assert status == 404
        # leaving a channel the session is not in is answered, not an error
        assert await c.call("channel:leave", {"channel_id": "general"}) == {
            "ok": False,
            "channel_id": "general",
        }
        # after leaving, the session may no longer send to the channel
        ack = await c.call("events:channel", {"channel_id": "general", "data": {"type": "message"}})
        assert refused(ack, "forbidden")
    finally:
        await c.close()


async def test_join_channels_enters_only_exact_grants(daemon: DaemonProcess) -> None:
    grants = ["general", "news", "team-*", "dm-?", "[ab]"]
    c = await connect(daemon, "alice")  # connected with no grants at all
    try:
        fresh = daemon.token("alice", channels=grants)
        ack = await c.call("join-channels", {"auth": {"token": fresh}})
        assert ack == {"ok": True, "channels": ["general", "news"]}
        session = await session_of(daemon, c.sid)
        assert session is not None
        assert session["rooms"] == ["channel:general", "channel:news", "user:alice"]
        # the fresh token's glob grants now apply to channel:join
        assert (await c.call("channel:join", {"channel_id": "team-x"}))["ok"] is True
        # without a token, the session's current grants are used
        assert (await c.call("join-channels", {}))["channels"] == ["general", "news"]
        ack = await c.call("join-channels", {"auth": {"token": daemon.token("bob")}})
        assert refused(ack, "forbidden")
    finally:
        await c.close()


async def test_channel_events_relay_with_identity_from_the_token(daemon: DaemonProcess) -> None:
    alice = await connect(daemon, "alice", name="Alice", channels=["general"])
    bob = await connect(daemon, "bob", name="Bob", channels=["general"])
    carol = await connect(daemon, "carol", name="Carol", channels=["general"])  # never joins
    try:
        for c in (alice, bob):
            assert (await c.call("channel:join", {"channel_id": "general"}))["ok"] is True
        forged = {
            "channel_id": "general",
            "message_id": "m1",
            "data": {"type": "message", "data": {"content": "hi"}},
            "user": {"id": "mallory", "name": "Mallory"},
            "user_id": "mallory",
            "user_name": "Mallory",
        }
        assert await alice.call("events:channel", forged) == {"ok": True}
        expected = {
            "channel_id": "general",
            "message_id": "m1",
            "data": {"type": "message", "data": {"content": "hi"}},
            "user": {"id": "alice", "name": "Alice"},
        }
        assert await bob.next_event("events:channel") == expected
        assert await alice.next_event("events:channel") == expected  # the sender is a member
        await barrier(daemon, carol)
        assert carol.received("events:channel") == []
        # message_id exactly as sent: null stays null (Open WebUI's typing), absent stays absent
        typing = {"channel_id": "general", "message_id": None,
                  "data": {"type": "typing", "data": {"typing": True}}}  # fmt: skip
        assert await alice.call("events:channel", typing) == {"ok": True}
        seen = await bob.next_event("events:channel", lambda d: d["data"]["type"] == "typing")
        assert "message_id" in seen and seen["message_id"] is None
        plain = {"channel_id": "general", "data": {"type": "note", "data": 1}}
        assert await alice.call("events:channel", plain) == {"ok": True}
        seen = await bob.next_event("events:channel", lambda d: d["data"]["type"] == "note")
        assert "message_id" not in seen
    finally:
        for c in (alice, bob, carol):
            await c.close()


async def test_channel_events_from_non_members_are_refused(daemon: DaemonProcess) -> None:
    alice = await connect(daemon, "alice", channels=["general"])
    bob = await connect(daemon, "bob", channels=["general"])
    eve = await connect(daemon, "eve", channels=["other"])
    try:
        await alice.call("channel:join", {"channel_id": "general"})
        message = {"channel_id": "general", "data": {"type": "message", "data": "x"}}
        assert refused(await bob.call("events:channel", message), "forbidden")  # granted, not in
        assert refused(await eve.call("events:channel", message), "forbidden")  # not granted
        assert (await eve.next_event("error"))["event"] == "events:channel"
        bad = {"channel_id": "general", "data": {"data": "no type"}}
        assert refused(await alice.call("events:channel", bad), "invalid_request")
        await barrier(daemon, alice)
        assert alice.received("events:channel") == []
    finally:
        for c in (alice, bob, eve):
            await c.close()


async def test_usage_marks_a_model_until_it_expires(make_daemon: Any) -> None:
    d: DaemonProcess = make_daemon(RTCTL_USAGE_TTL="1")
    c = await connect(d)

    async def usage() -> list[dict[str, Any]]:
        status, body = await http(d, "GET", "/api/v1/usage")
        assert status == 200
        return list(body)

    try:
        assert await c.call("usage", {"model": "llama3", "action": "generate"}) == {"ok": True}
        [record] = await usage()
        assert record["model"] == "llama3"
        assert record["sessions"] == [c.sid] and record["count"] == 1
        # renewed every 0.3 s, the mark outlives its 1 s TTL
        first = time.monotonic()
        while time.monotonic() - first < 1.6:
            await asyncio.sleep(0.3)
            assert await c.call("usage", {"model": "llama3"}) == {"ok": True}
            assert [u["model"] for u in await usage()] == ["llama3"]
        # left alone, it expires
        await until(lambda: _empty(usage()), 4.0, "the usage mark to expire")
        control = ["gpt\x1b[2J", "a\nb", "tab\there", "nul\x00", "\x7f", "rtl\u202eevil", "\x9b31m"]
        for bad in [{}, {"model": ""}, {"model": 7}, {"model": "m" * 300},
                    *({"model": name} for name in control)]:  # fmt: skip
            assert refused(await c.call("usage", bad), "invalid_request"), bad
        assert await usage() == []
    finally:
        await c.close()


async def _empty(pending: Any) -> bool:
    return await pending == []


async def test_usage_marks_leave_with_the_session(daemon: DaemonProcess) -> None:
    c = await connect(daemon)
    await c.call("usage", {"model": "m"})
    assert (await http(daemon, "GET", "/api/v1/usage"))[1][0]["sessions"] == [c.sid]
    await c.close()
    await until(
        lambda: _empty(http_body(daemon, "/api/v1/usage")), what="usage to go with the session"
    )


async def http_body(d: DaemonProcess, path: str) -> Any:
    status, body = await http(d, "GET", path)
    assert status == 200
    return body


async def test_unknown_events_are_refused(daemon: DaemonProcess) -> None:
    c = await connect(daemon)
    try:
        ack = await c.call("no-such-event", {"x": 1})
        assert refused(ack, "unknown_event")
        assert await c.next_event("error") == {"event": "no-such-event", **ack["error"]}
        # names python-socketio keeps for its own handlers are just unknown events
        for name in ("connect", "disconnect", "*"):
            ack = await c.call(name, {"asgi.scope": {"client": 5}})
            assert refused(ack, "unknown_event"), name
        assert refused(await c.call("*"), "unknown_event")
        # ...and they did not touch the session: it is still listed and usable
        assert await session_of(daemon, c.sid) is not None
        assert await c.call("heartbeat", {}) == {"ok": True}
        assert c.sio.connected
    finally:
        await c.close()


async def test_rate_limit_refuses_then_recovers(make_daemon: Any) -> None:
    d: DaemonProcess = make_daemon(RTCTL_RATE_LIMIT="5", RTCTL_RATE_BURST="5")
    c = await connect(d)
    other = await connect(d, "bob")
    try:
        acks = await asyncio.gather(*(c.call("heartbeat", {}) for _ in range(20)))
        ok = [a for a in acks if a == {"ok": True}]
        limited = [a for a in acks if refused(a, "rate_limited")]
        assert len(ok) + len(limited) == 20
        assert 5 <= len(ok) <= 12, acks  # the burst, plus what refilled meanwhile
        errors = await until(
            lambda: len(c.received("error")) >= len(limited) and c.received("error")
        )
        assert {e["code"] for e in errors} == {"rate_limited"}
        # unknown events count against the same budget
        assert refused(await c.call("whatever", {}), "rate_limited")
        # another session has its own bucket
        assert await other.call("heartbeat", {}) == {"ok": True}
        # the session stayed connected and recovers as the bucket refills (5 per second)
        assert c.sio.connected
        started = time.monotonic()

        async def recovered() -> bool:
            return bool(await c.call("heartbeat", {}) == {"ok": True})

        await until(recovered, 2.0, "the rate limit to let events through again", interval=0.25)
        assert time.monotonic() - started < 1.5
        assert await session_of(d, c.sid) is not None
    finally:
        await c.close()
        await other.close()


async def test_oversize_payload_drops_only_that_socket(make_daemon: Any) -> None:
    """A frame over ``RTCTL_MAX_PAYLOAD`` closes the socket that sent it.

    There is no per-message refusal for an over-size frame: Engine.IO refuses a
    websocket message over ``max_http_buffer_size`` by closing the connection (and
    uvicorn closes with 1009 past ``ws_max_size``, a little above it). The client sees a
    disconnect; its session is removed; the daemon and every other session go on.
    """
    d: DaemonProcess = make_daemon(RTCTL_MAX_PAYLOAD="2000")
    bystander = await connect(d, "bob", channels=["general"])
    try:
        await bystander.call("channel:join", {"channel_id": "general"})
        near = await connect(d, "alice", channels=["general"])
        await near.call("channel:join", {"channel_id": "general"})
        under = {"channel_id": "general", "data": {"type": "t", "data": "x" * 1500}}
        assert await near.call("events:channel", under) == {"ok": True}
        assert (await bystander.next_event("events:channel"))["data"]["data"] == "x" * 1500

        for size in (2500, 50_000):  # over Engine.IO's bound; over uvicorn's frame bound
            c = await connect(d, "alice")
            sid = c.sid
            try:
                await c.sio.emit("usage", {"model": "x" * size})
                await c.wait_disconnected()
                assert c.received("error") == []  # dropped, not answered
                await until(
                    lambda sid=sid: _missing(d, sid), what="the dropped session to be removed"
                )
            finally:
                await c.close()
            status, _ = await http(d, "GET", "/healthz", auth=False)
            assert status == 200
            assert bystander.sio.connected
            assert await bystander.call("heartbeat", {}) == {"ok": True}
        assert near.sio.connected
        await near.close()
    finally:
        await bystander.close()
    assert (await http(d, "GET", "/readyz", auth=False))[0] == 200


async def _missing(d: DaemonProcess, sid: str) -> bool:
    return await session_of(d, sid) is None


async def test_join_note_enters_the_note_room(daemon: DaemonProcess) -> None:
    """Open WebUI's note page sends join-note; its backend pushes note-events to the room
    (SPEC §4 calls the event events:note; the hub relays any name)."""
    alice = await connect(daemon, "alice", docs=["note:*"])
    reader = await connect(daemon, "rita", docs_ro=["note:n1"])
    stranger = await connect(daemon, "sam", docs=["other:*"])
    try:
        assert await alice.call("join-note", {"note_id": "n1"}) == {"ok": True, "note_id": "n1"}
        ack = await reader.call("join-note", {"note_id": "n1", "auth": {"token": daemon.token(
            "rita", docs_ro=["note:n1"])}})  # fmt: skip
        assert ack["ok"] is True  # read access is enough; a token given re-authenticates
        assert refused(await stranger.call("join-note", {"note_id": "n1"}), "forbidden")
        assert refused(await alice.call("join-note", {}), "invalid_request")
        body = {"event": "note-events", "data": {"type": "update", "id": "n1"}, "room": "note:n1"}
        status, result = await http(daemon, "POST", "/api/v1/emit", body)
        assert status == 200, result
        for c in (alice, reader):
            assert (await c.next_event("note-events")) == {"type": "update", "id": "n1"}
        await barrier(daemon, stranger)
        assert stranger.received("note-events") == []
    finally:
        for c in (alice, reader, stranger):
            await c.close()


async def test_a_session_marks_a_bounded_number_of_models(daemon: DaemonProcess) -> None:
    from rtctl.hub.hub import MAX_MODELS_PER_SESSION

    c = await connect(daemon)
    try:
        for i in range(MAX_MODELS_PER_SESSION):
            assert await c.call("usage", {"model": f"m{i}"}) == {"ok": True}
        assert await c.call("usage", {"model": "m0"}) == {"ok": True}  # renewing is fine
        assert refused(await c.call("usage", {"model": "one-too-many"}), "too_many_models")
    finally:
        await c.close()


async def test_a_fresh_token_with_fewer_grants_leaves_their_rooms(daemon: DaemonProcess) -> None:
    """Whatever re-authenticates (user-join, join-channels, join-note with a token), the
    session leaves the channel and note rooms the new token no longer grants."""
    c = await connect(daemon, "alice", channels=["c1", "c2"], docs=["note:*"])
    try:
        await c.call("channel:join", {"channel_id": "c1"})
        await c.call("join-note", {"note_id": "n1"})
        assert {"channel:c1", "note:n1"} <= set((await session_of(daemon, c.sid))["rooms"])
        fewer = daemon.token("alice", channels=["c2"], docs=["note:n2"])
        ack = await c.call("join-channels", {"auth": {"token": fewer}})
        assert ack == {"ok": True, "channels": ["c2"]}
        rooms = set((await session_of(daemon, c.sid))["rooms"])
        assert "channel:c1" not in rooms and "note:n1" not in rooms and "channel:c2" in rooms
        await c.call("join-note", {"note_id": "n2", "auth": {"token": daemon.token(
            "alice", docs=["note:n2"])}})  # fmt: skip
        rooms = set((await session_of(daemon, c.sid))["rooms"])
        assert "note:n2" in rooms and "channel:c2" not in rooms  # that token grants no channel
    finally:
        await c.close()
