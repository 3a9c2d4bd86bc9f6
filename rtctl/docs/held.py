"""Updates that build on history the hub does not have yet, held until it arrives.

An update whose dependencies are missing (the writer's earlier update was lost to a
reconnect, a disconnect for backlog, a store that gave up) must neither enter the
log, where it would sit pending, nor be dropped, which would fork its writer. It is
held, per document and bounded, while the hub asks its writer for what it lacks
(``HeldKeeper``). Each time the document gains something, the held
updates that now integrate are stored in the order they came; one still held after
``max_seconds`` is given up and its session disconnected, so that its client
rejoins and syncs from scratch.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rtctl.auth import Identity
from rtctl.docs import yjs
from rtctl.docs.yjs import UpdateShape, in_kind
from rtctl.errors import RtctlError
from rtctl.hub.transport import Transport

if TYPE_CHECKING:
    from rtctl.docs.copies import LoadedDoc

log = logging.getLogger("rtctl.docs")

MAX_HELD_UPDATES = 256  # per document
MAX_HELD_PER_SESSION = 64
MAX_HELD_BYTES = 4 << 20  # per document
HELD_SECONDS = 10.0
RESYNC_EVERY = 2.0  # seconds between two requests to one session for what it lacks
JOIN_ASK_DELAY = 1.0  # seconds after a join before a client without ydoc:sync is asked


class OutOfStep(RtctlError):
    """An update's history never arrived; its session is disconnected to start over."""

    code = "out_of_step"


def _new_future() -> asyncio.Future[Any]:
    return asyncio.get_running_loop().create_future()


@dataclass(slots=True)
class Write:
    """An update a session sent, inspected: who, what, and in which form it came."""

    sid: str
    identity: Identity
    update: bytes
    binary: bool
    shape: UpdateShape


@dataclass(slots=True)
class Held(Write):
    """A write waiting for its history; ``future`` gets what it comes to once stored."""

    future: asyncio.Future[Any] = field(default_factory=_new_future)
    at: float = field(default_factory=time.monotonic)


class HeldUpdates:
    """The held updates of one document, oldest first."""

    def __init__(
        self,
        *,
        max_updates: int = MAX_HELD_UPDATES,
        max_bytes: int = MAX_HELD_BYTES,
        max_seconds: float = HELD_SECONDS,
    ) -> None:
        self.max_updates = max_updates
        self.max_bytes = max_bytes
        self.max_seconds = max_seconds
        self.items: list[Held] = []
        self.bytes = 0

    def __len__(self) -> int:
        return len(self.items)

    def fits(self, size: int) -> bool:
        return len(self.items) < self.max_updates and self.bytes + size <= self.max_bytes

    def add(self, item: Held) -> None:
        self.items.append(item)
        self.bytes += len(item.update)

    def remove(self, item: Held) -> None:
        self.items.remove(item)
        self.bytes -= len(item.update)

    def expired(self, now: float | None = None) -> list[Held]:
        now = time.monotonic() if now is None else now
        return [h for h in self.items if now - h.at > self.max_seconds]

    def next_expiry(self) -> float | None:
        """Seconds until the oldest held update expires."""
        if not self.items:
            return None
        return max(0.0, self.items[0].at + self.max_seconds - time.monotonic())

    def of_session(self, sid: str) -> list[Held]:
        return [h for h in self.items if h.sid == sid]


