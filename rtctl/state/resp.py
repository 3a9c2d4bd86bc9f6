"""A small asyncio Redis client for short-lived processes: the CLI in Redis mode.

Importing redis-py costs a short command more than all of rtctl's own work (its package
loads the sync, asyncio, Cluster and Sentinel clients whatever is used), so a CLI
process talks RESP itself: ``hiredis`` parses, asyncio streams carry, and the methods
are exactly those ``RedisState``, ``RedisPeers``, ``RedisRevocations`` and
``RedisHookCache`` call on a ``redis.asyncio`` client, with the same arguments and the
same answers (bytes, never decoded). The contract tests run the state backend over
both clients.

It serves ``redis://``, ``rediss://`` (TLS, certificate and host name verified),
``unix://`` and ``redis+sentinel://`` URLs with no query options but ``db`` and
``ssl_ca_certs``; ``open_fast_client`` answers ``None`` for anything else (a Cluster
seed, client certificates, pool options), and the caller uses redis-py.
"""

from __future__ import annotations

import asyncio
import hashlib
import ssl
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import hiredis

from rtctl.state.redis_url import parse_sentinel

CONNECT_TIMEOUT = 3.0  # as redis_url.CLIENT_OPTIONS
READ_TIMEOUT = 5.0
SENTINEL_TIMEOUT = 2.0
MAX_IDLE = 8  # connections kept for reuse; concurrent requests open more


class RespError(Exception):
    """Redis answered a command with an error."""


class RespConnectionError(ConnectionError):
    """Redis could not be reached, or the connection broke."""


Convert = Callable[[Any], Any]
Address = tuple[str, int] | str  # (host, port) or a unix socket path


def _same(reply: Any) -> Any:
    return reply


def _ok(reply: Any) -> bool | None:
    return True if reply == b"OK" else None


def _pairs(reply: list[Any]) -> dict[Any, Any]:
    return dict(zip(reply[::2], reply[1::2], strict=True))


def _scored(reply: list[Any]) -> list[tuple[Any, float]]:
    return [(m, float(s)) for m, s in zip(reply[::2], reply[1::2], strict=True)]


def _arg(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, bool):  # redis-py refuses these; so do we
        raise TypeError("a bool is not a Redis value")
    if isinstance(value, float):
        return repr(value).encode()
    if isinstance(value, int):
        return str(value).encode()
    raise TypeError(f"{type(value).__name__} is not a Redis value")


def encode(args: Sequence[Any]) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for value in args:
        raw = _arg(value)
        out.append(b"$%d\r\n%s\r\n" % (len(raw), raw))
    return b"".join(out)


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.parser = hiredis.Reader()
        self.broken = False

    @classmethod
    async def open(cls, address: Address, tls: ssl.SSLContext | None) -> Connection:
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                if isinstance(address, str):
                    reader, writer = await asyncio.open_unix_connection(address)
                else:
                    host, port = address
                    reader, writer = await asyncio.open_connection(
                        host, port, ssl=tls, server_hostname=host if tls else None
                    )
        except (OSError, TimeoutError) as exc:
            raise RespConnectionError(f"cannot connect to {_where(address)}: {exc}") from exc
        return cls(reader, writer)

    async def roundtrip(self, commands: Sequence[Sequence[Any]], timeout: float) -> list[Any]:
        """Send ``commands`` in one write and read their replies, errors included;
        ``timeout`` bounds each wait on the socket (as redis-py's socket_timeout), not
        the whole exchange, so a long pipeline that keeps arriving is not cut."""
        try:
            self.writer.write(b"".join(encode(c) for c in commands))
            async with asyncio.timeout(timeout):
                await self.writer.drain()
            replies: list[Any] = []
            while len(replies) < len(commands):
                reply = self.parser.gets()
                if reply is not False:
                    replies.append(reply)
                    continue
                async with asyncio.timeout(timeout):
                    data = await self.reader.read(65536)
                if not data:
                    raise RespConnectionError("Redis closed the connection")
                self.parser.feed(data)
            return replies
        except BaseException as exc:
            self.broken = True  # replies may still be on their way: never reuse it
            if isinstance(exc, hiredis.ProtocolError):
                raise RespConnectionError(f"Redis sent what is not RESP: {exc}") from exc
            if isinstance(exc, OSError) and not isinstance(exc, RespConnectionError | TimeoutError):
                raise RespConnectionError(str(exc) or type(exc).__name__) from exc
            raise

    async def call(self, *args: Any) -> Any:
        [reply] = await self.roundtrip([args], READ_TIMEOUT)
        return _raise(reply)

    def close(self) -> None:
        self.writer.close()


