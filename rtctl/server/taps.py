"""Operators watching rooms (``rtctl events tail``, ``rtctl tasks tail`` on an embedded
daemon): each event emitted to a watched room is copied to the watchers' queues.

A room nobody watches costs one dict lookup per emit. What a watcher has not taken
yet is bounded (``MAX_QUEUED`` events, ``MAX_QUEUED_BYTES``): one that falls behind
is dropped, its queue emptied, and its stream ends with ``too_slow``, so a stalled
terminal never grows the daemon's memory. When the daemon drains, every watch ends
at once (``stopped``), whatever it was waiting on.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

MAX_QUEUED = 10_000
MAX_QUEUED_BYTES = 8 << 20
MAX_WATCHERS = 64  # per daemon


@dataclass(eq=False)
class Watch:
    room: str
    queue: asyncio.Queue[list[Any] | None] = field(default_factory=asyncio.Queue)
    queued_bytes: int = 0
    dropped: bool = False  # fell behind: the queue ends with None

    def take(self, packets: list[Any] | None) -> list[Any] | None:
        """Account for one item the watcher took off its queue."""
        if packets:
            self.queued_bytes -= _size(packets)
        return packets


def _size(packets: list[Any]) -> int:
    return sum(len(p.data) if isinstance(p.data, str | bytes) else 64 for p in packets)


class Taps:
    def __init__(self) -> None:
        self.rooms: dict[str, set[Watch]] = {}
        self.watchers = 0
        self.closing = False
        self.stopped = asyncio.Event()  # set when the daemon drains

    def check_room_for_one_more(self) -> None:
        if self.closing:
            from rtctl.errors import OperationFailed

            raise OperationFailed("the daemon is stopping", code="draining")
        if self.watchers >= MAX_WATCHERS:
            from rtctl.errors import RateLimited

            raise RateLimited(f"{MAX_WATCHERS} watchers already follow this daemon")

    @contextlib.contextmanager
    def watch(self, room: str) -> Iterator[Watch]:
        self.check_room_for_one_more()
        watch = Watch(room)
        self.rooms.setdefault(room, set()).add(watch)
        self.watchers += 1
        try:
            yield watch
        finally:
            self.watchers -= 1
            self._forget(watch)

    def close_all(self) -> None:
        """The daemon drains: every watch ends now (they would hold its shutdown)."""
        self.closing = True
        self.rooms.clear()
        self.stopped.set()

    def offer(self, room: str, packets: list[Any]) -> None:
        """Called on every emit to a room (cheap when nobody watches it)."""
        watching = self.rooms.get(room)
        if not watching:
            return
        size = _size(packets)
        for watch in list(watching):
            if (watch.queue.qsize() >= MAX_QUEUED
                    or watch.queued_bytes + size > MAX_QUEUED_BYTES):  # fmt: skip
                self._drop(watch)
            else:
                watch.queued_bytes += size
                watch.queue.put_nowait(packets)

    def _drop(self, watch: Watch) -> None:
        """A watcher too far behind: what it holds is let go, its stream told why."""
        self._forget(watch)
        while not watch.queue.empty():
            watch.queue.get_nowait()
        watch.queued_bytes, watch.dropped = 0, True
        watch.queue.put_nowait(None)

    def _forget(self, watch: Watch) -> None:
        watching = self.rooms.get(watch.room)
        if watching is not None:
            watching.discard(watch)
            if not watching:
                del self.rooms[watch.room]
