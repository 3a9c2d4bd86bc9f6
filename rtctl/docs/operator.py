"""What operators do to documents: list, inspect, compact, export, delete.

The same code serves the daemon's admin API (embedded mode) and the CLI working on
Redis with no daemon: all it needs is the document store and the shared state, which
says which sessions are in each document (room ``doc_<id>``, on any node).
"""

from __future__ import annotations

import asyncio
import builtins
import json
from collections.abc import Iterable
from typing import Any

from rtctl.docs.store import CompactionFailed, DocInfo, DocStore, doc_room, valid_doc_id
from rtctl.errors import NotFound, OperationFailed, RtctlError, UsageError
from rtctl.state.base import StateBackend

EXPORT_FORMATS = ("update", "json", "text")
EXPORT_CONTENT_TYPES = {
    "update": "application/octet-stream",
    "json": "application/json",
    "text": "text/plain; charset=utf-8",
}
ROOM_QUERIES = 8  # up to this many occupied documents: ask per room, past it list every session


def export_format(value: object) -> str:
    if value not in EXPORT_FORMATS:
        raise UsageError(f"format must be one of {', '.join(EXPORT_FORMATS)}")
    assert isinstance(value, str)
    return value


class DocOperator:
    def __init__(self, store: DocStore, state: StateBackend) -> None:
        self.store = store
        self.state = state

    # looking ---------------------------------------------------------------------------------

    async def list(self) -> builtins.list[dict[str, Any]]:
        """Every document, with the sessions in it (deployment-wide), by id."""
        docs = sorted(await self.store.list(), key=lambda d: d.id)
        sessions = await self._sessions_of(d.id for d in docs)
        return [d.to_json(sessions.get(d.id, [])) for d in docs]

    async def info(self, doc_id: str) -> dict[str, Any]:
        doc = await self._get(doc_id)
        return doc.to_json(await self._sessions_in(doc.id))

    async def _get(self, doc_id: str) -> DocInfo:
        doc = await self.store.info(valid_doc_id(doc_id))
        if doc is None:
            raise NotFound(f"no document {doc_id}")
        return doc

    async def _sessions_in(self, doc_id: str) -> builtins.list[str]:
        return sorted(s.sid for s in await self.state.list_sessions(room=doc_room(doc_id)))

    async def _sessions_of(self, doc_ids: Iterable[str]) -> dict[str, builtins.list[str]]:
        """doc id -> sids in it, for the given documents, in few queries: the room counts
        first (one read per node) say which documents have anyone in them; a few are asked
        room by room, many by one listing of every session indexed by room."""
        wanted = {doc_room(d): d for d in doc_ids}
        if not wanted:
            return {}
        occupied = [r.room for r in await self.state.list_rooms() if r.room in wanted]
        if not occupied:
            return {}
        found: dict[str, builtins.list[str]] = {}
        if len(occupied) <= ROOM_QUERIES:
            for room in occupied:
                sids = [s.sid for s in await self.state.list_sessions(room=room)]
                if sids:
                    found[wanted[room]] = sorted(sids)
            return found
        for session in await self.state.list_sessions():
            for room in session.rooms:
                doc_id = wanted.get(room)
                if doc_id is not None:
                    found.setdefault(doc_id, []).append(session.sid)
        return {d: sorted(sids) for d, sids in found.items()}

    # acting ----------------------------------------------------------------------------------

    async def compact(
        self, doc_ids: builtins.list[str] | None = None, *, all_docs: bool = False
    ) -> builtins.list[dict[str, Any]]:
        """Fold each document's log into its snapshot; one result per document:
        ``{id, result, compacted, before_bytes, after_bytes, error}`` where ``result`` is
        ``compacted``, ``unchanged`` (nothing to fold), ``not-found`` or ``failed``."""
        if all_docs == (doc_ids is not None):
            raise UsageError("give either document ids or all")
        if all_docs:
            ids = sorted(d.id for d in await self.store.list())
        else:
            assert doc_ids is not None
            ids = builtins.list(dict.fromkeys(valid_doc_id(d) for d in doc_ids))
        results = [await self._compact_one(d, listed=all_docs) for d in ids]
        return [r for r in results if r is not None]

    async def _compact_one(self, doc_id: str, *, listed: bool) -> dict[str, Any] | None:
        out: dict[str, Any] = {
            "id": doc_id, "result": "failed", "compacted": 0,
            "before_bytes": None, "after_bytes": None, "error": None,
        }  # fmt: skip
        try:
            result = await self.store.compact(doc_id)
        except (CompactionFailed, OperationFailed) as exc:
            out["error"] = exc.message
            return out
        if result is None:
            if listed:
                return None  # listed a moment ago, deleted since: not a document any more
            out["result"], out["error"] = "not-found", f"no document {doc_id}"
            return out
        out.update(
            result="compacted" if result.compacted else "unchanged",
            compacted=result.compacted,
            before_bytes=result.before_bytes,
            after_bytes=result.after_bytes,
        )
        return out

    async def export(self, doc_id: str, fmt: str = "update") -> bytes:
        """The document's whole state: ``update`` (one Yjs v1 update), ``json`` (every root
        type, UTF-8 JSON) or ``text`` (its text and XML content, UTF-8)."""
        fmt = export_format(fmt)
        tail = await self.store.read(valid_doc_id(doc_id))
        if tail is None:
            raise NotFound(f"no document {doc_id}")
        # merging and walking a document is CPU work: off the event loop
        return await asyncio.to_thread(_render, doc_id, tail.snapshot, tail.updates, fmt)

    async def delete(self, doc_id: str, *, dry_run: bool = False) -> dict[str, Any]:
        """Delete a document nobody is in. Deleting under live editors would fork it: their
        copies hold the old content, the store a new, empty document. The result is the
        document as it was, with ``deleted`` and ``dry_run``."""
        doc = await self._get(doc_id)
        sessions = await self._sessions_in(doc.id)
        if sessions:
            shown = " ".join(sessions[:5]) + (" …" if len(sessions) > 5 else "")
            raise OperationFailed(
                f"document {doc.id} has {len(sessions)} session(s) in it ({shown}); "
                "deleting it under live editors would fork it: wait until they leave, "
                "or kick them first",
                code="in_use",
            )
        deleted = False if dry_run else await self.store.delete(doc.id)
        if not dry_run and not deleted:
            raise NotFound(f"no document {doc_id}")  # deleted by someone else meanwhile
        return {**doc.to_json(sessions), "deleted": deleted, "dry_run": dry_run}


def _render(doc_id: str, snapshot: bytes | None, updates: list[bytes], fmt: str) -> bytes:
    from rtctl.docs import export, yjs

    try:
        update = yjs.merge(snapshot, updates)
        if fmt == "update":
            return update
        if fmt == "json":
            text = json.dumps(export.export_json(update), ensure_ascii=False, indent=2) + "\n"
            return text.encode("utf-8")
        return export.export_text(update).encode("utf-8")
    except RtctlError as exc:  # PendingHistory, MalformedUpdate: what is stored is damaged
        raise OperationFailed(f"document {doc_id} cannot be exported: {exc.message}") from exc
