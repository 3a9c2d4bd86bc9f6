"""Where documents live: an append-only log of updates plus one snapshot per document.

Every update gets the next sequence number of its document; the snapshot covers
every update up to ``base``, the log holds ``base + 1 .. seq``. Compaction replaces
the snapshot and trims the log in one atomic step that only succeeds if nothing
else compacted in between (the ``generation`` check), so appends racing it, from
any node, and a second compactor never lose an update, and a crash at any point
leaves either the old pair or the new one.

``epoch`` names one life of a document: deleting a document and writing to the id
again starts a new epoch, which tells a node that its loaded copy is stale.

Each document also has a *clock summary*: per Yjs client, the highest clock + 1 that
any update appended in this epoch covers (its structs and its deletions), kept with
every append in the same atomic step and read with the snapshot and log by the
compactor. The merged document must reach it; checking that costs one comparison
per client instead of decoding the whole log again. A summary is only trusted while
it covers every seq (``clocks_seq == seq``): an update whose clocks are unknown (it
does not decode, or an older rtctl appended it) ends it for the epoch, and such a
document is compacted with the full inspection, as one without any summary.

Two implementations: ``SqliteDocStore`` (embedded, ``rtctl.docs.sqlite``) and
``RedisDocStore`` (``rtctl.docs.redis``).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from rtctl.errors import OperationFailed, PayloadTooLarge, UsageError
from rtctl.state.base import iso

if TYPE_CHECKING:
    from rtctl.docs.yjs import UpdateShape

MAX_DOC_BYTES = 16 << 20  # default bound on a document: snapshot + log
DOC_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:@+=-]{0,199}")


def valid_doc_id(value: object) -> str:
    """Document ids: 1 to 200 characters of ``A-Z a-z 0-9 _ . : @ + = -``, not starting
    with punctuation. Safe in a Redis hash tag, a file name and a shell argument."""
    if not isinstance(value, str) or not DOC_ID.fullmatch(value):
        raise UsageError(
            "document_id must be 1 to 200 characters of letters, digits and _ . : @ + = -,"
            " starting with a letter or digit"
        )
    return value


def doc_room(doc_id: str) -> str:
    """The Socket.IO room of a document's sessions, on every node."""
    return f"doc_{doc_id}"


Clocks = dict[int, int]  # Yjs client id -> highest clock + 1 covered
CLOCK_LIMIT = 1 << 53  # client ids and clocks a summary holds (exact in a Lua number)


def shape_clocks(shape: UpdateShape) -> Clocks | None:
    """What an inspected update adds to its document's clock summary: per client the end
    of its structs and of its deletions. None when a value is past ``CLOCK_LIMIT``
    (never from a Yjs client; such a document is then compacted the slow way)."""
    clocks = {c: end for c, (_, end) in shape.structs.items()}
    for c, end in shape.deletes.items():
        if end > clocks.get(c, 0):
            clocks[c] = end
    if any(c >= CLOCK_LIMIT or end >= CLOCK_LIMIT for c, end in clocks.items()):
        return None
    return clocks


def update_clocks(update: bytes, clocks: Mapping[int, int] | None = None) -> Clocks | None:
    """``clocks`` as given (checked against ``CLOCK_LIMIT``), or the update's own, found by
    inspecting it; None when unknown (the update does not decode, or a value is too large)."""
    if clocks is not None:
        if any(c >= CLOCK_LIMIT or end >= CLOCK_LIMIT for c, end in clocks.items()):
            return None
        return dict(clocks)
    from rtctl.docs import yjs  # (here: keeps this module free of pycrdt)

    try:
        return shape_clocks(yjs.inspect_update(update))
    except yjs.MalformedUpdate:
        return None


class DocumentTooLarge(PayloadTooLarge):
    code = "document_too_large"


class CompactionFailed(OperationFailed):
    """The log could not be folded into a snapshot (history missing, an update that
    does not decode); the document is left as it was."""


@dataclass(frozen=True)
class DocInfo:
    id: str
    epoch: str
    seq: int  # the last sequence number given out
    base: int  # the snapshot holds every update up to this one
    updates: int  # updates in the log, not yet in the snapshot (seq - base)
    log_bytes: int
    snapshot_bytes: int
    generation: int  # compactions so far in this epoch
    created_at: float
    updated_at: float

    @property
    def bytes(self) -> int:
        return self.log_bytes + self.snapshot_bytes

    def to_json(self, sessions: list[str] | None = None) -> dict[str, Any]:
        return {
            "id": self.id,
            "updates": self.updates,
            "bytes": self.bytes,
            "updated_at": iso(self.updated_at),
            "sessions": sessions or [],
            "snapshot_bytes": self.snapshot_bytes,
            "seq": self.seq,
            "created_at": iso(self.created_at),
        }