def _raise(reply: Any) -> Any:
    if isinstance(reply, hiredis.ReplyError):
        raise RespError(str(reply))
    return reply


def _where(address: Address) -> str:
    return address if isinstance(address, str) else f"{address[0]}:{address[1]}"


class Commands(ABC):
    """The commands rtctl's state code sends; ``_do`` runs one (client) or queues it
    (pipeline), and ``convert`` shapes its reply as redis-py would."""

    @abstractmethod
    def _do(self, args: tuple[Any, ...], convert: Convert = _same) -> Any:
        """Run ``args`` (a client) or queue them (a pipeline)."""

    def execute_command(self, *args: Any) -> Any:
        return self._do(args)

    def ping(self) -> Any:
        return self._do(("PING",), lambda r: r == b"PONG")

    def get(self, key: str) -> Any:
        return self._do(("GET", key))

    def set(
        self, key: str, value: Any, *, px: int | None = None, pxat: int | None = None,
        nx: bool = False,
    ) -> Any:  # fmt: skip
        args: tuple[Any, ...] = ("SET", key, value)
        args += ("PX", px) if px is not None else ()
        args += ("PXAT", pxat) if pxat is not None else ()
        args += ("NX",) if nx else ()
        return self._do(args, _ok)

    def delete(self, *keys: str) -> Any:
        return self._do(("DEL", *keys))

    def unlink(self, *keys: str) -> Any:
        return self._do(("UNLINK", *keys))

    def exists(self, *keys: str) -> Any:
        return self._do(("EXISTS", *keys))

    def expire(self, key: str, seconds: int) -> Any:
        return self._do(("EXPIRE", key, seconds), bool)

    def pexpire(self, key: str, ms: int) -> Any:
        return self._do(("PEXPIRE", key, ms), bool)

    def incr(self, key: str) -> Any:
        return self._do(("INCR", key))

    def rpush(self, key: str, *values: Any) -> Any:
        return self._do(("RPUSH", key, *values))

    def publish(self, channel: str, message: Any) -> Any:
        return self._do(("PUBLISH", channel, message))

    def spublish(self, channel: str, message: Any) -> Any:
        return self._do(("SPUBLISH", channel, message))

    def hget(self, key: str, field: str) -> Any:
        return self._do(("HGET", key, field))

    def hgetall(self, key: str) -> Any:
        return self._do(("HGETALL", key), _pairs)

    def hlen(self, key: str) -> Any:
        return self._do(("HLEN", key))

    def hscan(self, key: str, cursor: Any = 0, *, count: int | None = None) -> Any:
        args: tuple[Any, ...] = ("HSCAN", key, cursor)
        args += ("COUNT", count) if count is not None else ()
        return self._do(args, lambda r: (int(r[0]), _pairs(r[1])))

    def hvals(self, key: str) -> Any:
        return self._do(("HVALS", key))

    def hmget(self, key: str, fields: Sequence[str]) -> Any:
        return self._do(("HMGET", key, *fields))

    def hset(self, key: str, *, mapping: dict[str, Any]) -> Any:
        return self._do(("HSET", key, *(x for kv in mapping.items() for x in kv)))

    def hdel(self, key: str, *fields: str) -> Any:
        return self._do(("HDEL", key, *fields))

    def smembers(self, key: str) -> Any:
        return self._do(("SMEMBERS", key), set)

    def zadd(self, key: str, mapping: dict[str, float]) -> Any:
        return self._do(("ZADD", key, *(x for m, s in mapping.items() for x in (s, m))))

    def zrange(self, key: str, start: int, end: int, *, withscores: bool = False) -> Any:
        if withscores:
            return self._do(("ZRANGE", key, start, end, "WITHSCORES"), _scored)
        return self._do(("ZRANGE", key, start, end))

    def zrangebyscore(self, key: str, low: Any, high: Any) -> Any:
        return self._do(("ZRANGEBYSCORE", key, low, high))

    def zrem(self, key: str, *members: str) -> Any:
        return self._do(("ZREM", key, *members))

    def zremrangebyscore(self, key: str, low: Any, high: Any) -> Any:
        return self._do(("ZREMRANGEBYSCORE", key, low, high))


