"""Collaborative documents on one node: the ``ydoc:*`` events, loaded copies, relaying.

A node keeps an in-memory pycrdt copy of each document one of its sessions has
joined, and drops it when the last of them leaves. The copy validates every
incoming update (it must decode, and integrate without pending history) before
the update is appended to the store; only once the store has it durably is it
relayed to the document's room (on every node, through the room machinery).

The copy knows which sequence numbers it holds: ``applied`` (every seq up to it)
plus ``ahead`` (seqs it appended itself past a gap). Updates appended by other
nodes reach it lazily: every join, state request, sync step 1, or an update that
builds on history the copy lacks first reads the log after ``applied`` (the
snapshot too if a compaction passed it), so a join costs the tail of the log,
never a replay of the whole history.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any

import pycrdt

from rtctl.auth import Identity
from rtctl.docs import yjs
from rtctl.docs.store import DocStore, DocTail, shape_clocks, valid_doc_id
from rtctl.errors import Forbidden, PayloadTooLarge, RtctlError, UsageError
from rtctl.hub import payload as p
from rtctl.hub.sessions import SessionPool
from rtctl.hub.transport import Transport
from rtctl.state.base import StateBackend

log = logging.getLogger("rtctl.docs")

MAX_AWARENESS_CLIENTS = 16  # awareness client ids one session may speak for, per document
MAX_AWARENESS_BYTES = 64 * 1024
# Compact once the log holds 4x the snapshot's bytes (write amplification <= 1.25x), or,
# to bound the replay of a cold load, once it holds this many times the update threshold
# and at least 2x the snapshot's bytes (amplification <= 1.5x still).
COMPACT_LOG_RATIO = 4.0
COMPACT_HARD_FACTOR = 40
COMPACT_HARD_RATIO = 2.0
BINARY_STATE_ABOVE = 64 * 1024  # a larger state goes binary unless the client asks otherwise


def doc_room(doc_id: str) -> str:
    return f"doc_{doc_id}"


@dataclass
class LoadedDoc:
    id: str
    ydoc: pycrdt.Doc = field(default_factory=pycrdt.Doc)
    epoch: str | None = None  # None: the store had no such document when we last read
    applied: int = 0  # every seq up to here is in ``ydoc``
    ahead: set[int] = field(default_factory=set)  # seqs past a gap that are in ``ydoc``
    base: int = 0  # the store's snapshot covered this seq at our last read
    sids: set[str] = field(default_factory=set)  # this node's sessions in the document
    awareness: dict[str, dict[int, int]] = field(default_factory=dict)  # sid -> client -> clock
    catching_up: asyncio.Lock = field(default_factory=asyncio.Lock)
    compacting: asyncio.Task[None] | None = None
    check_at: int = 0  # no compaction check before this seq (after one said "not yet")
    stale: bool = False  # the copy may hold what the store does not: rebuild before use

    def mark(self, seq: int) -> None:
        if seq <= self.applied:
            return
        self.ahead.add(seq)
        while self.applied + 1 in self.ahead:
            self.applied += 1
            self.ahead.discard(self.applied)


def _update_bytes(value: Any, limit: int, what: str = "update") -> tuple[bytes, bool]:
    """An update given as a binary attachment or a JSON array of byte values, and
    whether it came binary (the server answers in the form the client used)."""
    if isinstance(value, bytes | bytearray):
        data, binary = bytes(value), True
    elif isinstance(value, list):
        if len(value) > limit:
            raise PayloadTooLarge(f"{what} is larger than {limit} bytes")
        try:  # bytes() checks every element is an int in 0..255, at C speed
            data, binary = bytes(value), False
        except (TypeError, ValueError):
            raise UsageError(f"{what} must be binary or an array of byte values 0-255") from None
    else:
        raise UsageError(f"{what} must be binary or an array of byte values")
    if len(data) > limit:
        raise PayloadTooLarge(f"{what} is larger than {limit} bytes")
    if not data:
        raise UsageError(f"{what} is empty")
    return data, binary


def _in_kind(data: bytes, binary: bool) -> bytes | list[int]:
    return data if binary else list(data)


class DocService:
    def __init__(
        self,
        store: DocStore,
        pool: SessionPool,
        transport: Transport,
        state: StateBackend,
        *,
        max_update: int = 512 * 1024,
        compact_updates: int = 500,
    ) -> None:
        self.store = store
        self.pool = pool
        self.transport = transport
        self.state = state
        self.max_update = max_update
        self.compact_updates = compact_updates
        self.loaded: dict[str, LoadedDoc] = {}
        self._joined: dict[str, set[str]] = {}  # sid -> documents it is in
        self._tasks: set[asyncio.Task[Any]] = set()

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

    # loading and catching up -------------------------------------------------------------

    def _load(self, doc_id: str) -> LoadedDoc:
        doc = self.loaded.get(doc_id)
        if doc is None:
            doc = self.loaded[doc_id] = LoadedDoc(doc_id)
        return doc

    async def _catch_up(self, doc: LoadedDoc) -> None:
        """Bring the copy up to the store's latest seq."""
        async with doc.catching_up:
            if doc.stale:
                self._reset(doc, None)
                doc.stale = False
            tail = await self.store.read(doc.id, doc.applied, doc.epoch)
            if tail is None:
                if doc.epoch is not None:  # deleted under us: start over empty
                    self._reset(doc, None)
                return
            self._apply_tail(doc, tail)

    def _apply_tail(self, doc: LoadedDoc, tail: DocTail) -> None:
        if tail.epoch != doc.epoch:
            if doc.epoch is not None:  # deleted and written again: another document now
                self._reset(doc, tail.epoch)
            doc.epoch = tail.epoch
        with doc.ydoc.transaction():  # one for all: the same document, less overhead
            if tail.snapshot:
                doc.ydoc.apply_update(tail.snapshot)
            for update in tail.updates:  # validated when stored; in seq order, so causal
                doc.ydoc.apply_update(update)
        doc.base = tail.base
        doc.applied = max(doc.applied, tail.seq)
        doc.ahead = {s for s in doc.ahead if s > doc.applied}

    def _reset(self, doc: LoadedDoc, epoch: str | None) -> None:
        doc.ydoc = pycrdt.Doc()
        doc.epoch = epoch
        doc.applied = doc.base = 0
        doc.ahead.clear()

    def _unload_if_idle(self, doc: LoadedDoc) -> None:
        if not doc.sids and self.loaded.get(doc.id) is doc:
            del self.loaded[doc.id]

    # events ------------------------------------------------------------------------------

    async def join(self, sid: str, data: Any) -> dict[str, Any]:
        body = p.obj(data)
        doc_id = valid_doc_id(body.get("document_id"))
        identity = self._reader(sid, doc_id)
        doc = self._load(doc_id)
        first = sid not in doc.sids
        doc.sids.add(sid)
        self._joined.setdefault(sid, set()).add(doc_id)
        try:
            # Enter the room before reading: an update stored after the read is then
            # relayed to this session, one stored before is in the state it gets.
            await self.pool.join(sid, doc_room(doc_id))
            await self._catch_up(doc)
        except BaseException:
            if first:
                self._forget(sid, doc)
            raise
        await self._send_state(sid, doc, binary=body.get("binary"))
        if first:
            await self.transport.emit(
                "ydoc:user:joined",
                {"document_id": doc_id, "user_id": identity.user_id, "user_name": identity.name},
                to=doc_room(doc_id),
                skip_sid=sid,
            )
        return {"ok": True, "document_id": doc_id}

    async def state_request(self, sid: str, data: Any) -> dict[str, Any]:
        body = p.obj(data)
        doc_id = valid_doc_id(body.get("document_id"))
        self._reader(sid, doc_id)
        doc = self.loaded.get(doc_id)
        if doc is None or sid not in doc.sids:
            return await self.join(sid, data)  # asking for the state implies joining
        await self._catch_up(doc)
        await self._send_state(sid, doc, binary=body.get("binary"))
        return {"ok": True, "document_id": doc_id}

    async def _send_state(self, sid: str, doc: LoadedDoc, *, binary: Any) -> None:
        """The whole document to one session: as the client asked (``binary``), else
        an array of byte values up to ``BINARY_STATE_ABOVE`` and binary past it (a
        megabyte as a JSON array costs the event loop half a second to encode)."""
        sessions = [s.sid for s in await self.state.list_sessions(room=doc_room(doc.id))]
        state = doc.ydoc.get_update()
        if not isinstance(binary, bool):
            binary = len(state) > BINARY_STATE_ABOVE
        await self.transport.emit(
            "ydoc:document:state",
            {"document_id": doc.id, "state": _in_kind(state, binary), "sessions": sessions},
            to=sid,
        )

    async def update(self, sid: str, data: Any) -> dict[str, Any]:
        body = p.obj(data)
        doc_id = valid_doc_id(body.get("document_id"))
        identity = self._writer(sid, doc_id)
        doc = self._member(sid, doc_id)
        update, binary = _update_bytes(body.get("update"), self.max_update)
        return await self._write(sid, identity, doc, update, binary)

    async def _write(
        self, sid: str, identity: Identity, doc: LoadedDoc, update: bytes, binary: bool
    ) -> dict[str, Any]:
        """Store an update durably, then relay it to the document's other sessions."""
        seq = await self._store_update(doc, update)
        if seq is None:
            return {"ok": True}  # the document had all of it: nothing to store or relay
        await self.transport.emit(
            "ydoc:document:update",
            {
                "document_id": doc.id,
                "user_id": identity.user_id,
                "update": _in_kind(update, binary),
                "socket_id": sid,
                "seq": seq,
            },
            to=doc_room(doc.id),
            skip_sid=sid,
        )
        return {"ok": True, "seq": seq}

    async def _store_update(self, doc: LoadedDoc, update: bytes) -> int | None:
        """Validate against the copy, append durably, keep the copy's bookkeeping.

        Returns the update's seq, or None when the copy already held all of it (a
        sync step 2 carries the client's whole delete set even when nothing is new).
        """
        shape = yjs.inspect_update(update)
        if doc.stale or not shape.integrates_into(yjs.doc_state(doc.ydoc)):
            await self._catch_up(doc)  # it may build on what another node stored
        try:
            if not yjs.apply_checked(doc.ydoc, update, shape):
                return None
        except yjs.CopyPolluted:
            log.error("document %s: an update did not integrate; reloading the copy", doc.id)
            doc.stale = True
            raise RtctlError("the update could not be applied", code="invalid_update") from None
        try:
            seq = await self.store.append(doc.id, update, clocks=shape_clocks(shape))
        except BaseException:
            doc.stale = True  # the copy holds an update the store refused or may not have
            raise
        if doc.stale or doc.epoch is None or seq != doc.applied + 1:
            # the document was new, or others appended meanwhile: learn the epoch, fill gaps
            doc.mark(seq)
            await self._catch_up(doc)
        else:
            doc.mark(seq)
        self._maybe_compact(doc, seq)
        return seq

    async def sync(self, sid: str, data: Any) -> dict[str, Any]:
        body = p.obj(data)
        doc_id = valid_doc_id(body.get("document_id"))
        self._reader(sid, doc_id)
        doc = self._member(sid, doc_id)
        message, binary = _update_bytes(body.get("message"), self.max_update + 16, "message")
        kind, payload = yjs.read_sync_message(message)
        if kind == yjs.SYNC_STEP1:
            yjs.decode_state_vector(payload)  # refuse a malformed state vector clearly
            await self._catch_up(doc)
            try:
                missing = doc.ydoc.get_update(payload)
            except ValueError as exc:
                raise yjs.MalformedUpdate(f"state vector does not decode: {exc}") from None
            for reply in (
                yjs.sync_message(yjs.SYNC_STEP2, missing),
                yjs.sync_message(yjs.SYNC_STEP1, doc.ydoc.get_state()),
            ):
                await self.transport.emit(
                    "ydoc:sync", {"document_id": doc_id, "message": _in_kind(reply, binary)}, to=sid
                )
            return {"ok": True}
        identity = self._writer(sid, doc_id)
        if len(payload) > self.max_update:
            raise PayloadTooLarge(f"update is larger than {self.max_update} bytes")
        return await self._write(sid, identity, doc, payload, binary)

    async def awareness(self, sid: str, data: Any) -> dict[str, Any]:
        body = p.obj(data)
        doc_id = valid_doc_id(body.get("document_id"))
        identity = self._reader(sid, doc_id)
        doc = self._member(sid, doc_id)
        update, binary = _update_bytes(body.get("update"), MAX_AWARENESS_BYTES, "awareness update")
        entries = yjs.read_awareness(update, max_entries=MAX_AWARENESS_CLIENTS)
        clients = doc.awareness.setdefault(sid, {})
        for e in entries:
            if e.state is None:
                clients.pop(e.client, None)
            elif e.client in clients or len(clients) < MAX_AWARENESS_CLIENTS:
                clients[e.client] = e.clock
            else:
                raise UsageError(
                    f"a session may announce at most {MAX_AWARENESS_CLIENTS} awareness clients"
                )
        await self.transport.emit(
            "ydoc:awareness:update",
            {"document_id": doc_id, "user_id": identity.user_id,
             "update": _in_kind(update, binary)},
            to=doc_room(doc_id),
            skip_sid=sid,
        )  # fmt: skip
        return {"ok": True}

    async def leave(self, sid: str, data: Any) -> dict[str, Any]:
        body = p.obj(data)
        doc_id = valid_doc_id(body.get("document_id"))
        doc = self.loaded.get(doc_id)
        if doc is None or sid not in doc.sids:
            return {"ok": False, "document_id": doc_id}
        identity = self.pool.identity(sid)
        await self._depart(sid, doc, identity.user_id)
        await self.pool.leave(sid, doc_room(doc_id))
        return {"ok": True, "document_id": doc_id}

    async def session_closed(self, sid: str) -> None:
        """A session disconnected: leave its documents (the pool drops its rooms)."""
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
        self._forget(sid, doc)
        room = doc_room(doc.id)
        if clients:  # tell the others this session's cursors are gone
            gone = yjs.awareness_update(
                [yjs.AwarenessEntry(c, clock + 1, None) for c, clock in clients.items()]
            )
            await self.transport.emit(
                "ydoc:awareness:update",
                {"document_id": doc.id, "user_id": user_id, "update": list(gone)},
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

    # compaction --------------------------------------------------------------------------

    def _maybe_compact(self, doc: LoadedDoc, seq: int) -> None:
        if seq - doc.base < self.compact_updates or seq < doc.check_at:
            return
        if doc.compacting is not None and not doc.compacting.done():
            return
        doc.compacting = self._spawn(self._auto_compact(doc))

    async def _auto_compact(self, doc: LoadedDoc) -> None:
        try:
            info = await self.store.info(doc.id)
            if info is None:
                return
            doc.base = max(doc.base, info.base)
            hard = (
                info.updates >= self.compact_updates * COMPACT_HARD_FACTOR
                and info.log_bytes >= info.snapshot_bytes * COMPACT_HARD_RATIO
            )
            small = info.log_bytes < info.snapshot_bytes * COMPACT_LOG_RATIO
            if info.updates < self.compact_updates or (small and not hard):
                # rewriting a big snapshot for a little log costs more than it saves
                doc.check_at = info.seq + max(1, self.compact_updates // 4)
                return
            result = await self.store.compact(doc.id)
            if result is not None and result.compacted:
                log.debug("document %s: compacted %d updates", doc.id, result.compacted)
                doc.base = max(doc.base, info.base + result.compacted)
        except RtctlError as exc:
            log.warning("document %s: compaction failed: %s", doc.id, exc.message)

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def start(self) -> None:
        await self.store.start()
        pycrdt.Doc()  # the first document pycrdt makes costs milliseconds: not a client's

    async def close(self) -> None:
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(task, 5.0)
        await self.store.close()