@dataclass(frozen=True)
class DocTail:
    """What a reader lacks: the snapshot when its copy is older than ``base`` (or of
    another epoch), and the log after what it has."""

    epoch: str
    seq: int
    base: int
    snapshot: bytes | None  # None: the reader's copy already covers ``base``; b"": start empty
    updates: list[bytes]  # sequence numbers ``seq - len(updates) + 1 .. seq``


@dataclass(frozen=True)
class CompactResult:
    id: str
    compacted: int  # updates folded into the snapshot (0: nothing to do)
    before_bytes: int
    after_bytes: int
    generation: int


class DocStore(Protocol):
    async def append(
        self,
        doc_id: str,
        update: bytes,
        clocks: Mapping[int, int] | None = None,
        key: bytes | None = None,
    ) -> int:
        """Append one (already validated) update; durable when this returns its seq.

        ``clocks``: the update's clocks (``shape_clocks`` of its inspection) for the
        document's clock summary; when not given, the store inspects the update itself.
        Raises ``DocumentTooLarge`` when the document would exceed its bound.

        ``key``: the caller's name for this write, the same each time it tries again
        after a failure. SQLite's calls commit or roll back before they return; Redis's
        may time out on the caller and still run, so it keeps the keys of a document's
        recent writes and answers a key it stored with the seq it got."""
        ...

    async def read(self, doc_id: str, after: int = 0, epoch: str | None = None) -> DocTail | None:
        """The updates after seq ``after`` of epoch ``epoch`` (the snapshot too when
        ``after < base`` or the epoch differs). None if the document does not exist."""
        ...

    async def compact(self, doc_id: str) -> CompactResult | None:
        """Fold the log into the snapshot. None if the document does not exist."""
        ...

    async def info(self, doc_id: str) -> DocInfo | None: ...

    async def list(self) -> list[DocInfo]: ...

    async def delete(self, doc_id: str) -> bool: ...

    async def probe(self) -> None:
        """One small write that fails as an append would (``BackendUnavailable``): how a
        store that failed is found working again (``rtctl.docs.health``)."""
        ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...


@dataclass(frozen=True)
class CompactPlan:
    """What a compactor read: the snapshot and the log ``base + 1 .. seq`` of one
    generation. Committing it succeeds only while epoch and generation are unchanged."""

    epoch: str
    generation: int
    base: int
    seq: int
    snapshot: bytes | None
    updates: list[bytes]
    snapshot_bytes: int
    log_bytes: int  # the whole log when read (equal to the updates' bytes)
    clocks: Clocks | None = None  # the clock summary as of ``seq``; None: not known

    @property
    def bytes(self) -> int:
        return self.snapshot_bytes + self.log_bytes

    @property
    def updates_bytes(self) -> int:
        return sum(len(u) for u in self.updates)


async def merge_plan(doc_id: str, plan: CompactPlan) -> bytes:
    """The new snapshot for ``plan``, merged on a worker thread (never on the event loop)."""
    from rtctl.docs import yjs  # (here: keeps this module free of pycrdt)

    try:
        return await asyncio.to_thread(yjs.merge, plan.snapshot, plan.updates, plan.clocks)
    except (UsageError, ValueError) as exc:  # PendingHistory, MalformedUpdate; pycrdt refusing
        raise CompactionFailed(
            f"document {doc_id}: cannot compact updates {plan.base + 1}..{plan.seq}:"
            f" {exc}; the document is unchanged"
        ) from exc


async def compact_in_steps(
    doc_id: str,
    read: Callable[[str], Awaitable[CompactPlan | None]],
    commit: Callable[[str, CompactPlan, bytes], Awaitable[CompactResult | None]],
    *,
    attempts: int = 2,
) -> CompactResult | None:
    """Read, merge off the loop, commit if nothing else compacted meanwhile (``commit``
    returns None then); a lost race is retried from scratch, ``attempts`` times in all,
    after which the result reports nothing compacted. None if the document is absent."""
    result: CompactResult | None = None
    for _ in range(attempts):
        plan = await read(doc_id)
        if plan is None:
            return None
        result = CompactResult(doc_id, 0, plan.bytes, plan.bytes, plan.generation)
        if not plan.updates:
            return result
        done = await commit(doc_id, plan, await merge_plan(doc_id, plan))
        if done is not None:
            return done
    return result