class Pipeline(Commands):
    """Commands queued, then sent in one write by ``execute`` (no MULTI: like redis-py's
    ``pipeline(transaction=False)``). The first error reply is raised."""

    def __init__(self, client: RespClient) -> None:
        self.client = client
        self.queued: list[tuple[tuple[Any, ...], Convert]] = []

    async def __aenter__(self) -> Pipeline:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.queued.clear()

    def _do(self, args: tuple[Any, ...], convert: Convert = _same) -> Pipeline:
        self.queued.append((args, convert))
        return self

    async def execute(self) -> list[Any]:
        queued, self.queued = self.queued, []
        if not queued:
            return []
        replies = await self.client.roundtrip([args for args, _ in queued], READ_TIMEOUT)
        for reply in replies:
            _raise(reply)
        return [convert(reply) for (_, convert), reply in zip(queued, replies, strict=True)]


class Script:
    """A Lua script run by its SHA1, sent whole once when Redis does not know it."""

    def __init__(self, client: RespClient, text: str) -> None:
        self.client, self.text = client, text
        self.sha = hashlib.sha1(text.encode()).hexdigest()

    async def __call__(self, keys: Sequence[Any] = (), args: Sequence[Any] = ()) -> Any:
        try:
            return await self.client._do(("EVALSHA", self.sha, len(keys), *keys, *args))
        except RespError as exc:
            if not str(exc).startswith("NOSCRIPT"):
                raise
        return await self.client._do(("EVAL", self.text, len(keys), *keys, *args))


class RespClient(Commands):
    """A client on one server, with a few reusable connections (a command waiting in
    BLPOP holds one; a concurrent command opens another)."""

    def __init__(self, locate: Callable[[], Any], hello: Sequence[Sequence[Any]]) -> None:
        self.locate = locate  # async () -> (address, tls context)
        self.hello = hello  # AUTH, SELECT: sent on every new connection
        self.idle: list[Connection] = []

    async def _connection(self) -> Connection:
        if self.idle:
            return self.idle.pop()
        address, tls = await self.locate()
        conn = await Connection.open(address, tls)
        if self.hello:
            try:
                for reply in await conn.roundtrip(self.hello, READ_TIMEOUT):
                    _raise(reply)
            except BaseException:
                conn.close()
                raise
        return conn

    def _release(self, conn: Connection) -> None:
        if conn.broken or len(self.idle) >= MAX_IDLE:
            conn.close()
        else:
            self.idle.append(conn)

    async def roundtrip(self, commands: Sequence[Sequence[Any]], timeout: float) -> list[Any]:
        conn = await self._connection()
        try:
            return await conn.roundtrip(commands, timeout)
        finally:
            self._release(conn)

    async def _run(self, args: tuple[Any, ...], convert: Convert, timeout: float) -> Any:
        [reply] = await self.roundtrip([args], timeout)
        return convert(_raise(reply))

    def _do(self, args: tuple[Any, ...], convert: Convert = _same) -> Any:
        return self._run(args, convert, READ_TIMEOUT)

    async def blpop(self, keys: Sequence[str], timeout: float = 0) -> tuple[Any, Any] | None:
        reply = await self._run(("BLPOP", *keys, timeout), _same, timeout + READ_TIMEOUT)
        return None if reply is None else (reply[0], reply[1])

    async def hscan_iter(self, key: str, *, count: int = 10) -> AsyncIterator[tuple[Any, Any]]:
        cursor = 0
        while True:
            cursor, found = await self.hscan(key, cursor, count=count)
            for pair in found.items():
                yield pair
            if cursor == 0:
                return

    def pipeline(self, transaction: bool = False) -> Pipeline:
        if transaction:
            raise ValueError("this client sends no MULTI/EXEC")
        return Pipeline(self)

    def register_script(self, text: str) -> Script:
        return Script(self, text)

    async def aclose(self) -> None:
        idle, self.idle = self.idle, []
        for conn in idle:
            conn.close()


