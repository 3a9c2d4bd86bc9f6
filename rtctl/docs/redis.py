"""The Redis document store: standalone, Sentinel or Cluster, shared by every daemon.

Keys (the five of one document share a Cluster hash tag, so every change to a
document is one single-slot Lua script in ``lua/``)::

    {<prefix>:d:<id>}:meta     hash    epoch, seq, base, generation, snapshot_bytes,
                                       log_bytes, created_at, updated_at, clocks_seq
    {<prefix>:d:<id>}:log      list    raw updates; index i holds seq base+1+i
    {<prefix>:d:<id>}:snap     string  the snapshot (absent while base is 0)
    {<prefix>:d:<id>}:clocks   hash    the clock summary: Yjs client id -> highest
                                       clock + 1 (trusted while clocks_seq is seq)
    {<prefix>:d:<id>}:writes   zset    write key of each of the last 4096 appends that
                                       had one -> its seq: an append tried again is
                                       stored once
    <prefix>:docs              zset    document id -> when it was last indexed (µs)
    <prefix>:docs:probe        string  the last probe's time (see ``probe()``), for a minute

The index lives in another slot, so it is written with separate commands. It is a
superset of the documents: a writer indexes an id before the append that creates
the document, and again after it; ``list()`` skips ids whose meta is gone and
removes those older than ``INDEX_GRACE``, and ``delete()`` removes its id, both only
if the id was not indexed again meanwhile (``doc_unindex.lua``).

Updates and snapshots are binary: the client must return bytes (``open_client``
does; ``decode_responses=True`` is refused).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rtctl.docs.store import (
    MAX_DOC_BYTES,
    CompactionFailed,
    CompactPlan,
    CompactResult,
    DocInfo,
    DocTail,
    DocumentTooLarge,
    compact_in_steps,
    update_clocks,
)
from rtctl.errors import BackendUnavailable, ConfigError
from rtctl.state.redis_faults import backend_call, redis_errors

SCRIPTS = ("doc_append", "doc_read", "doc_compact", "doc_delete", "doc_unindex")
INDEX_GRACE = 60.0  # seconds an index entry without a document survives a list()
LIST_BATCH = 500  # documents per pipelined round trip in list()
APPEND_BATCH = 256  # updates per script call, at most
APPEND_BATCH_BYTES = 1 << 20  # bytes per script call, about (one update may exceed it)


def new_epoch() -> str:
    return secrets.token_hex(8)


def _stamp() -> int:
    return int(time.time() * 1_000_000)


# an update, its clocks (as sent), its write key ('' for none), its caller
_Queued = tuple[bytes, str, bytes, asyncio.Future[int]]


def _fail(waiting: list[_Queued], exc: Exception) -> None:
    for *_, future in waiting:
        if not future.done():
            future.set_exception(exc)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


@dataclass(frozen=True)
class DocKeys:
    prefix: str

    @property
    def index(self) -> str:
        return f"{self.prefix}:docs"

    @property
    def probe(self) -> str:
        """Written by ``probe()``; gone a minute later."""
        return f"{self.prefix}:docs:probe"

    def doc(self, doc_id: str) -> list[str]:
        """meta, log, snapshot, clock summary, recent writes of one document (one slot)."""
        tag = "{" + f"{self.prefix}:d:{doc_id}" + "}"
        return [f"{tag}:meta", f"{tag}:log", f"{tag}:snap", f"{tag}:clocks", f"{tag}:writes"]


def _clocks_arg(clocks: Mapping[int, int] | None) -> str:
    """An update's clocks as ``doc_append.lua`` takes them; '!' when unknown."""
    if clocks is None:
        return "!"
    return " ".join(f"{c} {end}" for c, end in clocks.items())


def _clocks(flat: list[bytes]) -> dict[int, int]:
    """A clock summary as HGETALL gives it: client, end, client, end, …"""
    values = [int(v) for v in flat]
    return dict(zip(values[::2], values[1::2], strict=True))


def _info(doc_id: str, row: dict[Any, Any]) -> DocInfo:
    d = {_text(k): v for k, v in row.items()}
    seq, base = int(d["seq"]), int(d["base"])
    return DocInfo(
        id=doc_id,
        epoch=_text(d["epoch"]),
        seq=seq,
        base=base,
        updates=seq - base,
        log_bytes=int(d["log_bytes"]),
        snapshot_bytes=int(d["snapshot_bytes"]),
        generation=int(d["generation"]),
        created_at=float(d["created_at"]),
        updated_at=float(d["updated_at"]),
    )


