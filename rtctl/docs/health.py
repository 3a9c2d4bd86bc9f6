"""Whether the document store takes writes, for ``/readyz``: learnt from the calls the
daemon makes anyway, so a readiness check costs nothing.

``WatchedStore`` wraps a store. A call that fails with ``BackendUnavailable`` (SQLite
on a full disk, a Redis that does not answer) marks it failing; only an append (or a
probe) that succeeds clears the mark, since reads may still work on a disk that takes
no writes.
While it is failing, the store is probed (``probe()``: one small write) every
``PROBE_INTERVAL`` seconds, so it is found healthy again even if no client writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from rtctl.errors import BackendUnavailable

if TYPE_CHECKING:
    from rtctl.docs.store import CompactResult, DocInfo, DocStore, DocTail

log = logging.getLogger("rtctl.docs")
T = TypeVar("T")
PROBE_INTERVAL = 1.0  # seconds between probes of a failing store


class WatchedStore:
    """A document store that remembers whether its last calls failed."""

    def __init__(self, store: DocStore) -> None:
        self.inner = store
        self.name = getattr(store, "name", "store")
        self.failure: str | None = None  # why the store is failing; None while it works
        self._prober: asyncio.Task[None] | None = None

    async def _watch(self, call: Awaitable[T], *, write: bool = False) -> T:
        try:
            result = await call
        except BackendUnavailable as exc:
            self._failed(exc.message)
            raise
        if write:
            self._recovered()
        return result

    def _failed(self, reason: str) -> None:
        if self.failure is None:
            log.warning("document store failing: %s", reason)
        self.failure = reason
        if self._prober is None or self._prober.done():
            self._prober = asyncio.get_running_loop().create_task(self._probe_until_healthy())

    def _recovered(self) -> None:
        if self.failure is not None:
            log.warning("document store works again")
        self.failure = None

    async def _probe_until_healthy(self) -> None:
        while self.failure is not None:
            await asyncio.sleep(PROBE_INTERVAL)
            try:
                await self.inner.probe()
            except BackendUnavailable as exc:
                self.failure = exc.message
            except Exception:  # a probe must never end the watch by surprise
                log.exception("document store probe failed")
            else:
                self._recovered()

    # the store -----------------------------------------------------------------------------

    async def append(
        self,
        doc_id: str,
        update: bytes,
        clocks: Mapping[int, int] | None = None,
        key: bytes | None = None,
    ) -> int:
        return await self._watch(self.inner.append(doc_id, update, clocks, key), write=True)

    async def read(self, doc_id: str, after: int = 0, epoch: str | None = None) -> DocTail | None:
        return await self._watch(self.inner.read(doc_id, after, epoch))

    async def compact(self, doc_id: str) -> CompactResult | None:
        return await self._watch(self.inner.compact(doc_id))  # None: it wrote nothing

    async def info(self, doc_id: str) -> DocInfo | None:
        return await self._watch(self.inner.info(doc_id))

    async def list(self) -> list[DocInfo]:
        return await self._watch(self.inner.list())

    async def delete(self, doc_id: str) -> bool:
        return await self._watch(self.inner.delete(doc_id))  # False: it wrote nothing

    async def probe(self) -> None:
        await self._watch(self.inner.probe(), write=True)

    async def start(self) -> None:
        await self.inner.start()

    async def close(self) -> None:
        if self._prober is not None:
            self._prober.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._prober
        await self.inner.close()

    def __getattr__(self, name: str) -> Any:  # what else a store offers (tests, tools)
        return getattr(self.inner, name)
