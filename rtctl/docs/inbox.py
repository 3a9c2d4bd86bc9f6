"""A session's document traffic: taken in order, paced, never refused for its rate.

Every ``ydoc:*`` event of a session becomes a job in that session's inbox. One
worker runs the jobs one after another, in the order the events arrived, so a
writer's updates reach its document in the order its editor made them, and an
update is never looked at before the join that precedes it.

The rate limit is a pace, not a refusal: before a job runs, the worker waits until
the session's budget is out of debt. Jobs are charged after they ran, by what they
cost (``charge``): a stored update costs a token, an update the document already
had (an editor echoing what it was sent) a fraction of one, a state answer by its
size. So a session is slowed down exactly as much as it makes the hub work.

A backlog is bounded: when the bytes waiting would pass ``max_bytes``, or a job is
still not done ``max_seconds`` after it arrived (a slow pace, a store that does not
answer), the inbox overflows: its jobs are dropped and ``on_overflow`` disconnects
the session. Its client reconnects, rejoins and syncs, so nothing is lost. Ephemeral
jobs (awareness) are not paced, and are dropped rather than queued once half the
byte bound is used.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from rtctl.errors import RtctlError

JOB_OVERHEAD = 256  # bytes a queued job counts for beyond its payload


@dataclass(frozen=True)
class Pace:
    """How a session's document traffic is paced and bounded."""

    rate: float = 100.0
    burst: float = 200.0
    backlog_bytes: int = 16 << 20
    backlog_seconds: float = 30.0

    @property
    def held_seconds(self) -> float:
        """How long an update may wait for its history before its session starts over."""
        return self.backlog_seconds / 3


class Overflow(RtctlError):
    """The session's document backlog passed its bound; the session is disconnected."""

    code = "backlog_overflow"


class InboxClosed(RtctlError):
    code = "session_closed"


@dataclass(slots=True)
class _Job:
    run: Callable[[], Awaitable[Any]]
    size: int
    at: float
    future: asyncio.Future[Any]
    paced: bool = True


class DocInbox:
    def __init__(
        self,
        sid: str,
        *,
        rate: float,
        burst: float,
        max_bytes: int,
        max_seconds: float,
        on_overflow: Callable[[str, str], None],
    ) -> None:
        self.sid = sid
        self.rate = rate
        self.burst = max(1.0, burst)
        self.max_bytes = max_bytes
        self.max_seconds = max_seconds
        self.on_overflow = on_overflow
        self.tokens = self.burst
        self._refilled = time.monotonic()
        self._jobs: collections.deque[_Job] = collections.deque()
        self.bytes = 0
        self.closed = False
        self._worker: asyncio.Task[None] | None = None

    # taking jobs -------------------------------------------------------------------------

    def submit(
        self, run: Callable[[], Awaitable[Any]], size: int = 0, *, ephemeral: bool = False
    ) -> asyncio.Future[Any] | None:
        """Queue a job; its future has the job's result. None: an ephemeral job dropped."""
        if self.closed:
            raise InboxClosed("the session is closing")
        size += JOB_OVERHEAD
        if ephemeral and self.bytes + size > self.max_bytes // 2:
            return None
        now = time.monotonic()
        if self.bytes + size > self.max_bytes:
            self.overflow(f"more than {self.max_bytes} bytes of document traffic waiting")
            raise Overflow("too much document traffic waiting; reconnect and sync")
        if self._jobs and now - self._jobs[0].at > self.max_seconds:
            self.overflow(f"document traffic waiting for more than {self.max_seconds:g} s")
            raise Overflow("document traffic waited too long; reconnect and sync")
        job = _Job(run, size, now, asyncio.get_running_loop().create_future(), not ephemeral)
        self._jobs.append(job)
        self.bytes += size
        if self._worker is None:
            self._worker = asyncio.ensure_future(self._work())
        return job.future

    def charge(self, cost: float) -> None:
        """What the job that is running cost, in tokens (paid by the jobs after it)."""
        if self.rate > 0:
            self.tokens -= cost

    @property
    def waiting(self) -> int:
        return len(self._jobs)

    # running them ------------------------------------------------------------------------

    async def _work(self) -> None:
        try:
            while self._jobs:
                job = self._jobs[0]
                deadline = job.at + self.max_seconds
                limit = asyncio.timeout(max(0.0, deadline - time.monotonic()))
                try:
                    async with limit:
                        if job.paced:
                            await self._pace()
                        result = await job.run()
                except Exception as exc:
                    if isinstance(exc, TimeoutError) and limit.expired():
                        self.overflow(f"a document request took more than {self.max_seconds:g} s")
                        return
                    # the job's own failure: its caller reports it
                    self._finish(job, exc=exc)
                else:
                    self._finish(job, result=result)
        finally:
            if self._worker is asyncio.current_task():
                self._worker = None

    def _finish(self, job: _Job, *, result: Any = None, exc: BaseException | None = None) -> None:
        if self._jobs and self._jobs[0] is job:
            self._jobs.popleft()
            self.bytes -= job.size
        if job.future.done():
            return
        if exc is not None:
            job.future.set_exception(exc)
        else:
            job.future.set_result(result)

    def _in_debt(self) -> bool:
        if self.rate <= 0:
            return False
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self._refilled) * self.rate)
        self._refilled = now
        return self.tokens < 0

    async def _pace(self) -> None:
        while self._in_debt():
            await asyncio.sleep(-self.tokens / self.rate)

    # ending ------------------------------------------------------------------------------

    def overflow(self, reason: str) -> None:
        """Drop every job and have the session disconnected."""
        self._drop(Overflow(f"session disconnected: {reason}"))
        self.closed = True
        self.on_overflow(self.sid, reason)

    def _drop(self, exc: RtctlError) -> None:
        jobs, self._jobs = self._jobs, collections.deque()
        self.bytes = 0
        for job in jobs:
            if not job.future.done():
                job.future.set_exception(exc)
                job.future.exception()  # retrieved: nobody may wait for it any more
        worker, self._worker = self._worker, None
        if worker is not None and worker is not asyncio.current_task():
            worker.cancel()

    async def close(self) -> None:
        """The session is gone: finish what it sent (within the jobs' deadlines), take
        nothing new."""
        self.closed = True
        worker = self._worker
        if worker is not None and worker is not asyncio.current_task():
            await asyncio.wait([worker])  # the jobs' callers hear of their failures
        self._drop(InboxClosed("the session closed"))
