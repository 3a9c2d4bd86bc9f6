"""Opening a Redis client from an rtctl URL: standalone, TLS, unix socket, Sentinel, Cluster.

redis://[user:pass@]host:port[/db]        rediss://… (TLS)       unix:///path?db=0
redis+sentinel://[pass@]h1:p1,h2:p2/service[/db]    (rediss+sentinel:// for TLS)
any of the standalone forms with --redis-cluster    (a Cluster seed node)
"""

from __future__ import annotations

import contextlib
import functools
import time
from typing import Any
from urllib.parse import unquote, urlsplit

from rtctl.errors import ConfigError

# Connections per client. Past the limit a request waits (up to POOL_WAIT) for a free
# connection rather than failing: a burst of connects must queue, not be refused.
MAX_CONNECTIONS = 64
POOL_WAIT = 5.0
CLIENT_OPTIONS: dict[str, Any] = {
    "socket_timeout": 5.0,
    "socket_connect_timeout": 3.0,
    "health_check_interval": 15,
    "retry_on_timeout": False,
}
MASTER_CHECK_INTERVAL = 1.0  # seconds between asking the sentinels where the master is


def parse_sentinel(url: str) -> tuple[list[tuple[str, int]], str, int, str | None, bool]:
    """``redis+sentinel://[:pass@]h1:p1,h2:p2/service[/db]``: hosts, service, db, password, tls."""
    tls = url.startswith("rediss+")
    rest = url.split("://", 1)[1]
    password = None
    if "@" in rest:
        creds, rest = rest.rsplit("@", 1)
        password = unquote(creds.split(":", 1)[-1]) or None
    hostpart, _, path = rest.partition("/")
    hosts = []
    for item in hostpart.split(","):
        host, _, port = item.rpartition(":")
        try:
            hosts.append((host or item, int(port) if host else 26379))
        except ValueError:
            raise ConfigError(f"redis_url: bad sentinel address {item!r}") from None
    parts = [p for p in path.split("/") if p]
    if not parts:
        raise ConfigError("redis_url: a sentinel URL needs a service name: …/service[/db]")
    try:
        db = int(parts[1]) if len(parts) > 1 else 0
    except ValueError:
        raise ConfigError(f"redis_url: bad database number {parts[1]!r}") from None
    return hosts, parts[0], db, password, tls


@functools.cache
def _following_pool_class() -> Any:
    """A Sentinel master pool that notices a failover even while its connections live.

    redis-py asks the sentinels for the master only when it opens a connection, so
    after a failover the pooled connections keep writing to the old master, which
    still accepts writes until the sentinels demote it (~10 s), and those writes are
    lost when it resyncs. This pool asks again at most every
    ``MASTER_CHECK_INTERVAL`` when handing out a connection, and reconnects one that
    points elsewhere; it also closes its sentinel clients when it closes.
    """
    from redis.asyncio.sentinel import SentinelConnectionPool
    from redis.exceptions import ConnectionError, TimeoutError

    class FollowingMasterPool(SentinelConnectionPool):
        _checked_at = 0.0

        async def follow_master(self) -> None:
            """Ask the sentinels where the master is, at most every ``MASTER_CHECK_INTERVAL``.

            Updates ``master_address`` and closes idle connections when the master
            moved; when no sentinel answers, keeps what it knew. Long-lived
            connections (pub/sub) compare their address with ``master_address``.
            """
            now = time.monotonic()
            if now - self._checked_at >= MASTER_CHECK_INTERVAL:
                self._checked_at = now
                with contextlib.suppress(ConnectionError, TimeoutError):
                    await self.get_master_address()

        async def get_connection(self, *args: Any, **kwargs: Any) -> Any:  # (args: deprecated)
            await self.follow_master()
            connection = await super().get_connection()
            address = self.master_address
            if (
                address is not None
                and connection.is_connected
                and (connection.host, connection.port) != tuple(address)
            ):
                try:  # one that was in use when the master moved
                    await connection.disconnect()
                    await self.ensure_connection(connection)
                except BaseException:
                    await self.release(connection)
                    raise
            return connection

        async def aclose(self) -> None:
            await super().aclose()
            for sentinel in self.sentinel_manager.sentinels:
                await sentinel.aclose()

    return FollowingMasterPool


def open_client(url: str, *, cluster: bool = False) -> Any:
    """A ``redis.asyncio`` client (or ``RedisCluster``); nothing is connected yet."""
    import redis.asyncio as aioredis

    if url.startswith(("redis+sentinel://", "rediss+sentinel://")):
        from redis.asyncio.sentinel import Sentinel

        hosts, service, db, password, tls = parse_sentinel(url)
        sentinel = Sentinel(
            hosts,
            sentinel_kwargs={"socket_timeout": 2.0},
            password=password,
            ssl=tls,
            **CLIENT_OPTIONS,
        )
        # (no waiting pool exists for Sentinel: a generous cap instead)
        return sentinel.master_for(service, db=db, connection_pool_class=_following_pool_class(),
                                   max_connections=MAX_CONNECTIONS * 16)  # fmt: skip
    if cluster:
        from redis.asyncio.cluster import RedisCluster

        parsed = urlsplit(url)
        if parsed.scheme == "unix":
            raise ConfigError("redis_url: a Cluster seed must be redis:// or rediss://")
        return RedisCluster.from_url(url, socket_timeout=5.0, socket_connect_timeout=3.0,
                                     max_connections=MAX_CONNECTIONS * 16)  # fmt: skip
    pool = aioredis.BlockingConnectionPool.from_url(
        url, max_connections=MAX_CONNECTIONS, timeout=POOL_WAIT, **CLIENT_OPTIONS
    )
    return aioredis.Redis.from_pool(pool)
