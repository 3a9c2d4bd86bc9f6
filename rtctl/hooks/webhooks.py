"""Webhooks: what the hub tells the app to record (SPEC §9).

Each webhook is ``POST webhook_url`` with the JSON body ``{type, at, data}``, signed
in ``X-Rtctl-Signature: sha256=<hex HMAC-SHA256 of the body>`` when a secret is set,
and named by ``X-Rtctl-Delivery`` (the same id on every try, so the app can drop a
repeat). ``send`` only queues: nothing on an event's path waits for the app. One
sender task posts them in order, over a kept-alive connection; a failure (the app
unreachable, 408, 429 or 5xx) is tried again with exponential backoff, up to
``MAX_ATTEMPTS`` times. The queue is bounded; past it the oldest webhook is dropped
and counted.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import hmac
import json
import logging
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from rtctl.errors import BackendUnavailable
from rtctl.hooks.http import KeptAliveHttp

log = logging.getLogger("rtctl.webhooks")

MAX_QUEUE = 10_000  # webhooks waiting to be sent
MAX_ATTEMPTS = 8
FIRST_BACKOFF = 0.5  # seconds, doubled per try up to MAX_BACKOFF
MAX_BACKOFF = 30.0
RETRIED_STATUSES = frozenset({408, 425, 429})


@dataclass
class WebhookStats:
    sent: int = 0
    retries: int = 0
    failed: int = 0  # refused by the app, or out of tries
    dropped: int = 0  # pushed out of a full queue


@dataclass
class _Delivery:
    id: str
    type: str
    body: bytes
    attempts: int = 0


def signature(secret: str, body: bytes) -> str:
    """The ``X-Rtctl-Signature`` value of a body: how the app checks a webhook is ours."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class WebhookSender:
    def __init__(self, url: str, secret: str = "", *, timeout: float = 10.0) -> None:
        self.poster = KeptAliveHttp(url, timeout=timeout, max_idle=2)
        self.secret = secret
        self.stats = WebhookStats()
        self._queue: collections.deque[_Delivery] = collections.deque()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None

    def send(self, type: str, data: dict[str, Any]) -> None:
        """Queue a webhook; returns at once."""
        at = datetime.fromtimestamp(time.time(), UTC).isoformat().replace("+00:00", "Z")
        body = json.dumps({"type": type, "at": at, "data": data}, separators=(",", ":"))
        if len(self._queue) >= MAX_QUEUE:
            lost = self._queue.popleft()
            self.stats.dropped += 1
            log.warning("webhook queue full: dropped %s %s", lost.type, lost.id)
        self._queue.append(_Delivery(os.urandom(8).hex(), type, body.encode()))
        self._idle.clear()
        self._wake.set()

    def queued(self) -> int:
        return len(self._queue)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.ensure_future(self._run())

    async def flush(self, timeout: float) -> bool:
        """Wait until everything queued is sent (or given up); False past ``timeout``."""
        try:
            async with asyncio.timeout(timeout):
                await self._idle.wait()
            return True
        except TimeoutError:
            return False

    async def close(self, grace: float = 5.0) -> None:
        if not await self.flush(grace):
            log.warning("%d webhooks not sent at shutdown", len(self._queue))
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self.poster.close()

    async def _run(self) -> None:
        while True:
            if not self._queue:
                self._idle.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            delivery = self._queue[0]
            backoff = await self._try(delivery)
            if backoff is None:
                if self._queue and self._queue[0] is delivery:
                    self._queue.popleft()
            else:
                await asyncio.sleep(backoff)

    async def _try(self, delivery: _Delivery) -> float | None:
        """Post once: None when done with it (sent, or given up), else seconds to wait."""
        delivery.attempts += 1
        headers = {"X-Rtctl-Delivery": delivery.id, "X-Rtctl-Event": delivery.type}
        if self.secret:
            headers["X-Rtctl-Signature"] = signature(self.secret, delivery.body)
        try:
            answer = await self.poster.post(delivery.body, headers)
            status, reason = answer.status, f"HTTP {answer.status}"
        except BackendUnavailable as exc:
            status, reason = 0, exc.message
        if 200 <= status < 300:
            self.stats.sent += 1
            return None
        retriable = status == 0 or status >= 500 or status in RETRIED_STATUSES
        if not retriable or delivery.attempts >= MAX_ATTEMPTS:
            self.stats.failed += 1
            log.warning("webhook %s %s not delivered after %d tries: %s",
                        delivery.type, delivery.id, delivery.attempts, reason)  # fmt: skip
            return None
        self.stats.retries += 1
        return min(MAX_BACKOFF, FIRST_BACKOFF * 2 ** (delivery.attempts - 1))
