"""Messages between daemons over Redis pub/sub.

A daemon subscribes to its own node channel (commands) and to the channel of each
room it hosts at least one member of, so it never receives (or decodes) traffic for
rooms it does not host. The listener survives any Redis fault: it backs off,
reconnects and subscribes again to everything it needs, and says so once per outage.

Publishing is batched. Messages queued in one event-loop turn leave together; under
load (more than ``LINGER_RATE`` messages a second over the last ``RATE_PERIOD``, or as
many already in the current one) a batch also waits until ``FLUSH_WINDOW`` has passed
since the previous one left, so a busy daemon sends one batch a window rather than one
every few messages, while a quieter one still sends each message at once. On a
standalone server or Sentinel a batch is one ``EVALSHA`` of a script that PUBLISHes
every message (one command and one reply per batch); on a Cluster it is a pipeline of
SPUBLISH, which redis-py splits by slot. The outbox is bounded (``MAX_OUTBOX``
messages, ``MAX_OUTBOX_BYTES``): past it a message is dropped and counted, and the
daemon warns once per overflow.

Listening on a standalone server or Sentinel reads the subscription's socket
directly with a ``hiredis.Reader`` and hands every complete message to the handler,
which costs a fraction of redis-py's ``PubSub.get_message`` per message; the
connection itself (TLS, unix socket, AUTH, the Sentinel master) comes from the
client's pool as usual. On a Cluster, redis-py's sharded PubSub listens.

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

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from rtctl.server.shards import pump_shards

log = logging.getLogger("rtctl.bus")

Handler = Callable[[str, bytes], Awaitable[None]]
MAX_BATCH = 512  # messages per EVALSHA / pipeline at most
FLUSH_WINDOW = 0.001  # seconds: under load, one batch per window at most
LINGER_RATE = 5000.0  # messages/s published from which batches linger (the window fills)
RATE_PERIOD = 0.01  # seconds over which that rate is counted
MAX_OUTBOX = 20_000  # messages waiting to be published at most; past it they are dropped
MAX_OUTBOX_BYTES = 32 * 1024 * 1024  # and bytes
BACKOFF_MAX = 2.0  # seconds between listener retries at most: back soon after Redis is
MASTER_CHECK_INTERVAL = 1.0  # seconds between asking where the master is (Sentinel only)
FOLLOW_POLL = 0.25  # with Sentinel, how often the listener looks whether the master moved
HEALTH_INTERVAL = 15.0  # seconds of silence on the subscription before a PING
PING_TIMEOUT = 5.0  # seconds a PING may go unanswered before the connection counts as lost
READ_SIZE = 256 * 1024

# One EVALSHA publishes a whole batch: ARGV is channel, message, channel, message, …
# (no shebang: PUBLISH is neither a write nor deny-oom, so this runs wherever PUBLISH does)
PUBLISH_BATCH = "for i = 1, #ARGV, 2 do redis.call('PUBLISH', ARGV[i], ARGV[i + 1]) end return 0"


class MasterMoved(Exception):
    """The pub/sub connection is not on the current master: listen again there."""


def _master_pool(client: Any) -> Any:
    """The client's pool if it follows a master through sentinels, else None."""
    pool = getattr(client, "connection_pool", None)
    if getattr(pool, "is_master", False) and hasattr(pool, "get_master_address"):
        return pool
    return None


def _hiredis() -> Any:
    try:
        import hiredis
    except ImportError:  # redis[hiredis] is a dependency; without it, redis-py's PubSub
        return None
    return hiredis


def pack(*args: str) -> bytes:
    """One command in RESP, for the subscription connection."""
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        raw = arg.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(raw), raw))
    return b"".join(out)


PING = pack("PING")


