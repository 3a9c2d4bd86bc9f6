"""Operators watching rooms (``rtctl events tail``, ``rtctl tasks tail`` on an embedded
daemon): each event emitted to a watched room is copied to the watchers' queues.

A room nobody watches costs one dict lookup per emit. A watcher's queue is bounded: a
watcher that falls ``MAX_QUEUED`` events behind is dropped (its stream ends with
``too_slow``), so a stalled terminal never grows the daemon's memory.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any

MAX_QUEUED = 10_000
MAX_WATCHERS = 64  # per daemon

STOPPING: list[Any] = []  # put in every queue when the daemon drains: the watches end
Queue = asyncio.Queue[list[Any] | None]  # encoded packets; None: dropped for falling behind


class Taps:
    def __init__(self) -> None:
        self.rooms: dict[str, set[Queue]] = {}
        self.watchers = 0
        self.closing = False

    def check_room_for_one_more(self) -> None:
        if self.closing:
            from rtctl.errors import OperationFailed

            raise OperationFailed("the daemon is stopping", code="draining")
        if self.watchers >= MAX_WATCHERS:
            from rtctl.errors import RateLimited

            raise RateLimited(f"{MAX_WATCHERS} watchers already follow this daemon")

    @contextlib.contextmanager
    def watch(self, room: str) -> Iterator[Queue]:
        self.check_room_for_one_more()
        queue: Queue = asyncio.Queue(MAX_QUEUED + 1)
        self.rooms.setdefault(room, set()).add(queue)
        self.watchers += 1
        try:
            yield queue
        finally:
            self.watchers -= 1
            watching = self.rooms.get(room)
            if watching is not None:
                watching.discard(queue)
                if not watching:
                    del self.rooms[room]

    def close_all(self) -> None:
        """The daemon drains: every watch ends now (they would hold its shutdown)."""
        self.closing = True
        for watching in self.rooms.values():
            for queue in watching:
                queue.put_nowait(STOPPING)
        self.rooms.clear()

    def offer(self, room: str, packets: list[Any]) -> None:
        """Called on every emit to a room (cheap when nobody watches it)."""
        watching = self.rooms.get(room)
        if not watching:
            return
        for queue in list(watching):
            if queue.qsize() >= MAX_QUEUED:
                watching.discard(queue)
                queue.put_nowait(None)
            else:
                queue.put_nowait(packets)
        if not watching:
            del self.rooms[room]
