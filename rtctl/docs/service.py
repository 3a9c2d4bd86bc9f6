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

The copy knows which sequence numbers it holds: ``applied`` (every seq up to it)
plus ``ahead`` (seqs it appended itself past a gap). Updates appended by other
nodes reach it lazily: every join, state request, sync step 1, or an update that
builds on history the copy lacks first reads the log after ``applied``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pycrdt

from rtctl.auth import Identity
from rtctl.docs import yjs
from rtctl.docs.compaction import AutoCompactor
from rtctl.docs.held import Held, HeldUpdates, OutOfStep
from rtctl.docs.inbox import DocInbox
from rtctl.docs.limits import DocLimits
from rtctl.docs.store import DocStore, DocTail, shape_clocks, valid_doc_id
from rtctl.errors import (
    BackendUnavailable,
    Forbidden,
    PayloadTooLarge,
    RateLimited,
    RtctlError,
    UsageError,
)
from rtctl.hub import payload as p
from rtctl.hub.sessions import SessionPool
from rtctl.hub.transport import Transport
from rtctl.state.base import StateBackend

log = logging.getLogger("rtctl.docs")
T = TypeVar("T")

MAX_AWARENESS_CLIENTS = 16  # awareness client ids one session may speak for, per document
MAX_AWARENESS_BYTES = 64 * 1024
BINARY_STATE_ABOVE = 64 * 1024  # a larger state goes binary unless the client asks otherwise
REDUNDANT_COST = 0.1  # tokens an update the document already had costs its session
STATE_TOKEN_BYTES = 64 * 1024  # a state answer costs a token per this many bytes
RETRY_FIRST, RETRY_MAX = 0.05, 1.0  # seconds between tries of a store that did not answer
RESYNC_EVERY = 2.0  # seconds between two requests to one session for what it lacks
SETTLE_WAIT = 2.0  # seconds a state answer waits for appends still in flight


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
    version: int = 0  # bumped on every change of ``ydoc``
    encoded: tuple[int, bytes] | None = None  # (version, ydoc.get_update()) of the last answer
    inflight: int = 0  # updates in ``ydoc`` whose append has not returned yet
    settled: asyncio.Event = field(default_factory=asyncio.Event)  # set while inflight is 0
    held: HeldUpdates = field(default_factory=HeldUpdates)  # replaced by _load
    releasing: asyncio.Task[None] | None = None
    expiry: asyncio.TimerHandle | None = None

    def mark(self, seq: int) -> None:
        if seq <= self.applied:
            return
        self.ahead.add(seq)
        while self.applied + 1 in self.ahead:
            self.applied += 1
            self.ahead.discard(self.applied)

    def state_update(self) -> bytes:
        """The whole copy as one update, encoded once per change."""
        if self.encoded is None or self.encoded[0] != self.version:
            self.encoded = (self.version, self.ydoc.get_update())
        return self.encoded[1]


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


@dataclass(frozen=True)
class Pace:
    """How a session's document traffic is paced and bounded (``rtctl.docs.inbox``)."""

    rate: float = 100.0
    burst: float = 200.0
    backlog_bytes: int = 16 << 20
    backlog_seconds: float = 30.0

    @property
    def held_seconds(self) -> float:
        """How long an update may wait for its history before its session starts over."""
        return self.backlog_seconds / 3


