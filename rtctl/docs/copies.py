"""A node's in-memory copies of documents, kept in step with the store.

A node keeps a pycrdt copy of each document one of its sessions has joined. The
copy validates every incoming update (it must decode, and integrate without pending
history) before the update is appended to the store.

The copy knows which sequence numbers it holds: ``applied`` (every seq up to it)
plus ``ahead`` (seqs it appended itself past a gap). Updates appended by other
nodes reach it lazily: every join, state request, sync step 1, or an update that
builds on history the copy lacks first reads the log after ``applied`` (the
snapshot too if a compaction passed it), so a join costs the tail of the log,
never a replay of the whole history.

A store that does not answer is tried again (``patiently``): the callers bound how
long, by the deadline of the session request they serve.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

import pycrdt

from rtctl.docs import yjs
from rtctl.docs.compaction import AutoCompactor
from rtctl.docs.held import HeldUpdates
from rtctl.docs.store import DocStore, DocTail, shape_clocks
from rtctl.errors import BackendUnavailable, RtctlError

log = logging.getLogger("rtctl.docs")
T = TypeVar("T")

RETRY_FIRST, RETRY_MAX = 0.05, 1.0  # seconds between tries of a store that did not answer
SETTLE_WAIT = 2.0  # seconds a state answer waits for appends still in flight


async def patiently(call: Callable[[], Awaitable[T]]) -> T:
    """``call()`` until the store answers. Unbounded here: callers bound it (a session's
    request by its deadline, a held update by its expiry)."""
    delay = RETRY_FIRST
    while True:
        try:
            return await call()
        except BackendUnavailable as exc:
            log.debug("document store did not answer (%s); trying again", exc.message)
            await asyncio.sleep(delay)
            delay = min(RETRY_MAX, delay * 2)


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
    awareness_text: set[str] = field(default_factory=set)  # sessions that send the JSON form
    catching_up: asyncio.Lock = field(default_factory=asyncio.Lock)
    compacting: asyncio.Task[None] | None = None
    check_at: int = 0  # no compaction check before this seq (after one said "not yet")
    stale: bool = False  # the copy may hold what the store does not: rebuild before use
    version: int = 0  # bumped on every change of ``ydoc``
    encoded: tuple[int, bytes] | None = None  # (version, ydoc.get_update()) of the last answer
    vector: tuple[int, dict[int, int]] | None = None  # (version, state vector) last decoded
    inflight: int = 0  # updates in ``ydoc`` whose append has not returned yet
    settled: asyncio.Event = field(default_factory=asyncio.Event)  # set while inflight is 0
    held: HeldUpdates = field(default_factory=HeldUpdates)
    releasing: asyncio.Task[None] | None = None
    expiry: asyncio.TimerHandle | None = None

    def __post_init__(self) -> None:
        self.settled.set()

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

    def state_vector(self) -> dict[int, int]:
        """The copy's state vector, decoded once per change (not per write: a document
        with thousands of client ids would pay milliseconds for each)."""
        if self.vector is None or self.vector[0] != self.version:
            self.vector = (self.version, yjs.doc_state(self.ydoc))
        return self.vector[1]


class Copies:
    """The loaded documents of one node, and the steps that change them."""

    def __init__(
        self,
        store: DocStore,
        compactor: AutoCompactor,
        *,
        held_seconds: float,
        on_gain: Callable[[LoadedDoc], None],
    ) -> None:
        self.store = store
        self.compactor = compactor
        self.held_seconds = held_seconds
        self.on_gain = on_gain  # the copy gained updates: held ones may integrate now
        self.loaded: dict[str, LoadedDoc] = {}

    def load(self, doc_id: str) -> LoadedDoc:
        doc = self.loaded.get(doc_id)
        if doc is None:
            doc = self.loaded[doc_id] = LoadedDoc(doc_id)
            doc.held = HeldUpdates(max_seconds=self.held_seconds)
        return doc

    async def catch_up(self, doc: LoadedDoc) -> None:
        """Bring the copy up to the store's latest seq."""
        async with doc.catching_up:
            if doc.stale:
                self._reset(doc, None)
                doc.stale = False
            tail = await patiently(lambda: self.store.read(doc.id, doc.applied, doc.epoch))
            if tail is None:
                if doc.epoch is not None:  # deleted under us: start over empty
                    self._reset(doc, None)
                return
            self._apply_tail(doc, tail)
        if tail.updates or tail.snapshot:
            self.on_gain(doc)

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

    async def settled(self, doc: LoadedDoc) -> None:
        """Wait (a little) for appends in flight, so a state answer holds nothing that
        may yet fail to be stored."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(SETTLE_WAIT):
                while doc.inflight:
                    await doc.settled.wait()

    async def commit(self, doc: LoadedDoc, update: bytes, shape: yjs.UpdateShape) -> int | None:
        """``apply`` then ``store``: the update's seq, or None when the copy already held
        all of it (a sync step 2 carries the client's whole delete set even when nothing
        is new)."""
        if not self.apply(doc, update, shape):
            return None
        return await self.store_applied(doc, update, shape)

    def apply(self, doc: LoadedDoc, update: bytes, shape: yjs.UpdateShape) -> bool:
        """Apply an update that integrates to the copy, which then counts it in flight
        until ``store_applied``; False when the copy already held all of it."""
        try:
            changed, after = yjs.apply_with_state(doc.ydoc, update, shape, doc.state_vector())
        except yjs.CopyPolluted:
            log.error("document %s: an update did not integrate; reloading the copy", doc.id)
            doc.stale = True
            raise RtctlError("the update could not be applied", code="invalid_update") from None
        if not changed:
            return False
        doc.version += 1
        doc.vector = (doc.version, after)
        doc.inflight += 1
        doc.settled.clear()
        return True

    async def store_applied(self, doc: LoadedDoc, update: bytes, shape: yjs.UpdateShape) -> int:
        """Append an update ``apply`` took (trying again while the store does not answer:
        the append is idempotent) and keep the copy's bookkeeping; its seq."""
        try:
            clocks, key = shape_clocks(shape), os.urandom(12)  # the same key in every try
            seq = await patiently(lambda: self.store.append(doc.id, update, clocks, key))
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
            await self.catch_up(doc)
        else:
            doc.mark(seq)
        self.compactor.after_append(doc, seq)
        return seq