class RedisDocStore:
    name = "redis"

    def __init__(
        self,
        client: Any,
        prefix: str,
        *,
        max_doc_bytes: int = MAX_DOC_BYTES,
        close_client: bool = True,
    ) -> None:
        encoder = client.get_encoder() if hasattr(client, "get_encoder") else None
        if encoder is not None and getattr(encoder, "decode_responses", False):
            raise ConfigError("documents are binary: the Redis client must not decode responses")
        self.redis = client
        self.keys = DocKeys(prefix)
        self.max_doc_bytes = max_doc_bytes
        self.close_client = close_client
        lua = Path(__file__).with_name("lua")
        self._scripts = {n: client.register_script((lua / f"{n}.lua").read_text()) for n in SCRIPTS}
        self._queues: dict[str, list[_Queued]] = {}
        self._flushers: dict[str, asyncio.Task[None]] = {}
        self._warm_lock = asyncio.Lock()
        self._warmed = False

    async def start(self) -> None:
        return None  # connections open lazily

    async def close(self) -> None:
        """Wait for queued appends, then close the client (unless it was lent)."""
        while self._flushers:
            await asyncio.gather(*self._flushers.values(), return_exceptions=True)
        if self.close_client:
            await self.redis.aclose()

    async def _warm(self) -> None:
        """One command before any other: a fresh Cluster client whose first commands run
        concurrently initializes once per command, and those initializations tear down
        each other's connections (redis-py 8.1: ``'NoneType' … 'writelines'``)."""
        if self._warmed:
            return
        async with self._warm_lock:
            if not self._warmed:
                await self.redis.ping()
                self._warmed = True

    async def _run(self, script: str, keys: list[str], args: list[Any]) -> Any:
        await self._warm()
        return await self._scripts[script](keys=keys, args=args)

    def _too_large(self, doc_id: str, stored: int, size: int) -> DocumentTooLarge:
        return DocumentTooLarge(
            f"document {doc_id} would grow past {self.max_doc_bytes} bytes"
            f" ({stored} stored, update of {size})"
        )

    # the store -----------------------------------------------------------------------------

    async def append(
        self,
        doc_id: str,
        update: bytes,
        clocks: Mapping[int, int] | None = None,
        key: bytes | None = None,
    ) -> int:
        """Queued per document and sent in order, many per script call: appends this
        store makes to one document land in the order they were called. An append
        whose ``key`` is among the document's recent writes is not stored again."""
        update = bytes(update)
        if len(update) > self.max_doc_bytes:
            raise self._too_large(doc_id, 0, len(update))
        known = _clocks_arg(update_clocks(update, clocks))
        loop = asyncio.get_running_loop()
        future: asyncio.Future[int] = loop.create_future()
        self._queues.setdefault(doc_id, []).append((update, known, key or b"", future))
        if doc_id not in self._flushers:
            self._flushers[doc_id] = loop.create_task(self._flush(doc_id))
        return await future

    async def _flush(self, doc_id: str) -> None:
        """Send the queue of one document, a batch per round trip, until it is empty."""
        try:
            while queue := self._queues.get(doc_id):
                size = n = 0
                while n < len(queue) and n < APPEND_BATCH and size < APPEND_BATCH_BYTES:
                    size += len(queue[n][0])
                    n += 1
                batch, queue[:n] = queue[:n], []
                if not queue:
                    del self._queues[doc_id]
                try:
                    results = await self._append_batch(
                        doc_id, [u for u, *_ in batch], [q[1] for q in batch],
                        [q[2] for q in batch],
                    )  # fmt: skip
                except Exception as exc:
                    results = [exc] * len(batch)
                except BaseException:
                    _fail(batch, BackendUnavailable("the document store stopped"))
                    raise
                for (*_, future), result in zip(batch, results, strict=True):
                    if not future.done():
                        if isinstance(result, BaseException):
                            future.set_exception(result)
                        else:
                            future.set_result(result)
        finally:
            del self._flushers[doc_id]
            _fail(self._queues.pop(doc_id, []), BackendUnavailable("the document store stopped"))

    @backend_call
    async def _append_batch(
        self, doc_id: str, updates: list[bytes], clocks: list[str], write_keys: list[bytes]
    ) -> list[int | Exception]:
        await self._warm()
        args = [*updates, *clocks, *write_keys]
        keys = self.keys.doc(doc_id)
        bound = self.max_doc_bytes
        reply = await self._run("doc_append", keys, [bound, 0, "", repr(time.time()), *args])
        if int(reply[0]) == -1:  # no such document: index the id first, then create it
            await self.redis.zadd(self.keys.index, {doc_id: _stamp()})
            now = repr(time.time())
            reply = await self._run("doc_append", keys, [bound, 1, new_epoch(), now, *args])
            if int(reply[0]) == 1:  # heals a removal that raced the creation
                with contextlib.suppress(*redis_errors()):
                    await self.redis.zadd(self.keys.index, {doc_id: _stamp()})
        _, seqs, stored = reply
        return [
            int(seq) if int(seq) > 0 else self._too_large(doc_id, int(before), len(update))
            for seq, before, update in zip(seqs, stored, updates, strict=True)
        ]

    @backend_call
    async def read(self, doc_id: str, after: int = 0, epoch: str | None = None) -> DocTail | None:
        reply = await self._run("doc_read", self.keys.doc(doc_id), [int(after), epoch or ""])
        if reply is None:
            return None
        stored_epoch, seq, base, _gen, _sb, _lb, full, snapshot, updates = reply
        return DocTail(
            _text(stored_epoch),
            int(seq),
            int(base),
            bytes(snapshot) if int(full) else None,
            [bytes(u) for u in updates],
        )

    @backend_call
    async def info(self, doc_id: str) -> DocInfo | None:
        await self._warm()
        row = await self.redis.hgetall(self.keys.doc(doc_id)[0])
        return _info(doc_id, row) if row else None

    @backend_call
    async def list(self) -> list[DocInfo]:
        await self._warm()
        entries = await self.redis.zrange(self.keys.index, 0, -1, withscores=True)
        cutoff = _stamp() - int(INDEX_GRACE * 1_000_000)
        infos: list[DocInfo] = []
        stale: list[tuple[str, int]] = []
        for i in range(0, len(entries), LIST_BATCH):
            chunk = [(_text(m), int(s)) for m, s in entries[i : i + LIST_BATCH]]
            async with self.redis.pipeline(transaction=False) as pipe:
                for doc_id, _ in chunk:
                    pipe.hgetall(self.keys.doc(doc_id)[0])
                rows = await pipe.execute()
            for (doc_id, score), row in zip(chunk, rows, strict=True):
                if row:
                    infos.append(_info(doc_id, row))
                elif score < cutoff:
                    stale.append((doc_id, score))
        for doc_id, score in stale:
            await self._run("doc_unindex", [self.keys.index], [doc_id, score])
        return sorted(infos, key=lambda d: d.id)

    @backend_call
    async def delete(self, doc_id: str) -> bool:
        await self._warm()
        score = await self.redis.zscore(self.keys.index, doc_id)  # before the document goes
        existed = await self._run("doc_delete", self.keys.doc(doc_id), [])
        if score is not None:
            await self._run("doc_unindex", [self.keys.index], [doc_id, int(score)])
        return bool(existed)

    @backend_call
    async def probe(self) -> None:
        await self._warm()
        await self.redis.set(self.keys.probe, repr(time.time()), px=60_000)

    @backend_call
    async def compact(self, doc_id: str) -> CompactResult | None:
        return await compact_in_steps(doc_id, self._compact_read, self._compact_commit)

    @backend_call
    async def _compact_read(self, doc_id: str) -> CompactPlan | None:
        reply = await self._run("doc_read", self.keys.doc(doc_id), [0, "", 1])
        if reply is None:
            return None
        epoch, seq, base, generation, snapshot_bytes, log_bytes, _, snapshot, updates, clocks = (
            reply
        )
        seq, base = int(seq), int(base)
        if len(updates) != seq - base:
            raise CompactionFailed(
                f"document {doc_id}: the log holds {len(updates)} updates where"
                f" {seq - base} were expected; not compacted"
            )
        return CompactPlan(
            epoch=_text(epoch),
            generation=int(generation),
            base=base,
            seq=seq,
            snapshot=bytes(snapshot) if base else None,
            updates=[bytes(u) for u in updates],
            snapshot_bytes=int(snapshot_bytes),
            log_bytes=int(log_bytes),
            clocks=None if clocks is None else _clocks(clocks),
        )

    @backend_call
    async def _compact_commit(
        self, doc_id: str, plan: CompactPlan, snapshot: bytes
    ) -> CompactResult | None:
        """Store ``snapshot`` in place of the plan's snapshot and log, if the document is
        still in the plan's epoch and generation; None (and nothing written) if not."""
        args = [plan.epoch, plan.generation, plan.seq, snapshot, plan.updates_bytes,
                repr(time.time())]  # fmt: skip
        reply = await self._run("doc_compact", self.keys.doc(doc_id), args)
        if int(reply[0]) == -1:
            return None
        if int(reply[0]) == -2:
            raise CompactionFailed(
                f"document {doc_id}: the log does not hold updates {plan.base + 1}..{plan.seq};"
                " not compacted"
            )
        generation, snapshot_bytes, log_bytes = (int(v) for v in reply)
        return CompactResult(
            doc_id, plan.seq - plan.base, plan.bytes, snapshot_bytes + log_bytes, generation
        )
