"""Emits to users and rooms, queued and sent in order, in batches, by one sender.

``put`` returns once an emit is queued, so an app streaming to many users is not held
to one round trip per emit; while a batch is in flight the next one fills up. One
batch is in flight at a time, so emits reach Redis (or the daemon) in the order they
were made. A batch that cannot be sent is tried again with backoff for ``give_up``
seconds; past that it is dropped, and the next ``put`` or ``flush`` raises the
error, so the app learns of it. The queue is bounded: past ``max_queued`` emits,
``put`` waits for room (a hub that does not keep up slows the app down instead of
growing its memory).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from rtctl.errors import BackendUnavailable, RtctlError

log = logging.getLogger("rtctl.client")
T = TypeVar("T")
FIRST_BACKOFF = 0.05
MAX_BACKOFF = 2.0


class Outbox(Generic[T]):
    def __init__(
        self,
        send: Callable[[list[T]], Awaitable[None]],
        *,
        max_batch: int,
        max_queued: int,
        give_up: float,
    ) -> None:
        self._send = send
        self._queue: collections.deque[T] = collections.deque()
        self._max_batch, self._max_queued, self._give_up = max_batch, max_queued, give_up
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._failure: RtctlError | None = None
        self._task: asyncio.Task[None] | None = None

    async def put(self, item: T) -> None:
        self._raise_failure()
        while len(self._queue) >= self._max_queued:
            self._room.clear()
            await self._room.wait()
            self._raise_failure()
        self._queue.append(item)
        self._idle.clear()
        self._wake.set()
        if self._task is None:
            self._task = asyncio.ensure_future(self._run())

    async def flush(self) -> None:
        """Wait until everything queued is sent; raise what made a batch fail."""
        await self._idle.wait()
        self._raise_failure()

    async def close(self) -> None:
        try:
            await self.flush()
        finally:
            if self._task is not None:
                self._task.cancel()
                await asyncio.gather(self._task, return_exceptions=True)

    def _raise_failure(self) -> None:
        failure, self._failure = self._failure, None
        if failure is not None:
            raise failure

    async def _run(self) -> None:
        while True:
            if not self._queue:
                self._idle.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            count = min(len(self._queue), self._max_batch)
            batch = [self._queue.popleft() for _ in range(count)]
            self._room.set()
            await self._deliver(batch)

    async def _deliver(self, batch: list[T]) -> None:
        started, backoff = time.monotonic(), FIRST_BACKOFF
        while True:
            try:
                await self._send(batch)
                return
            except RtctlError as exc:
                failure = exc
            except Exception as exc:  # a transport fault of the client library
                failure = BackendUnavailable(f"{type(exc).__name__}: {exc}")
            if time.monotonic() - started + backoff > self._give_up:
                log.warning("dropped %d emits: %s", len(batch), failure.message)
                self._failure = failure
                self._room.set()
                return
            await asyncio.sleep(backoff)
            backoff = min(MAX_BACKOFF, backoff * 2)