def open_fast_client(url: str, *, cluster: bool = False) -> RespClient | None:
    """A client for ``url``, or ``None`` when it needs redis-py (see the module's text)."""
    if cluster:
        return None
    if url.startswith(("redis+sentinel://", "rediss+sentinel://")):
        return _sentinel_client(url)
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    if set(query) - {"db", "ssl_ca_certs"} or parts.scheme not in ("redis", "rediss", "unix"):
        return None
    db = query.get("db", [parts.path.strip("/") if parts.scheme != "unix" else ""])[0] or "0"
    hello = _hello(unquote(parts.username or ""), unquote(parts.password or ""), db)
    if parts.scheme == "unix":
        address: Address = parts.path
    else:
        address = (parts.hostname or "localhost", parts.port or 6379)
    ca = query.get("ssl_ca_certs", [None])[0]
    tls = ssl.create_default_context(cafile=ca) if parts.scheme == "rediss" else None

    async def locate() -> tuple[Address, ssl.SSLContext | None]:
        return address, tls

    return RespClient(locate, hello)


def _hello(user: str, password: str, db: str) -> list[tuple[Any, ...]]:
    if not db.isdigit():
        return [("SELECT", db)]  # Redis refuses it: the same error redis-py would meet
    hello: list[tuple[Any, ...]] = []
    if password:
        hello.append(("AUTH", user, password) if user else ("AUTH", password))
    if db != "0":
        hello.append(("SELECT", db))
    return hello


def _sentinel_client(url: str) -> RespClient:
    hosts, service, db, password, tls = parse_sentinel(url)
    context = ssl.create_default_context() if tls else None

    async def locate() -> tuple[Address, ssl.SSLContext | None]:
        """The master, as the first sentinel that answers names it. As with the daemon's
        redis-py client, TLS (rediss+sentinel) is for the master; the sentinels are
        asked in plain TCP."""
        failures = []
        for host, port in hosts:
            try:
                sentinel = await Connection.open((host, port), None)
            except RespConnectionError as exc:
                failures.append(str(exc))
                continue
            try:
                [reply] = await sentinel.roundtrip(
                    [("SENTINEL", "get-master-addr-by-name", service)], SENTINEL_TIMEOUT
                )
            except (OSError, TimeoutError) as exc:
                failures.append(f"sentinel {host}:{port}: {exc or type(exc).__name__}")
                continue
            finally:
                sentinel.close()
            if isinstance(reply, list) and len(reply) == 2:
                return (reply[0].decode(), int(reply[1])), context
            failures.append(f"sentinel {host}:{port} knows no master {service!r}")
        raise RespConnectionError("; ".join(failures) or "no sentinel given")

    return RespClient(locate, _hello("", password or "", str(db)))
