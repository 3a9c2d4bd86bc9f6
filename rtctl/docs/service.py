"""Collaborative documents on one node: the ``ydoc:*`` events, loaded copies, relaying.

A node keeps an in-memory pycrdt copy of each document one of its sessions has
joined, and drops it when the last of them leaves. The copy validates every
incoming update (it must decode, and integrate without pending history) before
the update is appended to the store; only once the store has it durably is it
relayed to the document's room (on every node, through the room machinery).

No writer is ever forked (SPEC §5). A session's document events run in order
through its inbox (``rtctl.docs.inbox``), paced by its rate rather than refused.
A store that does not answer is retried for as long as the session's backlog
bound allows; an append is idempotent, so a call that timed out but ran is not
stored twice. An update whose history is missing is held (``rtctl.docs.held``)
while the hub asks its writer for what it lacks: a y-protocols sync step 1 to a
client that speaks ``ydoc:sync``, else an empty ``ydoc:document:state``, which a
provider such as Open WebUI's answers with its whole state. A session that cannot
be brought back in step within the bounds is disconnected, so its client rejoins.

The copies themselves, and how they keep up with the store, are ``rtctl.docs.copies``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, Protocol

import pycrdt

from rtctl.auth import Identity
from rtctl.docs import awareness, yjs
from rtctl.docs.compaction import AutoCompactor
from rtctl.docs.copies import Copies, LoadedDoc, patiently
from rtctl.docs.held import Held, HeldKeeper, Write
from rtctl.docs.inbox import DocInbox, InboxClosed, Pace
from rtctl.docs.limits import DocLimits, payload_bytes
from rtctl.docs.stats import DocStats
from rtctl.docs.store import DocStore, doc_room, valid_doc_id
from rtctl.docs.yjs import in_kind
from rtctl.errors import Forbidden, PayloadTooLarge, RateLimited, RtctlError, UsageError
from rtctl.hub import payload as p
from rtctl.hub.sessions import SessionPool
from rtctl.hub.transport import Transport
from rtctl.state.base import StateBackend

log = logging.getLogger("rtctl.docs")

# A larger state goes binary unless the client asks otherwise, and so does a larger relayed
# update: python-socketio walks an array of byte values at about 0.25 ms per KiB
BINARY_STATE_ABOVE = 64 * 1024
REDUNDANT_COST = 0.1  # tokens an update the document already had costs its session
STATE_TOKEN_BYTES = 64 * 1024  # a state answer costs a token per this many bytes


class DocWatcher(Protocol):
    def stored(self, doc: LoadedDoc) -> None: ...
    def unloading(self, doc: LoadedDoc) -> None: ...


class DocService:
    # Events paced in a session's inbox instead of refused for rate; awareness, ephemeral,
    # counts against the session's ordinary event rate.
    PACED = frozenset({"ydoc:document:join", "ydoc:document:state", "ydoc:document:update",
                       "ydoc:sync", "ydoc:document:leave"})  # fmt: skip

    def __init__(
        self,
        store: DocStore,
        pool: SessionPool,
        transport: Transport,
        state: StateBackend,
        *,
        max_update: int = 512 * 1024,
        compact_updates: int = 500,
        pace: Pace | None = None,
        limits: DocLimits | None = None,
        watcher: DocWatcher | None = None,
    ) -> None:
        self.store = store
        self.watcher = watcher  # told of stored writes and unloads (document.updated)
        self.pool = pool
        self.transport = transport
        self.state = state
        self.max_update = max_update
        self.pace = pace or Pace()
        self.limits = limits or DocLimits()
        self._joined: dict[str, set[str]] = {}  # sid -> documents it is in
        self._inboxes: dict[str, DocInbox] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self.stats = DocStats(self)
        self.held = HeldKeeper(transport, store=self._store_and_relay, charge=self._charge,
                               disconnect=self._disconnect, spawn=self._spawn)  # fmt: skip
        self.copies = Copies(store, AutoCompactor(store, compact_updates, self._spawn),
                             held_seconds=self.pace.held_seconds,
                             on_gain=self.held.release_soon)  # fmt: skip
        self.loaded = self.copies.loaded

    def events(self) -> dict[str, Any]:
        return {
            "ydoc:document:join": self.join,
            "ydoc:document:state": self.state_request,
            "ydoc:document:update": self.update,
            "ydoc:sync": self.sync,
            "ydoc:awareness:update": self.awareness,
            "ydoc:document:leave": self.leave,
        }

    # access ------------------------------------------------------------------------------

    def _reader(self, sid: str, doc_id: str) -> Identity:
        identity = self.pool.identity(sid)
        if not identity.may_read_doc(doc_id):
            raise Forbidden(f"the token does not grant document {doc_id}")
        return identity

    def _writer(self, sid: str, doc_id: str) -> Identity:
        identity = self._reader(sid, doc_id)
        if not identity.may_write_doc(doc_id):
            raise Forbidden(f"the token grants document {doc_id} read-only")
        return identity

    def _member(self, sid: str, doc_id: str) -> LoadedDoc:
        doc = self.loaded.get(doc_id)
        if doc is None or sid not in doc.sids:
            raise UsageError(f"join document {doc_id} first (ydoc:document:join)")
        return doc

    # the inbox ---------------------------------------------------------------------------

    async def _queued(
        self, sid: str, data: Any, run: Callable[[], Awaitable[Any]], *, ephemeral: bool = False
    ) -> Any:
        """Run ``run`` in the session's inbox, after what it sent before; its result,
        or, for a held update, what that update comes to once stored.

        ``data``, the event's payload, is emptied first: while the job waits its turn
        the payload stays referenced by the Socket.IO layer, and an editor may send
        more than the update in it (Open WebUI's sends the note's whole content with
        every keystroke). What the job needs, ``run`` holds."""
        size = sum(len(v) for v in (data or {}).values() if isinstance(v, bytes | list | str))
        if isinstance(data, dict):
            data.clear()
        inbox = self._inboxes.get(sid)
        if inbox is None:
            self.pool.identity(sid)  # raises for a session that is gone
            if not self.transport.hosts(sid):  # closing: its inbox is gone for good
                raise InboxClosed("the session is closing")
            inbox = self._inboxes[sid] = DocInbox(
                sid, rate=self.pace.rate, burst=self.pace.burst,
                max_bytes=self.pace.backlog_bytes, max_seconds=self.pace.backlog_seconds,
                on_overflow=self._disconnect,
            )  # fmt: skip
        future = inbox.submit(run, size, ephemeral=ephemeral)
        if future is None:
            raise RateLimited("awareness dropped: the session's document traffic is backed up")
        result = await future
        while isinstance(result, asyncio.Future):
            result = await result
        return result

    def backlog_bytes(self) -> int:
        return sum(inbox.bytes for inbox in self._inboxes.values())

    def _charge(self, sid: str, cost: float) -> None:
        inbox = self._inboxes.get(sid)
        if inbox is not None:
            inbox.charge(cost)

    def _disconnect(self, sid: str, reason: str) -> None:
        """Have a session's client reconnect, rejoin and sync from scratch."""
        log.warning("disconnecting session %s: %s", sid, reason)
        self.stats.reconnects += 1
        self._spawn(self.transport.reconnect(sid))

    def _unload_if_idle(self, doc: LoadedDoc) -> None:
        if not doc.sids and self.loaded.get(doc.id) is doc:
            if self.watcher is not None:
                self.watcher.unloading(doc)
            del self.loaded[doc.id]
            self.held.drop(doc)

    # events: validated at once, run in the session's order -------------------------------

    async def join(self, sid: str, data: Any) -> Any:
        body = p.obj(data)
        doc_id, binary = valid_doc_id(body.get("document_id")), body.get("binary")
        return await self._queued(sid, None, lambda: self._join(sid, doc_id, binary))

    async def state_request(self, sid: str, data: Any) -> Any:
        body = p.obj(data)
        doc_id, binary = valid_doc_id(body.get("document_id")), body.get("binary")
        return await self._queued(sid, None, lambda: self._state(sid, doc_id, binary))

    async def update(self, sid: str, data: Any) -> Any:
        body = p.obj(data)
        doc_id = valid_doc_id(body.get("document_id"))
        update, binary = payload_bytes(body.get("update"), self.max_update)
        return await self._queued(
            sid, data, lambda: self._update(sid, doc_id, update, binary)
        )  # fmt: skip

    async def sync(self, sid: str, data: Any) -> Any:
        body = p.obj(data)
        doc_id = valid_doc_id(body.get("document_id"))
        message, binary = payload_bytes(body.get("message"), self.max_update + 16, "message")
        kind, payload = yjs.read_sync_message(message)
        if kind == yjs.SYNC_STEP1:
            yjs.decode_state_vector(payload)  # refuse a malformed state vector clearly
        elif len(payload) > self.max_update:
            raise PayloadTooLarge(f"update is larger than {self.max_update} bytes")
        self.held.speaks_sync(sid, doc_id)
        return await self._queued(
            sid, data, lambda: self._sync(sid, doc_id, kind, payload, binary)
        )  # fmt: skip

    async def awareness(self, sid: str, data: Any) -> Any:
        body = p.obj(data)
        doc_id = valid_doc_id(body.get("document_id"))
        update, binary = payload_bytes(body.get("update"), awareness.MAX_BYTES, "awareness update")
        entries, text = awareness.parse(update)
        return await self._queued(
            sid, data, lambda: self._awareness(sid, doc_id, update, binary, (entries, text)),
            ephemeral=True,
        )  # fmt: skip

    async def leave(self, sid: str, data: Any) -> Any:
        doc_id = valid_doc_id(p.obj(data).get("document_id"))
        return await self._queued(sid, None, lambda: self._leave(sid, doc_id))

    # the jobs ----------------------------------------------------------------------------

    async def _join(self, sid: str, doc_id: str, binary: Any) -> dict[str, Any]:
        identity = self._reader(sid, doc_id)
        doc = self.copies.load(doc_id)
        first = sid not in doc.sids
        doc.sids.add(sid)
        self._joined.setdefault(sid, set()).add(doc_id)
        try:
            # Enter the room before reading: an update stored after the read is then
            # relayed to this session, one stored before is in the state it gets.
            await patiently(lambda: self.pool.join(sid, doc_room(doc_id)))
            await self.copies.catch_up(doc)
        except BaseException:
            if first:
                self._forget(sid, doc)
            raise
        await self._send_state(sid, doc, binary=binary)
        if first:
            self.held.ask_after_join(sid, doc, binary is True)
            await self.transport.emit(
                "ydoc:user:joined",
                {"document_id": doc_id, "user_id": identity.user_id, "user_name": identity.name},
                to=doc_room(doc_id),
                skip_sid=sid,
            )
        return {"ok": True, "document_id": doc_id}

    async def _state(self, sid: str, doc_id: str, binary: Any) -> dict[str, Any]:
        self._reader(sid, doc_id)
        doc = self.loaded.get(doc_id)
        if doc is None or sid not in doc.sids:
            return await self._join(sid, doc_id, binary)  # asking for the state implies joining
        await self.copies.catch_up(doc)
        await self._send_state(sid, doc, binary=binary)
        return {"ok": True, "document_id": doc_id}

    async def _send_state(self, sid: str, doc: LoadedDoc, *, binary: Any) -> None:
        """The whole document to one session: as the client asked (``binary``), else
        an array of byte values up to ``BINARY_STATE_ABOVE`` and binary past it (a
        megabyte as a JSON array costs the event loop half a second to encode)."""
        await self.copies.settled(doc)
        state = doc.state_update()
        if binary is False:
            self.limits.check_array_answer(len(state))
        elif not isinstance(binary, bool):
            binary = len(state) > BINARY_STATE_ABOVE
        self._charge(sid, 1 + len(state) / STATE_TOKEN_BYTES)
        sessions = await patiently(lambda: self.state.list_sessions(room=doc_room(doc.id)))
        await self.transport.emit(
            "ydoc:document:state",
            {"document_id": doc.id, "state": in_kind(state, binary),
             "sessions": [s.sid for s in sessions]},
            to=sid,
        )  # fmt: skip

    async def _update(self, sid: str, doc_id: str, update: bytes, binary: bool) -> Any:
        identity = self._writer(sid, doc_id)
        return await self._write(sid, identity, self._member(sid, doc_id), update, binary)

    async def _sync(self, sid: str, doc_id: str, kind: int, payload: bytes, binary: bool) -> Any:
        self._reader(sid, doc_id)
        doc = self._member(sid, doc_id)
        if kind != yjs.SYNC_STEP1:
            return await self._write(sid, self._writer(sid, doc_id), doc, payload, binary)
        await self.copies.catch_up(doc)
        await self.copies.settled(doc)
        try:
            missing = doc.ydoc.get_update(payload)
        except ValueError as exc:
            raise yjs.MalformedUpdate(f"state vector does not decode: {exc}") from None
        self._charge(sid, 1 + len(missing) / STATE_TOKEN_BYTES)
        for reply in (
            yjs.sync_message(yjs.SYNC_STEP2, missing),
            yjs.sync_message(yjs.SYNC_STEP1, doc.ydoc.get_state()),
        ):
            await self.transport.emit(
                "ydoc:sync", {"document_id": doc_id, "message": in_kind(reply, binary)}, to=sid
            )
        return {"ok": True}

    async def _awareness(
        self, sid: str, doc_id: str, update: bytes, binary: bool, parsed: tuple[Any, bool]
    ) -> dict[str, Any]:
        identity = self._reader(sid, doc_id)
        doc = self._member(sid, doc_id)
        others = {c for s, clients in doc.awareness.items() if s != sid for c in clients}
        awareness.note(doc.awareness.setdefault(sid, {}), parsed[0], others)
        if parsed[1]:
            doc.awareness_text.add(sid)
        await self.transport.emit(
            "ydoc:awareness:update",
            {"document_id": doc_id, "user_id": identity.user_id,
             "update": in_kind(update, binary)},
            to=doc_room(doc_id),
            skip_sid=sid,
        )  # fmt: skip
        return {"ok": True}

    async def _leave(self, sid: str, doc_id: str) -> dict[str, Any]:
        doc = self.loaded.get(doc_id)
        if doc is None or sid not in doc.sids:
            return {"ok": False, "document_id": doc_id}
        identity = self.pool.identity(sid)
        await self._depart(sid, doc, identity.user_id)
        await patiently(lambda: self.pool.leave(sid, doc_room(doc_id)))
        return {"ok": True, "document_id": doc_id}

    async def reauthenticated(self, sid: str, identity: Identity) -> None:
        """The session took a fresh token: it leaves the documents the token no longer
        lets it read. Their relays stop at once (it leaves the rooms now); the rest of the
        leaving takes its turn after what the session sent before, without holding the
        answer to the event that brought the token. A write grant is checked per update."""
        for doc_id in sorted(self._joined.get(sid, ())):
            if not identity.may_read_doc(doc_id):
                await patiently(partial(self.pool.leave, sid, doc_room(doc_id)))
                self._spawn(self._queued(sid, None, partial(self._leave, sid, doc_id)))

    # writing -----------------------------------------------------------------------------

    async def _write(
        self, sid: str, identity: Identity, doc: LoadedDoc, update: bytes, binary: bool
    ) -> dict[str, Any] | asyncio.Future[Any]:
        """Store an update durably, then relay it; or hold it until its history arrives."""
        shape = self.limits.inspect(update, doc.state_vector())
        if doc.stale or not shape.integrates_into(doc.state_vector()):
            await self.copies.catch_up(doc)  # it may build on what another node stored
            if not shape.integrates_into(doc.state_vector()):
                return self.held.hold(Held(sid, identity, update, binary, shape), doc)
        return await self._store_and_relay(Write(sid, identity, update, binary, shape), doc)

    async def _store_and_relay(self, write: Write, doc: LoadedDoc) -> dict[str, Any]:
        """Apply to the copy at once; then append and relay in a task of its own, which
        goes on when its caller stops waiting (a deadline, a disconnect): an append that
        may have run must be relayed once it did, or readers would never see it."""
        if not self.copies.apply(doc, write.update, write.shape):
            self._charge(write.sid, REDUNDANT_COST)
            return {"ok": True}  # the document had all of it: nothing to store or relay
        self._charge(write.sid, 1)
        task = self._spawn(self._append_and_relay(write, doc))
        result: dict[str, Any] = await asyncio.shield(task)
        return result

    async def _append_and_relay(self, write: Write, doc: LoadedDoc) -> dict[str, Any]:
        update = write.update
        seq = await self.copies.store_applied(doc, update, write.shape)
        await self.transport.emit(
            "ydoc:document:update",
            {"document_id": doc.id, "user_id": write.identity.user_id,
             "update": in_kind(update, write.binary or len(update) > BINARY_STATE_ABOVE),
             "socket_id": write.sid, "seq": seq},
            to=doc_room(doc.id),
            skip_sid=write.sid,
        )  # fmt: skip
        self.held.release_soon(doc)
        if self.watcher is not None:
            self.watcher.stored(doc)
        return {"ok": True, "seq": seq}

    async def _store_update(self, doc: LoadedDoc, update: bytes) -> int | None:
        """Validate against the copy and append durably (no relay): the update's seq, or
        None when the copy already held all of it."""
        shape = yjs.inspect_update(update)
        if doc.stale or not shape.integrates_into(doc.state_vector()):
            await self.copies.catch_up(doc)
        return await self.copies.commit(doc, update, shape)

    # relays lost -------------------------------------------------------------------------

    def redeliver(self) -> None:
        """Relays between nodes may have been lost (Redis was away): send every document
        this node has sessions in, as its store holds it, to its whole room on every node.
        Each client applies the state it lacks of (a Yjs state merges; Open WebUI's editor
        applies it as the server's); the node of any writer whose relay was lost does the
        same, since it lost Redis too."""
        for doc in list(self.loaded.values()):
            if doc.sids:
                self._spawn(self._redeliver(doc))

    async def _redeliver(self, doc: LoadedDoc) -> None:
        async with asyncio.timeout(self.pace.backlog_seconds):
            await self.copies.catch_up(doc)
            await self.copies.settled(doc)
            state = doc.state_update()
            room = doc_room(doc.id)
            sessions = await patiently(lambda: self.state.list_sessions(room=room))
            log.info("document %s: delivering it anew after relays may have been lost", doc.id)
            await self.transport.emit(
                "ydoc:document:state",
                {"document_id": doc.id, "state": in_kind(state, len(state) > BINARY_STATE_ABOVE),
                 "sessions": [s.sid for s in sessions]},
                to=room,
            )  # fmt: skip

    # leaving -----------------------------------------------------------------------------

    async def session_closed(self, sid: str) -> None:
        """A session disconnected: finish what it sent, then leave its documents (the
        pool drops its rooms)."""
        inbox = self._inboxes.pop(sid, None)
        if inbox is not None:
            await inbox.close()
        self.held.forget(sid)
        try:
            user_id = self.pool.identity(sid).user_id
        except RtctlError:
            user_id = ""
        for doc_id in list(self._joined.get(sid, ())):
            doc = self.loaded.get(doc_id)
            if doc is not None and sid in doc.sids:
                with contextlib.suppress(RtctlError):
                    await self._depart(sid, doc, user_id)
        self._joined.pop(sid, None)

    async def _depart(self, sid: str, doc: LoadedDoc, user_id: str) -> None:
        clients = doc.awareness.pop(sid, {})
        text = sid in doc.awareness_text
        doc.awareness_text.discard(sid)
        self._forget(sid, doc)
        room = doc_room(doc.id)
        if clients:  # tell the others this session's cursors are gone
            await self.transport.emit(
                "ydoc:awareness:update",
                {
                    "document_id": doc.id,
                    "user_id": user_id,
                    "update": list(awareness.gone(clients, text)),
                },
                to=room,
                skip_sid=sid,
            )
        await self.transport.emit(
            "ydoc:user:left", {"document_id": doc.id, "user_id": user_id}, to=room, skip_sid=sid
        )

    def _forget(self, sid: str, doc: LoadedDoc) -> None:
        doc.sids.discard(sid)
        joined = self._joined.get(sid)
        if joined is not None:
            joined.discard(doc.id)
        self._unload_if_idle(doc)

    # lifecycle ---------------------------------------------------------------------------

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(_finished)
        return task

    async def start(self) -> None:
        await self.store.start()
        pycrdt.Doc()  # the first document pycrdt makes costs milliseconds: not a client's

    async def close(self) -> None:
        closing = [asyncio.ensure_future(i.close()) for i in self._inboxes.values()]
        pending = closing + list(self._tasks)
        if pending:
            _, late = await asyncio.wait(pending, timeout=5.0)
            for task in late:
                task.cancel()
        await self.store.close()


def _finished(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:  # its waiter, if any, has it
        log.debug("document task failed: %s", task.exception())
