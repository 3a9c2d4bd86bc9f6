"""How late the event loop runs what is due: the daemon's own measure of a stall.

A task asks to wake every ``PERIOD`` seconds and notes how much later it woke. The
worst delay since it was last read is what the node reports (``stats.loop_lag_ms``
in its record, for ``rtctl top`` and the dashboard) and the gauge
``rtctl_event_loop_lag_seconds`` shows (the worst of the last ``WINDOW`` seconds).
"""

from __future__ import annotations

import asyncio
import time

PERIOD = 0.1  # seconds between two wake-ups
WINDOW = 5.0  # seconds the gauge looks back


class LoopLag:
    def __init__(self) -> None:
        self.worst_since_read = 0.0
        self.recent: list[tuple[float, float]] = []  # (when, lag), the last WINDOW seconds

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + PERIOD
            await asyncio.sleep(PERIOD)
            lag = max(0.0, loop.time() - due)
            self.worst_since_read = max(self.worst_since_read, lag)
            now = time.monotonic()
            self.recent.append((now, lag))
            while self.recent and self.recent[0][0] < now - WINDOW:
                self.recent.pop(0)

    def take_worst_ms(self) -> int:
        """The worst lag since the last call, in milliseconds; starts over."""
        worst, self.worst_since_read = self.worst_since_read, 0.0
        return round(worst * 1000)

    def gauge(self) -> float:
        return max((lag for _, lag in self.recent), default=0.0)