class HeldKeeper:
    """Holds updates whose history is missing, asks their writers for it, and stores
    them once it arrived; a writer that cannot be brought back in step is disconnected."""

    def __init__(
        self,
        transport: Transport,
        *,
        store: Callable[[Write, LoadedDoc], Awaitable[dict[str, Any]]],
        charge: Callable[[str, float], None],
        disconnect: Callable[[str, str], None],
        spawn: Callable[[Coroutine[Any, Any, None]], asyncio.Task[Any]],
    ) -> None:
        self.transport = transport
        self._store = store  # store and relay a held update that now integrates
        self._charge = charge
        self._disconnect = disconnect
        self._spawn = spawn
        self.sync_docs: dict[str, set[str]] = {}  # sid -> documents it speaks ydoc:sync in
        self._asked: dict[str, dict[str, float]] = {}  # sid -> document -> last request
        self.requests = 0  # sessions asked for history so far

    def speaks_sync(self, sid: str, doc_id: str) -> None:
        self.sync_docs.setdefault(sid, set()).add(doc_id)

    def forget(self, sid: str) -> None:
        self.sync_docs.pop(sid, None)
        self._asked.pop(sid, None)

    def hold(self, item: Held, doc: LoadedDoc) -> asyncio.Future[Any]:
        size = len(item.update)
        if not doc.held.fits(size) or len(doc.held.of_session(item.sid)) >= MAX_HELD_PER_SESSION:
            self._disconnect(item.sid, f"too many updates waiting for history in {doc.id}")
            raise OutOfStep("the update builds on changes the hub does not have; reconnect")
        doc.held.add(item)
        self._charge(item.sid, 1)
        self._ask(item.sid, doc, item.binary)
        self._arm_expiry(doc)
        return item.future

    def ask_after_join(self, sid: str, doc: LoadedDoc, binary: bool) -> None:
        """A client that does not speak ``ydoc:sync`` never sends, by itself, the edits it
        made while it was away (Open WebUI's editor sends an edit only as it is made, and
        only while connected): ask it for its document once it joined, unless it turns
        out to speak sync."""

        async def later() -> None:
            await asyncio.sleep(JOIN_ASK_DELAY)
            if sid in doc.sids and doc.id not in self.sync_docs.get(sid, ()):
                self._ask(sid, doc, binary)

        self._spawn(later())

    def _ask(self, sid: str, doc: LoadedDoc, binary: bool) -> None:
        asked = self._asked.setdefault(sid, {})
        now = time.monotonic()
        if now - asked.get(doc.id, -RESYNC_EVERY) < RESYNC_EVERY:
            return
        asked[doc.id] = now
        self.requests += 1
        self._spawn(self._request(sid, doc, binary))

    async def _request(self, sid: str, doc: LoadedDoc, binary: bool) -> None:
        """Ask a session for what the document lacks of its own: sync step 1 (the client
        answers with step 2), or for a client that does not speak ``ydoc:sync`` an empty
        state (``request: true``), which such providers (Open WebUI's) answer by sending
        their whole document."""
        payload: dict[str, Any] = {"document_id": doc.id}
        if doc.id in self.sync_docs.get(sid, ()):
            event = "ydoc:sync"
            payload["message"] = in_kind(yjs.sync_message(yjs.SYNC_STEP1, doc.ydoc.get_state()),
                                         binary)  # fmt: skip
        else:
            # ``sessions`` is empty: Open WebUI's editor, told of an empty state with one
            # session in it and an empty editor, would insert the note's initial content
            event = "ydoc:document:state"
            payload.update(state=in_kind(yjs.EMPTY_UPDATE, binary), sessions=[], request=True)
        log.info("document %s: asking session %s for history the hub lacks", doc.id, sid)
        await self.transport.emit(event, payload, to=sid)

    def _arm_expiry(self, doc: LoadedDoc) -> None:
        wait = doc.held.next_expiry()
        if wait is None or doc.expiry is not None:
            return

        def fire() -> None:
            doc.expiry = None
            self.release_soon(doc)

        doc.expiry = asyncio.get_running_loop().call_later(wait + 0.01, fire)

    def release_soon(self, doc: LoadedDoc) -> None:
        """The document gained something: store what now integrates (in the background)."""
        if doc.held and (doc.releasing is None or doc.releasing.done()):
            doc.releasing = self._spawn(self._release(doc))

    async def _release(self, doc: LoadedDoc) -> None:
        """Store the held updates that now integrate, in the order they came, until none
        does; give up those past their time (their sessions start over)."""
        progress = True
        while progress and doc.held:
            progress = False
            for item in list(doc.held.items):
                if not item.shape.integrates_into(doc.state_vector()):
                    continue
                doc.held.remove(item)
                progress = True
                remaining = item.at + doc.held.max_seconds - time.monotonic()
                try:
                    async with asyncio.timeout(max(0.1, remaining)):
                        settle(item, result=await self._store(item, doc))
                except Exception as exc:
                    settle(item, exc=exc)
        for item in doc.held.expired():
            doc.held.remove(item)
            settle(item, exc=OutOfStep("the update's history never arrived; reconnect"))
            if item.sid in doc.sids:
                self._disconnect(item.sid, f"an update to {doc.id} stayed without its history")
        self._arm_expiry(doc)

    def drop(self, doc: LoadedDoc) -> None:
        """The document unloads: nobody is left to ask for the history of what it holds."""
        for item in list(doc.held.items):
            doc.held.remove(item)
            settle(item, exc=OutOfStep("the document was closed"))
        if doc.expiry is not None:
            doc.expiry.cancel()
            doc.expiry = None


def settle(item: Held, *, result: Any = None, exc: BaseException | None = None) -> None:
    if item.future.done():
        return
    if exc is not None:
        item.future.set_exception(exc)
        item.future.exception()  # its waiter may be gone with its session
    else:
        item.future.set_result(result)
