"""Automatic compaction of the documents a node writes to.

After an append, a document whose log has grown past ``compact_updates`` since its
snapshot is considered for compaction, in the background and one at a time per
document. It is compacted once the log holds ``COMPACT_LOG_RATIO`` times the
snapshot's bytes (write amplification at most 1.25x), or, to bound the replay of
a cold load, once it holds ``COMPACT_HARD_FACTOR`` times the update threshold and
at least ``COMPACT_HARD_RATIO`` times the snapshot's bytes (at most 1.5x).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from rtctl.docs.store import DocStore
from rtctl.errors import RtctlError

if TYPE_CHECKING:
    from rtctl.docs.copies import LoadedDoc

log = logging.getLogger("rtctl.docs")

COMPACT_LOG_RATIO = 4.0
COMPACT_HARD_FACTOR = 40
COMPACT_HARD_RATIO = 2.0


class AutoCompactor:
    def __init__(
        self,
        store: DocStore,
        compact_updates: int,
        spawn: Callable[[Coroutine[Any, Any, None]], asyncio.Task[Any]],
    ) -> None:
        self.store = store
        self.compact_updates = compact_updates
        self._spawn = spawn

    def after_append(self, doc: LoadedDoc, seq: int) -> None:
        if seq - doc.base < self.compact_updates or seq < doc.check_at:
            return
        if doc.compacting is not None and not doc.compacting.done():
            return
        doc.compacting = self._spawn(self._compact(doc))

    async def _compact(self, doc: LoadedDoc) -> None:
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