class RedisBus:
    def __init__(
        self,
        client: Any,
        node_channel: str,
        handler: Handler,
        *,
        sharded: bool,
        max_outbox: int = MAX_OUTBOX,
        max_outbox_bytes: int = MAX_OUTBOX_BYTES,
    ) -> None:
        self.redis = client
        self.node_channel = node_channel
        self.handler = handler
        self.sharded = sharded  # Cluster: SSUBSCRIBE/SPUBLISH route by the channel's slot
        self._channels: set[str] = {node_channel}
        self._pubsub: Any = None  # Cluster: redis-py's sharded PubSub
        raw = not sharded and hasattr(getattr(client, "connection_pool", None), "get_connection")
        self._hiredis = _hiredis() if raw else None
        self._send_raw: Callable[[bytes], Any] | None = None  # the subscription socket's write
        self._listener: asyncio.Task[None] | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._master_pool = _master_pool(client)
        self._lost_at: float | None = None  # when this outage began; None while connected
        self._delay = 0.1
        self.connected = asyncio.Event()
        self.dropped = 0
        # publishing
        self._outbox: list[tuple[str, bytes]] = []
        self._outbox_bytes = 0
        self.max_outbox, self.max_outbox_bytes = max_outbox, max_outbox_bytes
        self._flushing: asyncio.Task[None] | None = None
        self._last_sent = float("-inf")  # loop time the previous batch left
        self._arrivals = 0  # messages published since _rate_since
        self._rate_since = float("-inf")
        self._busy = False  # the last RATE_PERIOD saw LINGER_RATE or more
        self._script: Any = None if sharded else client.register_script(PUBLISH_BATCH)
        self._publish_failing = False
        self._overflowing = False
        # called when messages may have been lost and Redis answers again (the listener
        # subscribed anew, or publishing works again): parts whose state lives elsewhere
        # (documents: in their logs) deliver again what may not have arrived
        self.on_recovered: list[Callable[[], None]] = []
        self.published = 0  # messages handed to Redis
        self.batches = 0  # EVALSHAs / pipelines that carried them

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
        if self._send_raw is not None:
            with contextlib.suppress(Exception):  # on failure the listener resubscribes everything
                self._send_raw(pack("SUBSCRIBE", channel))
        elif self._pubsub is not None and self.connected.is_set():
            with contextlib.suppress(Exception):
                await self._sub(self._pubsub, [channel])

    async def unsubscribe(self, channel: str) -> None:
        if channel == self.node_channel or channel not in self._channels:
            return
        self._channels.discard(channel)
        if self._send_raw is not None:
            with contextlib.suppress(Exception):
                self._send_raw(pack("UNSUBSCRIBE", channel))
        elif self._pubsub is not None and self.connected.is_set():
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

    # listening -------------------------------------------------------------------------------

    async def _listen(self) -> None:
        while True:
            try:
                if self._hiredis is not None:
                    await self._listen_raw()
                else:
                    await self._listen_pubsub()
            except asyncio.CancelledError:
                raise
            except MasterMoved as moved:  # a failover: listen on the new master at once
                self.connected.clear()
                log.info("bus listener following the Redis master to %s", moved)
                await self._drop_pubsub()
            except Exception as exc:  # the listener must outlive every Redis fault
                self.connected.clear()
                if self._lost_at is None:  # once per outage; the retries are quiet
                    self._lost_at = time.monotonic()
                    log.warning("bus listener lost Redis (%s); retrying with backoff", exc)
                else:
                    log.debug(
                        "bus listener still without Redis (%s); retry in %.1fs", exc, self._delay
                    )
                await self._drop_pubsub()
                await asyncio.sleep(self._delay)
                self._delay = min(BACKOFF_MAX, self._delay * 2)

    def _up(self) -> None:
        """Subscribed (again): ready, and say so if this ends an outage."""
        self.connected.set()
        if self._lost_at is not None:
            log.info(
                "bus listener back on Redis after %.1fs; %d channels subscribed again",
                time.monotonic() - self._lost_at,
                len(self._channels),
            )
            self._recovered()
        self._lost_at, self._delay = None, 0.1

    def _recovered(self) -> None:
        for callback in self.on_recovered:
            try:
                callback()
            except Exception:
                log.exception("bus recovery callback failed")

    async def _drop_pubsub(self) -> None:
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()
            self._pubsub = None

    async def _listen_raw(self) -> None:
        """One subscription connection from the pool, read with hiredis until it fails."""
        pool = self.redis.connection_pool
        try:
            conn = await pool.get_connection()
        except TypeError:  # redis-py < 5.3 wants a command name
            conn = await pool.get_connection("pubsub")
        try:
            reader, writer = conn._reader, conn._writer
            if reader is None or writer is None:
                raise ConnectionError("subscription connection not open")
            # from the snapshot of the channels to the sink being set nothing awaits, so a
            # channel added meanwhile is either in this SUBSCRIBE or sent by subscribe()
            writer.write(pack("SUBSCRIBE", *sorted(self._channels)))
            self._send_raw = writer.write
            await self._pump_raw(conn, reader, writer)
        finally:
            self._send_raw = None
            with contextlib.suppress(Exception):
                await conn.disconnect()
            with contextlib.suppress(Exception):
                await pool.release(conn)

    async def _pump_raw(self, conn: Any, reader: asyncio.StreamReader, writer: Any) -> None:
        hiredis = self._hiredis
        assert hiredis is not None
        parser = hiredis.Reader()
        handler = self.handler
        pool = self._master_pool
        poll = 1.0 if pool is None else FOLLOW_POLL
        health = float(getattr(conn, "health_check_interval", 0) or HEALTH_INTERVAL)
        loop = asyncio.get_running_loop()
        heard = loop.time()  # last bytes from Redis
        pinged: float | None = None  # an unanswered PING's time
        while True:
            chunk: bytes | None = None
            try:
                async with asyncio.timeout(poll):
                    chunk = await reader.read(READ_SIZE)
            except TimeoutError:
                pass
            if pool is not None:
                self._check_master(pool, conn)
            now = loop.time()
            if chunk is None:  # quiet: make sure the connection still answers
                if pinged is not None:
                    if now - pinged > PING_TIMEOUT:
                        raise ConnectionError(f"no answer to PING within {PING_TIMEOUT:g}s")
                elif now - heard >= health:
                    writer.write(PING)
                    pinged = now
                continue
            if not chunk:
                raise ConnectionError("Redis closed the subscription connection")
            heard, pinged = now, None
            parser.feed(chunk)
            while (reply := parser.gets()) is not False:
                if not isinstance(reply, list):
                    if isinstance(reply, Exception):  # e.g. NOPERM on a channel
                        raise ConnectionError(f"Redis refused the subscription: {reply}")
                    continue
                kind = reply[0]
                if kind == b"message" and len(reply) == 3:
                    channel = reply[1].decode()
                    try:
                        await handler(channel, reply[2])
                    except Exception:
                        self.dropped += 1
                        log.exception("bus handler failed on %s", channel)
                elif kind == b"subscribe" and not self.connected.is_set():
                    self._up()  # the first SUBSCRIBE is done: all its channels are on

    async def _listen_pubsub(self) -> None:
        self._pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        await self._sub(self._pubsub, sorted(self._channels))
        self._up()
        await self._pump(self._pubsub)

    async def _pump(self, pubsub: Any) -> None:
        if self.sharded:  # a reader per shard (rtctl.server.shards)
            await pump_shards(pubsub, self.redis, self._handle)
            return
        pool = self._master_pool
        poll = 1.0 if pool is None else FOLLOW_POLL
        while True:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=poll)
            if pool is not None:
                self._check_master(pool, pubsub.connection)
            if message is not None:
                await self._handle(message)

    async def _handle(self, message: dict[str, Any]) -> None:
        channel = message["channel"]
        channel = channel.decode() if isinstance(channel, bytes) else channel
        data = message["data"]
        try:
            await self.handler(channel, data if isinstance(data, bytes) else str(data).encode())
        except Exception:
            self.dropped += 1
            log.exception("bus handler failed on %s", channel)

    @staticmethod
    def _check_master(pool: Any, connection: Any) -> None:
        """Raise ``MasterMoved`` when the connection is on another server than the master."""
        master = pool.master_address
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

    @property
    def idle(self) -> bool:
        """Nothing queued and no batch on its way."""
        return not self._outbox and (self._flushing is None or self._flushing.done())

    def publish(self, channel: str, message: bytes) -> None:
        """Queue a message; it leaves with the next batch (see the module's docstring)."""
        size = len(message)
        if (
            len(self._outbox) >= self.max_outbox
            or self._outbox_bytes + size > self.max_outbox_bytes
        ):
            self._overflow()
            return
        self._outbox.append((channel, message))
        self._arrivals += 1
        self._outbox_bytes += size
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.create_task(self._flush())

    def _overflow(self) -> None:
        self.dropped += 1
        if not self._overflowing:  # once until the outbox drains
            self._overflowing = True
            log.warning(
                "bus outbox full (%d messages, %d bytes waiting for Redis): dropping "
                "publications until it drains",
                len(self._outbox),
                self._outbox_bytes,
            )

    async def publish_now(self, channel: str, message: bytes) -> int:
        """Publish at once; returns how many subscribers received it."""
        if self.sharded:
            return int(await self.redis.spublish(channel, message))
        return int(await self.redis.publish(channel, message))

    async def _flush(self) -> None:
        loop = asyncio.get_running_loop()
        await asyncio.sleep(0)  # let the rest of this turn queue its messages
        while self._outbox:
            now = loop.time()
            since = now - self._last_sent
            if since < FLUSH_WINDOW and len(self._outbox) < MAX_BATCH and self._under_load(now):
                await asyncio.sleep(FLUSH_WINDOW - since)  # let the window fill
            batch = self._outbox[:MAX_BATCH]
            del self._outbox[:MAX_BATCH]
            self._outbox_bytes -= sum(len(m) for _, m in batch)
            self._last_sent = loop.time()
            await self._send(batch)
        if self._overflowing:
            self._overflowing = False
            log.info("bus outbox drained (%d undelivered so far)", self.dropped)

    def _under_load(self, now: float) -> bool:
        """Whether messages come at LINGER_RATE or more: over the last RATE_PERIOD, or
        already over the current one (a burst needs no full period to be seen)."""
        elapsed = now - self._rate_since
        if elapsed >= RATE_PERIOD:
            self._busy = self._arrivals >= LINGER_RATE * elapsed
            self._rate_since, self._arrivals = now, 0
            return self._busy
        return self._busy or self._arrivals >= LINGER_RATE * RATE_PERIOD

    async def _send(self, batch: list[tuple[str, bytes]]) -> None:
        try:
            if self._script is not None:
                await self._send_script(batch)
            else:
                await self._send_pipeline(batch)
        except Exception as exc:  # Redis down: these deliveries are lost, say so once
            self.dropped += len(batch)
            if not self._publish_failing:
                self._publish_failing = True
                log.warning("could not publish %d messages: %s", len(batch), exc)
            else:
                log.debug("could not publish %d messages: %s", len(batch), exc)
        else:
            self.published += len(batch)
            self.batches += 1
            if self._publish_failing:
                self._publish_failing = False
                log.info("publishing to Redis again (%d undelivered so far)", self.dropped)
                self._recovered()

    async def _send_script(self, batch: list[tuple[str, bytes]]) -> None:
        try:
            await self._script(args=[x for pair in batch for x in pair])
        except (RedisConnectionError, RedisTimeoutError, NoScriptError):
            raise
        except ResponseError as exc:  # scripting refused (ACL, a managed service): the script
            # never ran, so nothing of this batch was published; pipeline from now on
            log.warning("publishing with EVALSHA refused (%s); pipelining PUBLISH instead", exc)
            self._script = None
            await self._send_pipeline(batch)

    async def _send_pipeline(self, batch: list[tuple[str, bytes]]) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            for channel, message in batch:
                if self.sharded:
                    pipe.spublish(channel, message)
                else:
                    pipe.publish(channel, message)
            await pipe.execute()
