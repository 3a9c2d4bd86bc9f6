"""Messages between daemons over Redis pub/sub.

A daemon subscribes to its own node channel (commands) and to the channel of each
room it hosts at least one member of, so it never receives (or decodes) traffic for
rooms it does not host. Publishing is batched: messages queued in one event-loop
turn leave in one pipeline. The listener survives any Redis fault: it backs off,
reconnects and subscribes again to everything it needs, and says so once per outage.

With Sentinel, the listener follows a failover: its connection was opened on the
master of the time, and a demoted master keeps pub/sub clients connected, so the
listener compares the address it listens on with the current master (asked of the
sentinels about every second, aside from delivery) and moves when they differ.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger("rtctl.bus")

Handler = Callable[[str, bytes], Awaitable[None]]
MAX_BATCH = 512
BACKOFF_MAX = 2.0  # seconds between listener retries at most: back soon after Redis is
MASTER_CHECK_INTERVAL = 1.0  # seconds between asking where the master is (Sentinel only)
FOLLOW_POLL = 0.25  # with Sentinel, how often the listener looks whether the master moved


class MasterMoved(Exception):
    """The pub/sub connection is not on the current master: listen again there."""


def _master_pool(client: Any) -> Any:
    """The client's pool if it follows a master through sentinels, else None."""
    pool = getattr(client, "connection_pool", None)
    if getattr(pool, "is_master", False) and hasattr(pool, "get_master_address"):
        return pool
    return None


class RedisBus:
    def __init__(self, client: Any, node_channel: str, handler: Handler, *, sharded: bool) -> None:
        self.redis = client
        self.node_channel = node_channel
        self.handler = handler
        self.sharded = sharded  # Cluster: SSUBSCRIBE/SPUBLISH route by the channel's slot
        self._channels: set[str] = {node_channel}
        self._pubsub: Any = None
        self._listener: asyncio.Task[None] | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._master_pool = _master_pool(client)
        self._outbox: list[tuple[str, bytes]] = []
        self._flushing: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()
        self.dropped = 0
        self._publish_failing = False

    async def start(self) -> None:
        self._listener = asyncio.create_task(self._listen(), name="rtctl-bus-listener")
        if self._master_pool is not None:
            self._watcher = asyncio.create_task(self._watch_master(), name="rtctl-bus-master")

    async def close(self) -> None:
        for task in (self._listener, self._watcher, self._flushing):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()

    # subscriptions ---------------------------------------------------------------------------

    async def subscribe(self, channel: str) -> None:
        if channel in self._channels:
            return
        self._channels.add(channel)
        if self._pubsub is not None and self.connected.is_set():
            with contextlib.suppress(Exception):  # on failure the listener resubscribes everything
                await self._sub(self._pubsub, [channel])

    async def unsubscribe(self, channel: str) -> None:
        if channel == self.node_channel or channel not in self._channels:
            return
        self._channels.discard(channel)
        if self._pubsub is not None and self.connected.is_set():
            with contextlib.suppress(Exception):
                if self.sharded:
                    await self._pubsub.sunsubscribe(channel)
                else:
                    await self._pubsub.unsubscribe(channel)

    async def _sub(self, pubsub: Any, channels: list[str]) -> None:
        if self.sharded:
            await pubsub.ssubscribe(*channels)
        else:
            await pubsub.subscribe(*channels)

    async def _listen(self) -> None:
        delay = 0.1
        lost_at: float | None = None  # when this outage began; None while connected
        while True:
            try:
                self._pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
                await self._sub(self._pubsub, sorted(self._channels))
                self.connected.set()
                if lost_at is not None:
                    log.info(
                        "bus listener back on Redis after %.1fs; %d channels subscribed again",
                        time.monotonic() - lost_at,
                        len(self._channels),
                    )
                lost_at, delay = None, 0.1
                await self._pump(self._pubsub)
            except asyncio.CancelledError:
                raise
            except MasterMoved as moved:  # a failover: listen on the new master at once
                self.connected.clear()
                log.info("bus listener following the Redis master to %s", moved)
                await self._drop_pubsub()
            except Exception as exc:  # the listener must outlive every Redis fault
                self.connected.clear()
                if lost_at is None:  # once per outage; the retries are quiet
                    lost_at = time.monotonic()
                    log.warning("bus listener lost Redis (%s); retrying with backoff", exc)
                else:
                    log.debug("bus listener still without Redis (%s); retry in %.1fs", exc, delay)
                await self._drop_pubsub()
                await asyncio.sleep(delay)
                delay = min(BACKOFF_MAX, delay * 2)

    async def _drop_pubsub(self) -> None:
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()

    async def _pump(self, pubsub: Any) -> None:
        get = pubsub.get_sharded_message if self.sharded else pubsub.get_message
        pool = self._master_pool
        poll = 1.0 if pool is None else FOLLOW_POLL
        while True:
            message = await get(ignore_subscribe_messages=True, timeout=poll)
            if pool is not None:
                self._check_master(pool, pubsub)
            if message is None:
                continue
            channel = message["channel"]
            channel = channel.decode() if isinstance(channel, bytes) else channel
            data = message["data"]
            try:
                await self.handler(channel, data if isinstance(data, bytes) else str(data).encode())
            except Exception:
                self.dropped += 1
                log.exception("bus handler failed on %s", channel)

    @staticmethod
    def _check_master(pool: Any, pubsub: Any) -> None:
        """Raise ``MasterMoved`` when the connection is on another server than the master."""
        master, connection = pool.master_address, pubsub.connection
        if master is None or connection is None:
            return
        if (connection.host, connection.port) != tuple(master):
            raise MasterMoved(f"{master[0]}:{master[1]}")

    async def _watch_master(self) -> None:
        """Keep the pool's idea of the master fresh, aside from delivery (a slow sentinel
        never holds up messages); the listener compares it with where it listens."""
        pool = self._master_pool
        refresh = getattr(pool, "follow_master", None) or pool.get_master_address
        while True:
            await asyncio.sleep(MASTER_CHECK_INTERVAL)
            with contextlib.suppress(Exception):  # no sentinel answers: keep what we knew
                await refresh()

    # publishing ----------------------------------------------------------------------------

    def publish(self, channel: str, message: bytes) -> None:
        """Queue a message; it leaves with the others queued in this loop turn."""
        self._outbox.append((channel, message))
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.create_task(self._flush())

    async def publish_now(self, channel: str, message: bytes) -> int:
        """Publish at once; returns how many subscribers received it."""
        if self.sharded:
            return int(await self.redis.spublish(channel, message))
        return int(await self.redis.publish(channel, message))

    async def _flush(self) -> None:
        await asyncio.sleep(0)  # let the rest of this turn queue its messages
        while self._outbox:
            batch, self._outbox = self._outbox[:MAX_BATCH], self._outbox[MAX_BATCH:]
            try:
                async with self.redis.pipeline(transaction=False) as pipe:
                    for channel, message in batch:
                        if self.sharded:
                            pipe.spublish(channel, message)
                        else:
                            pipe.publish(channel, message)
                    await pipe.execute()
            except Exception as exc:  # Redis down: these deliveries are lost, say so once
                self.dropped += len(batch)
                if not self._publish_failing:
                    self._publish_failing = True
                    log.warning("could not publish %d messages: %s", len(batch), exc)
                else:
                    log.debug("could not publish %d messages: %s", len(batch), exc)
            else:
                if self._publish_failing:
                    self._publish_failing = False
                    log.info("publishing to Redis again (%d undelivered so far)", self.dropped)
