"""Document events (SPEC §4, §5) with real python-socketio clients against real daemons:
access, validation before storage, relaying, awareness, y-protocols sync, durability."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pycrdt
import pytest

from rtctl.docs import awareness, yjs
from tests.conftest import DaemonProcess
from tests.redis_server import RedisServer
from tests.server.live_client import LiveClient, connect, until

pytestmark = pytest.mark.anyio


class Editor:
    """A pycrdt document wired to one session: local edits go out as updates."""

    def __init__(self, client: LiveClient, doc_id: str, *, binary: bool = False) -> None:
        self.client, self.doc_id, self.binary = client, doc_id, binary
        self.doc: pycrdt.Doc = pycrdt.Doc()
        self.text = self.doc.get("content", type=pycrdt.Text)
        self.outbox: list[bytes] = []
        self.doc.observe(self._on_update)
        self._remote = False

    def _on_update(self, event: Any) -> None:
        if not self._remote:
            self.outbox.append(event.update)

    def apply(self, update: Any) -> None:
        self._remote = True
        try:
            self.doc.apply_update(bytes(update))
        finally:
            self._remote = False

    async def join(self) -> dict[str, Any]:
        ack = await self.client.call("ydoc:document:join", {"document_id": self.doc_id})
        assert ack["ok"], ack
        state = await self.client.next_event(
            "ydoc:document:state", lambda d: d["document_id"] == self.doc_id
        )
        self.apply(state["state"])
        return state

    async def push(self) -> list[dict[str, Any]]:
        acks = []
        while self.outbox:
            update = self.outbox.pop(0)
            body = update if self.binary else list(update)
            acks.append(
                await self.client.call(
                    "ydoc:document:update", {"document_id": self.doc_id, "update": body}
                )
            )
        return acks

    async def edit(self, at: int, text: str) -> dict[str, Any]:
        self.text.insert(min(at, len(self.text)), text)
        (ack,) = await self.push()
        return ack

    def take_remote(self) -> None:
        for data in self.client.received("ydoc:document:update"):
            self.apply(data["update"])
        self.client.events = [e for e in self.client.events if e[0] != "ydoc:document:update"]


def grants(doc: str = "note:*", ro: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"docs": [doc]}
    if ro:
        out["docs_ro"] = [ro]
    return out


async def errors_of(client: LiveClient) -> list[str]:
    return [e["code"] for e in client.received("error")]


async def test_join_update_relay_and_state(daemon: DaemonProcess) -> None:
    a = Editor(await connect(daemon, "alice", **grants()), "note:1")
    b = Editor(await connect(daemon, "bob", **grants()), "note:1", binary=True)
    try:
        first = await a.join()
        assert first["sessions"] == [a.client.sid] and first["state"] == list(yjs.EMPTY_UPDATE)
        await b.join()
        joined = await a.client.next_event("ydoc:user:joined")
        assert joined == {"document_id": "note:1", "user_id": "bob", "user_name": "bob"}

        ack = await a.edit(0, "hello")
        assert ack == {"ok": True, "seq": 1}
        relayed = await b.client.next_event("ydoc:document:update")
        assert relayed["user_id"] == "alice" and relayed["socket_id"] == a.client.sid
        assert isinstance(relayed["update"], list)  # relayed in the form its sender used
        b.take_remote()
        assert str(b.text) == "hello"

        assert (await b.edit(5, " world"))["seq"] == 2
        from_b = await a.client.next_event("ydoc:document:update")
        assert isinstance(from_b["update"], bytes)
        a.take_remote()
        assert str(a.text) == str(b.text) == "hello world"
        assert a.client.received("ydoc:document:update") == []  # the sender is skipped

        await a.client.call("ydoc:document:state", {"document_id": "note:1", "binary": True})
        states = a.client.received("ydoc:document:state")
        assert len(states) == 2 and isinstance(states[1]["state"], bytes)
        assert sorted(states[1]["sessions"]) == sorted([a.client.sid, b.client.sid])
        fresh = yjs.load(states[1]["state"])
        assert str(fresh.get("content", type=pycrdt.Text)) == "hello world"

        await b.client.call("ydoc:document:leave", {"document_id": "note:1"})
        left = await a.client.next_event("ydoc:user:left")
        assert left == {"document_id": "note:1", "user_id": "bob"}
    finally:
        await a.client.close()
        await b.client.close()


async def test_access_from_the_token(daemon: DaemonProcess) -> None:
    reader = await connect(daemon, "rita", **grants("other:*", ro="note:*"))
    stranger = await connect(daemon, "sam", **grants("other:*"))
    admin = await connect(daemon, "ada", role="admin")
    try:
        refused = await stranger.call("ydoc:document:join", {"document_id": "note:1"})
        assert refused["error"]["code"] == "forbidden"
        assert (await stranger.next_event("error"))["event"] == "ydoc:document:join"

        ro = Editor(reader, "note:1")
        await ro.join()
        ro.text += "nope"
        (ack,) = await ro.push()
        assert ack["ok"] is False and ack["error"]["code"] == "forbidden"

        boss = Editor(admin, "note:1")
        await boss.join()
        assert (await boss.edit(0, "by admin"))["ok"]
        await until(lambda: reader.received("ydoc:document:update"), what="relay to a reader")

        for bad in ["", "x" * 300, "../etc", "a b", None, 7, "note:{x}"]:
            reply = await admin.call("ydoc:document:join", {"document_id": bad})
            assert reply["error"]["code"] == "invalid_request", bad
        unjoined = await admin.call("ydoc:document:update", {"document_id": "n2", "update": [0, 0]})
        assert unjoined["error"]["code"] == "invalid_request"  # join first
    finally:
        for c in (reader, stranger, admin):
            await c.close()


async def test_bad_updates_are_refused_and_never_stored(daemon: DaemonProcess) -> None:
    a = Editor(await connect(daemon, "alice", **grants()), "note:bad")
    watcher = Editor(await connect(daemon, "bob", **grants()), "note:bad")
    try:
        await a.join()
        await watcher.join()
        await a.edit(0, "base")
        cases: list[tuple[Any, str]] = [
            (b"garbage!", "invalid_update"),
            (list(b"\x01\x01\x05\x00\x04"), "invalid_update"),
            ([256, 1], "invalid_request"),
            ("AAA=", "invalid_request"),
            ([], "invalid_request"),
            (b"\x00" * 600_000, "too_large"),
        ]
        for update, code in cases:
            ack = await a.client.call(
                "ydoc:document:update", {"document_id": "note:bad", "update": update}
            )
            assert ack["ok"] is False and ack["error"]["code"] == code, (update[:8], ack)
        assert (await a.edit(4, "!"))["seq"] == 2  # still usable; nothing bad got a seq
        again = await a.client.call(
            "ydoc:document:update", {"document_id": "note:bad", "update": a.doc.get_update()}
        )
        assert again == {"ok": True}  # nothing new in it: not stored, not relayed
        await until(lambda: len(watcher.client.received("ydoc:document:update")) == 2)
        watcher.take_remote()
        assert str(watcher.text) == "base!"
    finally:
        await a.client.close()
        await watcher.client.close()


async def test_awareness_is_relayed_and_cleared_on_disconnect(daemon: DaemonProcess) -> None:
    a = Editor(await connect(daemon, "alice", **grants()), "note:aw")
    b = Editor(await connect(daemon, "bob", **grants()), "note:aw")
    try:
        await a.join()
        await b.join()
        update = awareness.encode([awareness.AwarenessEntry(4242, 3, {"cursor": 5})])
        ack = await a.client.call(
            "ydoc:awareness:update", {"document_id": "note:aw", "update": list(update)}
        )
        assert ack == {"ok": True}
        seen = await b.client.next_event("ydoc:awareness:update")
        assert seen["user_id"] == "alice" and bytes(seen["update"]) == update
        bad = await a.client.call(
            "ydoc:awareness:update", {"document_id": "note:aw", "update": [1, 2]}
        )
        assert bad["error"]["code"] == "invalid_update"

        await a.client.close()
        gone = await b.client.next_event(
            "ydoc:awareness:update", lambda d: awareness.read(bytes(d["update"]))[0].state
            is None,
        )  # fmt: skip
        (entry,) = awareness.read(bytes(gone["update"]))
        assert entry.client == 4242 and entry.clock == 4
        assert (await b.client.next_event("ydoc:user:left"))["user_id"] == "alice"
    finally:
        await b.client.close()


async def test_awareness_as_json_text_as_open_webui_sends_it(daemon: DaemonProcess) -> None:
    """Open WebUI's editor sends awareness as UTF-8 JSON text {clientID: state}: relayed in
    the form received; another session's client id refused; on leaving, its clients get
    an empty state (a null one would throw in its cursor plugin)."""
    a = Editor(await connect(daemon, "alice", **grants()), "note:awj")
    b = Editor(await connect(daemon, "bob", **grants()), "note:awj")
    try:
        await a.join()
        await b.join()
        mine = json.dumps({"4242": {"user": {"name": "Alice", "color": "#FF6B6B"}}}).encode()
        ack = await a.client.call(
            "ydoc:awareness:update", {"document_id": "note:awj", "update": list(mine)}
        )
        assert ack == {"ok": True}
        seen = await b.client.next_event("ydoc:awareness:update")
        assert seen["user_id"] == "alice" and bytes(seen["update"]) == mine
        assert isinstance(seen["update"], list)  # as it was sent
        theirs = json.dumps({"4242": {"user": {"name": "Mallory"}}}).encode()
        refused = await b.client.call(
            "ydoc:awareness:update", {"document_id": "note:awj", "update": list(theirs)}
        )
        assert refused["error"]["code"] == "forbidden"
        too_many = json.dumps({str(i): {} for i in range(17)}).encode()
        for bad in (b'{"x": 1}', b"{not json", too_many):
            reply = await a.client.call(
                "ydoc:awareness:update", {"document_id": "note:awj", "update": list(bad)}
            )
            assert reply["error"]["code"] == "invalid_update", bad

        await a.client.close()
        gone = await b.client.next_event(
            "ydoc:awareness:update",
            lambda d: json.loads(bytes(d["update"])) == {"4242": {}},
        )
        assert gone["user_id"] == "alice"
    finally:
        await b.client.close()


async def test_sync_protocol_sends_only_what_is_missing(daemon: DaemonProcess) -> None:
    a = Editor(await connect(daemon, "alice", **grants()), "note:sync")
    b = Editor(await connect(daemon, "bob", **grants()), "note:sync", binary=True)
    try:
        await a.join()
        await a.edit(0, "shared")
        await b.join()
        b.client.events.clear()
        # b goes "offline" in spirit: edits locally, then syncs with step 1 and step 2
        a.text.insert(6, " by a")
        await a.push()
        b.text.insert(0, "B: ")
        mine = b.outbox.pop()
        step1 = yjs.sync_message(yjs.SYNC_STEP1, b.doc.get_state())
        ack = await b.client.call("ydoc:sync", {"document_id": "note:sync", "message": step1})
        assert ack == {"ok": True}
        replies = await until(lambda: len(b.client.received("ydoc:sync")) >= 2 and
                              b.client.received("ydoc:sync"))  # fmt: skip
        kinds = [yjs.read_sync_message(r["message"]) for r in replies]
        assert [k for k, _ in kinds] == [yjs.SYNC_STEP2, yjs.SYNC_STEP1]
        assert all(isinstance(r["message"], bytes) for r in replies)
        missing = kinds[0][1]
        assert len(missing) < len(a.doc.get_update())  # only what b lacked
        b.apply(missing)
        server_state = kinds[1][1]
        reply = yjs.sync_message(yjs.SYNC_STEP2, b.doc.get_update(server_state))
        pushed = await b.client.call("ydoc:sync", {"document_id": "note:sync", "message": reply})
        assert pushed["ok"] and pushed["seq"] == 3
        await until(lambda: a.client.received("ydoc:document:update"))
        a.take_remote()
        b.take_remote()
        assert str(a.text) == str(b.text) == "B: shared by a"
        assert mine  # the offline edit travelled inside step 2
        bad = await b.client.call("ydoc:sync", {"document_id": "note:sync", "message": [9, 0]})
        assert bad["error"]["code"] == "invalid_update"
    finally:
        await a.client.close()
        await b.client.close()


async def test_documents_survive_a_restart(make_daemon: Any) -> None:
    d = make_daemon(RTCTL_RATE_LIMIT="0")
    a = Editor(await connect(d, "alice", **grants()), "note:durable")
    await a.join()
    for i in range(20):
        await a.edit(i, "x")
    await a.client.close()
    assert d.stop() == 0
    d.start()
    b = Editor(await connect(d, "bob", **grants()), "note:durable")
    try:
        await b.join()
        assert str(b.text) == "x" * 20
    finally:
        await b.client.close()


async def test_compaction_keeps_every_edit(make_daemon: Any) -> None:
    d = make_daemon(RTCTL_RATE_LIMIT="0", RTCTL_DOC_COMPACT_UPDATES="10")
    editors = [Editor(await connect(d, f"u{i}", **grants()), "note:c") for i in range(3)]
    try:
        for e in editors:
            await e.join()

        async def type_into(e: Editor, n: int) -> None:
            for i in range(n):
                e.take_remote()
                await e.edit(i, chr(ord("a") + editors.index(e)))

        await asyncio.gather(*(type_into(e, 60) for e in editors))
        fresh = Editor(await connect(d, "late", **grants()), "note:c")
        editors.append(fresh)
        await fresh.join()

        def converged() -> bool:
            for e in editors:
                e.take_remote()
            return len({str(e.text) for e in editors}) == 1 and len(str(fresh.text)) == 180

        await until(converged, what="every editor holding all 180 edits")
    finally:
        for e in editors:
            await e.client.close()


async def test_two_daemons_on_redis_share_documents(
    make_daemon: Any, redis_server: RedisServer
) -> None:
    env = {"RTCTL_REDIS_URL": redis_server.url, "RTCTL_RATE_LIMIT": "0",
           "RTCTL_DOC_COMPACT_UPDATES": "20"}  # fmt: skip
    d1 = make_daemon(RTCTL_NODE_ID="n1", **env)
    d2 = make_daemon(RTCTL_NODE_ID="n2", **env)
    a = Editor(await connect(d1, "alice", **grants()), "note:r")
    b = Editor(await connect(d2, "bob", **grants()), "note:r", binary=True)
    try:
        await a.join()
        state = await b.join()
        assert sorted(state["sessions"]) == sorted([a.client.sid, b.client.sid])
        for i in range(40):
            a.take_remote()
            await a.edit(i, "a")
            b.take_remote()
            await b.edit(0, "b")

        def converged() -> bool:
            a.take_remote()
            b.take_remote()
            return str(a.text) == str(b.text) and len(str(a.text)) == 80

        await until(converged, what="both daemons' editors converging")
        await a.client.close()
        await b.client.close()
        for d in (d1, d2):
            assert d.stop() == 0
        d1.start()
        c = Editor(await connect(d1, "carol", **grants()), "note:r")
        await c.join()
        assert str(c.text) == str(a.text)
        await c.client.close()
    finally:
        await a.client.close()
        await b.client.close()


async def test_a_large_state_goes_binary_unless_asked_otherwise(daemon: DaemonProcess) -> None:
    a = Editor(await connect(daemon, "alice", **grants()), "note:big", binary=True)
    b = await connect(daemon, "bob", **grants())
    try:
        await a.join()
        assert (await a.edit(0, "x" * 100_000))["seq"] == 1
        await b.call("ydoc:document:join", {"document_id": "note:big"})
        await b.call("ydoc:document:state", {"document_id": "note:big", "binary": False})
        default, asked = await until(lambda: len(b.received("ydoc:document:state")) == 2
                                     and b.received("ydoc:document:state"))  # fmt: skip
        assert isinstance(default["state"], bytes) and isinstance(asked["state"], list)
        assert bytes(asked["state"]) == default["state"]
    finally:
        await a.client.close()
        await b.close()


async def test_a_fresh_token_without_the_document_leaves_it(daemon: DaemonProcess) -> None:
    """Re-authenticating (here with user-join) with a token that no longer grants a
    document takes the session out of it: no more relayed updates, no more awareness."""
    writer = Editor(await connect(daemon, "alice", **grants()), "note:kept")
    reader = Editor(await connect(daemon, "bob", **grants()), "note:kept")
    try:
        await writer.join()
        await reader.join()
        await writer.edit(0, "before")
        await reader.client.next_event("ydoc:document:update")
        narrower = daemon.token("bob", docs=["note:other"])
        assert (await reader.client.call("user-join", {"auth": {"token": narrower}}))["id"] == "bob"
        left = await writer.client.next_event("ydoc:user:left")
        assert left == {"document_id": "note:kept", "user_id": "bob"}
        reader.client.events.clear()
        await writer.edit(6, " after")
        mark = await reader.client.call("heartbeat", {})  # anything relayed arrived before this
        assert mark == {"ok": True} and reader.client.received("ydoc:document:update") == []
        again = await reader.client.call("ydoc:document:join", {"document_id": "note:kept"})
        assert again["error"]["code"] == "forbidden"
    finally:
        await writer.client.close()
        await reader.client.close()
