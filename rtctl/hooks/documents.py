"""``document.updated`` webhooks: the app's copy of a document kept in step.

After a stored write, a document waits ``debounce`` seconds for quiet (at most
``max_wait`` while edits keep coming), then its text and JSON are sent (and its XML
fragments as ProseMirror JSON); a document unloading from this node is sent at once.
The export runs in a worker thread on the encoded state, so a large document never
holds the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from rtctl.hooks.webhooks import WebhookSender

if TYPE_CHECKING:
    from rtctl.docs.copies import LoadedDoc

log = logging.getLogger("rtctl.webhooks")


def _export(state: bytes) -> dict[str, Any]:
    from rtctl.docs.export import export_json, export_prosemirror, export_text

    out: dict[str, Any] = {"text": export_text(state), "json": export_json(state)}
    prosemirror = export_prosemirror(state)
    if prosemirror:  # an editor's XML fragments, as ProseMirror/Tiptap JSON
        out["prosemirror"] = prosemirror
    return out


class DocumentWebhooks:
    def __init__(self, sender: WebhookSender, debounce: float) -> None:
        self.sender = sender
        self.debounce = debounce
        self.max_wait = max(10.0, debounce * 5)
        self._pending: dict[str, tuple[float, asyncio.TimerHandle, LoadedDoc]] = {}
        self._sending: set[asyncio.Task[None]] = set()

    def stored(self, doc: LoadedDoc) -> None:
        """A write to ``doc`` was stored: send it once the document is quiet."""
        now = time.monotonic()
        first = now
        pending = self._pending.pop(doc.id, None)
        if pending is not None:
            first = pending[0]
            pending[1].cancel()
        delay = max(0.0, min(self.debounce, first + self.max_wait - now))
        timer = asyncio.get_running_loop().call_later(delay, self._fire, doc.id)
        self._pending[doc.id] = (first, timer, doc)

    def unloading(self, doc: LoadedDoc) -> None:
        """``doc`` leaves this node: what is pending for it goes now."""
        if doc.id in self._pending:
            self._fire(doc.id)

    def _fire(self, doc_id: str) -> None:
        pending = self._pending.pop(doc_id, None)
        if pending is None:
            return
        pending[1].cancel()
        task = asyncio.ensure_future(self._send(pending[2]))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(self, doc: LoadedDoc) -> None:
        state, seq = doc.state_update(), doc.applied
        try:
            exported = await asyncio.to_thread(_export, state)
        except Exception as exc:  # a document the export cannot read: say so, skip it
            log.warning("document.updated for %s not sent: %s", doc.id, exc)
            return
        self.sender.send("document.updated", {"document_id": doc.id, **exported, "updates": seq})

    async def close(self) -> None:
        """Send everything pending now (shutdown)."""
        for doc_id in list(self._pending):
            self._fire(doc_id)
        if self._sending:
            await asyncio.wait(list(self._sending), timeout=5.0)
