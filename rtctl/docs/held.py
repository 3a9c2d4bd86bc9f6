"""Updates that build on history the hub does not have yet, held until it arrives.

An update whose dependencies are missing (the writer's earlier update was lost to a
reconnect, a disconnect for backlog, a store that gave up) must neither enter the
log, where it would sit pending, nor be dropped, which would fork its writer. It is
held, per document and bounded, while the hub asks its writer for what it lacks
(see ``DocService._ask_resync``). Each time the document gains something, the held
updates that now integrate are stored in the order they came; one still held after
``max_seconds`` is given up and its session disconnected, so that its client
rejoins and syncs from scratch.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from rtctl.auth import Identity
from rtctl.docs.yjs import UpdateShape
from rtctl.errors import RtctlError

MAX_HELD_UPDATES = 256  # per document
MAX_HELD_BYTES = 4 << 20  # per document
HELD_SECONDS = 10.0


class OutOfStep(RtctlError):
    """An update's history never arrived; its session is disconnected to start over."""

    code = "out_of_step"


@dataclass(slots=True)
class Held:
    sid: str
    identity: Identity
    update: bytes
    binary: bool
    shape: UpdateShape
    future: asyncio.Future[Any]
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