class DocService:
    # Events that go through a session's inbox, paced instead of refused for rate.
    # Awareness is ephemeral: it counts against the session's ordinary event rate.
    PACED = frozenset(
        {"ydoc:document:join", "ydoc:document:state", "ydoc:document:update", "ydoc:sync",
         "ydoc:document:leave"}
    )  # fmt: skip

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
    ) -> None:
        self.store = store
        self.pool = pool
        self.transport = transport
        self.state = state
        self.max_update = max_update
        self.pace = pace or Pace()
        self.limits = limits or DocLimits()
        self.loaded: dict[str, LoadedDoc] = {}
        self._joined: dict[str, set[str]] = {}  # sid -> documents it is in
        self._inboxes: dict[str, DocInbox] = {}
        self._sync_docs: dict[str, set[str]] = {}  # sid -> documents it speaks ydoc:sync in
        self._asked: dict[str, dict[str, float]] = {}  # sid -> document -> last resync request
        self._tasks: set[asyncio.Task[Any]] = set()
        self.compactor = AutoCompactor(store, compact_updates, self._spawn)
        self.disconnects = 0  # sessions disconnected to be brought back in step

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
        or, for a held update, what that update comes to once stored."""
        inbox = self._inboxes.get(sid)
        if inbox is None:
            self.pool.identity(sid)  # raises for a session that is gone
            inbox = self._inboxes[sid] = DocInbox(
                sid, rate=self.pace.rate, burst=self.pace.burst,
                max_bytes=self.pace.backlog_bytes, max_seconds=self.pace.backlog_seconds,
                on_overflow=self._disconnect,
            )  # fmt: skip
        future = inbox.submit(run, p.approx_size(data), ephemeral=ephemeral)
        if future is None:
            raise RateLimited("awareness dropped: the session's document traffic is backed up")
        result = await future
        while isinstance(result, asyncio.Future):
            result = await result
        return result

    def _charge(self, sid: str, cost: float) -> None:
        inbox = self._inboxes.get(sid)
        if inbox is not None:
            inbox.charge(cost)

    def _disconnect(self, sid: str, reason: str) -> None:
        """Have a session reconnect: its client rejoins and syncs from scratch."""
        log.warning("disconnecting session %s: %s", sid, reason)
        self.disconnects += 1
        self._spawn(self.transport.disconnect(sid))

    async def _patiently(self, call: Callable[[], Awaitable[T]]) -> T:
        """``call()`` until the store answers. Unbounded here: callers bound it (an inbox
        job by its deadline, a held update by its expiry)."""
        delay = RETRY_FIRST
        while True:
            try:
                return await call()
            except BackendUnavailable as exc:
                log.debug("document store did not answer (%s); trying again", exc.message)
                await asyncio.sleep(delay)
                delay = min(RETRY_MAX, delay * 2)

    # loading and catching up -------------------------------------------------------------

    def _load(self, doc_id: str) -> LoadedDoc:
        doc = self.loaded.get(doc_id)
        if doc is None:
            doc = self.loaded[doc_id] = LoadedDoc(doc_id)
            doc.held = HeldUpdates(max_seconds=self.pace.held_seconds)
            doc.settled.set()
        return doc

    async def _catch_up(self, doc: LoadedDoc) -> None:
        """Bring the copy up to the store's latest seq."""
        async with doc.catching_up:
            if doc.stale:
                self._reset(doc, None)
                doc.stale = False
            tail = await self._patiently(lambda: self.store.read(doc.id, doc.applied, doc.epoch))
            if tail is None:
                if doc.epoch is not None:  # deleted under us: start over empty
                    self._reset(doc, None)
                return
            self._apply_tail(doc, tail)
        if doc.held and (tail.updates or tail.snapshot):
            self._release_soon(doc)

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
        if tail.snapshot or tail.updates:
            doc.version += 1
        doc.base = tail.base
        doc.applied = max(doc.applied, tail.seq)
        doc.ahead = {s for s in doc.ahead if s > doc.applied}

    def _reset(self, doc: LoadedDoc, epoch: str | None) -> None:
        doc.ydoc = pycrdt.Doc()
        doc.version += 1
        doc.epoch = epoch
        doc.applied = doc.base = 0
        doc.ahead.clear()

    def _unload_if_idle(self, doc: LoadedDoc) -> None:
        if doc.sids or self.loaded.get(doc.id) is not doc:
            return
        del self.loaded[doc.id]
        for h in list(doc.held.items):  # nobody left to ask for their history
            doc.held.remove(h)
            if not h.future.done():
                h.future.set_exception(OutOfStep("the document was closed"))
                h.future.exception()
        if doc.expiry is not None:
            doc.expiry.cancel()

    async def _settled(self, doc: LoadedDoc) -> None:
        """Wait (a little) for appends in flight, so a state answer holds nothing that
        may yet fail to be stored."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(SETTLE_WAIT):
                while doc.inflight:
                    await doc.settled.wait()

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
        update, binary = _update_bytes(body.get("update"), self.max_update)
        return await self._queued(
            sid, data, lambda: self._update(sid, doc_id, update, binary)
        )  # fmt: skip

    async def sync(self, sid: str, data: Any) -> Any:
        body = p.obj(data)
        doc_id = valid_doc_id(body.get("document_id"))
        message, binary = _update_bytes(body.get("message"), self.max_update + 16, "message")
        kind, payload = yjs.read_sync_message(message)
        if kind == yjs.SYNC_STEP1:
            yjs.decode_state_vector(payload)  # refuse a malformed state vector clearly
        elif len(payload) > self.max_update:
            raise PayloadTooLarge(f"update is larger than {self.max_update} bytes")
        self._sync_docs.setdefault(sid, set()).add(doc_id)
        return await self._queued(
            sid, data, lambda: self._sync(sid, doc_id, kind, payload, binary)
        )  # fmt: skip

    async def awareness(self, sid: str, data: Any) -> Any:
        body = p.obj(data)
        doc_id = valid_doc_id(body.get("document_id"))
        update, binary = _update_bytes(body.get("update"), MAX_AWARENESS_BYTES, "awareness update")
        entries = yjs.read_awareness(update, max_entries=MAX_AWARENESS_CLIENTS)
        return await self._queued(
            sid, data, lambda: self._awareness(sid, doc_id, update, binary, entries),
            ephemeral=True,
        )  # fmt: skip

    async def leave(self, sid: str, data: Any) -> Any:
        doc_id = valid_doc_id(p.obj(data).get("document_id"))
        return await self._queued(sid, None, lambda: self._leave(sid, doc_id))

    # the jobs ----------------------------------------------------------------------------

    async def _join(self, sid: str, doc_id: str, binary: Any) -> dict[str, Any]:
        identity = self._reader(sid, doc_id)
        doc = self._load(doc_id)
        first = sid not in doc.sids
        doc.sids.add(sid)
        self._joined.setdefault(sid, set()).add(doc_id)
        try:
            # Enter the room before reading: an update stored after the read is then
            # relayed to this session, one stored before is in the state it gets.
            await self._patiently(lambda: self.pool.join(sid, doc_room(doc_id)))
            await self._catch_up(doc)
        except BaseException:
            if first:
                self._forget(sid, doc)
            raise
        await self._send_state(sid, doc, binary=binary)
        if first:
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
        await self._catch_up(doc)
        await self._send_state(sid, doc, binary=binary)
        return {"ok": True, "document_id": doc_id}

    async def _send_state(self, sid: str, doc: LoadedDoc, *, binary: Any) -> None:
        """The whole document to one session: as the client asked (``binary``), else
        an array of byte values up to ``BINARY_STATE_ABOVE`` and binary past it (a
        megabyte as a JSON array costs the event loop half a second to encode)."""
        await self._settled(doc)
        state = doc.state_update()
        if binary is False:
            self.limits.check_array_answer(len(state))
        elif not isinstance(binary, bool):
            binary = len(state) > BINARY_STATE_ABOVE
        self._charge(sid, 1 + len(state) / STATE_TOKEN_BYTES)
        sessions = await self._patiently(lambda: self.state.list_sessions(room=doc_room(doc.id)))
        await self.transport.emit(
            "ydoc:document:state",
            {"document_id": doc.id, "state": _in_kind(state, binary),
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
        await self._catch_up(doc)
        await self._settled(doc)
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
                "ydoc:sync", {"document_id": doc_id, "message": _in_kind(reply, binary)}, to=sid
            )
        return {"ok": True}

    async def _awareness(
        self, sid: str, doc_id: str, update: bytes, binary: bool, entries: list[Any]
    ) -> dict[str, Any]:
        identity = self._reader(sid, doc_id)
        doc = self._member(sid, doc_id)
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

    async def _leave(self, sid: str, doc_id: str) -> dict[str, Any]:
        doc = self.loaded.get(doc_id)
        if doc is None or sid not in doc.sids:
            return {"ok": False, "document_id": doc_id}
        identity = self.pool.identity(sid)
        await self._depart(sid, doc, identity.user_id)
        await self._patiently(lambda: self.pool.leave(sid, doc_room(doc_id)))
        return {"ok": True, "document_id": doc_id}

    # writing -----------------------------------------------------------------------------

    async def _write(
        self, sid: str, identity: Identity, doc: LoadedDoc, update: bytes, binary: bool
    ) -> dict[str, Any] | asyncio.Future[Any]:
        """Store an update durably, then relay it; or hold it until its history arrives."""
        shape = self.limits.inspect(update, yjs.doc_state(doc.ydoc))
        if doc.stale or not shape.integrates_into(yjs.doc_state(doc.ydoc)):
            await self._catch_up(doc)  # it may build on what another node stored
            if not shape.integrates_into(yjs.doc_state(doc.ydoc)):
                return self._hold(Held(sid, identity, update, binary, shape, _future()), doc)
        return await self._store_and_relay(sid, identity, doc, update, binary, shape)

    async def _store_and_relay(
        self,
        sid: str,
        identity: Identity,
        doc: LoadedDoc,
        update: bytes,
        binary: bool,
        shape: yjs.UpdateShape,
    ) -> dict[str, Any]:
        seq = await self._commit(doc, update, shape)
        if seq is None:
            self._charge(sid, REDUNDANT_COST)
            return {"ok": True}  # the document had all of it: nothing to store or relay
        self._charge(sid, 1)
        await self.transport.emit(
            "ydoc:document:update",
            {"document_id": doc.id, "user_id": identity.user_id,
             "update": _in_kind(update, binary), "socket_id": sid, "seq": seq},
            to=doc_room(doc.id),
            skip_sid=sid,
        )  # fmt: skip
        if doc.held:
            self._release_soon(doc)
        return {"ok": True, "seq": seq}

    async def _store_update(self, doc: LoadedDoc, update: bytes) -> int | None:
        """Validate against the copy and append durably (no relay): the update's seq, or
        None when the copy already held all of it."""
        shape = yjs.inspect_update(update)
        if doc.stale or not shape.integrates_into(yjs.doc_state(doc.ydoc)):
            await self._catch_up(doc)
        return await self._commit(doc, update, shape)

    async def _commit(self, doc: LoadedDoc, update: bytes, shape: yjs.UpdateShape) -> int | None:
        """Apply to the copy, append (trying again while the store does not answer: the
        append is idempotent), keep the copy's bookkeeping. None: nothing new."""
        try:
            if not yjs.apply_checked(doc.ydoc, update, shape):
                return None
        except yjs.CopyPolluted:
            log.error("document %s: an update did not integrate; reloading the copy", doc.id)
            doc.stale = True
            raise RtctlError("the update could not be applied", code="invalid_update") from None
        doc.version += 1
        doc.inflight += 1
        doc.settled.clear()
        try:
            clocks = shape_clocks(shape)
            seq = await self._patiently(lambda: self.store.append(doc.id, update, clocks=clocks))
        except BaseException:
            doc.stale = True  # the copy holds an update the store refused or may not have
            raise
        finally:
            doc.inflight -= 1
            if not doc.inflight:
                doc.settled.set()
        if doc.stale or doc.epoch is None or seq != doc.applied + 1:
            # the document was new, or others appended meanwhile: learn the epoch, fill gaps
            doc.mark(seq)
            await self._catch_up(doc)
        else:
            doc.mark(seq)
        self.compactor.after_append(doc, seq)
        return seq

    # held updates ------------------------------------------------------------------------

    def _hold(self, item: Held, doc: LoadedDoc) -> asyncio.Future[Any]:
        size = len(item.update)
        if not doc.held.fits(size) or len(doc.held.of_session(item.sid)) >= 64:
            self._disconnect(item.sid, f"too many updates waiting for history in {doc.id}")
            raise OutOfStep("the update builds on changes the hub does not have; reconnect")
        doc.held.add(item)
        self._charge(item.sid, 1)
        self._ask_resync(item.sid, doc, item.binary)
        self._arm_expiry(doc)
        return item.future

    def _ask_resync(self, sid: str, doc: LoadedDoc, binary: bool) -> None:
        asked = self._asked.setdefault(sid, {})
        now = time.monotonic()
        if now - asked.get(doc.id, -RESYNC_EVERY) < RESYNC_EVERY:
            return
        asked[doc.id] = now
        self._spawn(self._resync(sid, doc, binary))

    async def _resync(self, sid: str, doc: LoadedDoc, binary: bool) -> None:
        """Ask a session for what the document lacks of its own: sync step 1 (the client
        answers with step 2), or for a client that does not speak ``ydoc:sync`` an empty
        state, which such providers answer by sending their whole document."""
        if doc.id in self._sync_docs.get(sid, ()):
            message = yjs.sync_message(yjs.SYNC_STEP1, doc.ydoc.get_state())
            payload: dict[str, Any] = {"document_id": doc.id, "message": _in_kind(message, binary)}
            event = "ydoc:sync"
        else:
            room, sessions = doc_room(doc.id), []
            with contextlib.suppress(RtctlError):
                sessions = [s.sid for s in await self.state.list_sessions(room=room)]
            payload = {"document_id": doc.id, "state": _in_kind(yjs.EMPTY_UPDATE, binary),
                       "sessions": sessions or [sid]}  # fmt: skip
            event = "ydoc:document:state"
        log.info("document %s: asking session %s for history it has and the hub lacks",
                 doc.id, sid)  # fmt: skip
        await self.transport.emit(event, payload, to=sid)

    def _arm_expiry(self, doc: LoadedDoc) -> None:
        wait = doc.held.next_expiry()
        if wait is None or doc.expiry is not None:
            return

        def fire() -> None:
            doc.expiry = None
            self._release_soon(doc)

        doc.expiry = asyncio.get_running_loop().call_later(wait + 0.01, fire)

    def _release_soon(self, doc: LoadedDoc) -> None:
        if doc.releasing is None or doc.releasing.done():
            doc.releasing = self._spawn(self._release(doc))

    async def _release(self, doc: LoadedDoc) -> None:
        """Store the held updates that now integrate, in the order they came, until none
        does; give up those past their time (their sessions start over)."""
        progress = True
        while progress and doc.held:
            progress = False
            for item in list(doc.held.items):
                if item.future.done() or not item.shape.integrates_into(yjs.doc_state(doc.ydoc)):
                    continue
                doc.held.remove(item)
                progress = True
                remaining = item.at + doc.held.max_seconds - time.monotonic()
                try:
                    async with asyncio.timeout(max(0.1, remaining)):
                        result = await self._store_and_relay(
                            item.sid, item.identity, doc, item.update, item.binary, item.shape
                        )
                except Exception as exc:
                    _settle(item, exc=exc)
                else:
                    _settle(item, result=result)
        for item in doc.held.expired():
            doc.held.remove(item)
            _settle(item, exc=OutOfStep("the update's history never arrived; reconnect"))
            if item.sid in doc.sids:
                self._disconnect(item.sid, f"an update to {doc.id} stayed without its history")
        self._arm_expiry(doc)

    # leaving -----------------------------------------------------------------------------

    async def session_closed(self, sid: str) -> None:
        """A session disconnected: finish what it sent, then leave its documents (the
        pool drops its rooms)."""
        inbox = self._inboxes.pop(sid, None)
        if inbox is not None:
            await inbox.close()
        self._sync_docs.pop(sid, None)
        self._asked.pop(sid, None)
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

    # lifecycle ---------------------------------------------------------------------------

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def start(self) -> None:
        await self.store.start()
        pycrdt.Doc()  # the first document pycrdt makes costs milliseconds: not a client's

    async def close(self) -> None:
        for inbox in list(self._inboxes.values()):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(inbox.close(), 5.0)
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(task, 5.0)
        await self.store.close()


def _future() -> asyncio.Future[Any]:
    return asyncio.get_running_loop().create_future()


def _settle(item: Held, *, result: Any = None, exc: BaseException | None = None) -> None:
    if item.future.done():
        return
    if exc is not None:
        item.future.set_exception(exc)
        item.future.exception()  # its waiter may be gone with its session
    else:
        item.future.set_result(result)
