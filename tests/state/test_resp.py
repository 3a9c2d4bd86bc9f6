"""The CLI's own Redis client (``rtctl.state.resp``) where it differs from a plain
command: error replies, pipelines, scripts, lost and stalled servers, URLs. The
contract tests (``resp``, ``resp-sentinel``) run the whole state backend over it."""

from __future__ import annotations

import asyncio
import signal
import time

import pytest

from rtctl.state.resp import RespClient, RespConnectionError, RespError, open_fast_client
from tests.redis_server import RedisServer

pytestmark = pytest.mark.anyio


def client(url: str) -> RespClient:
    made = open_fast_client(url)
    assert made is not None
    return made


async def test_replies_as_redis_py_shapes_them(redis_server: RedisServer) -> None:
    c = client(redis_server.url)
    try:
        assert await c.ping() is True
        assert await c.set("k", "v", px=60_000) is True
        assert await c.set("k", "w", nx=True) is None  # not set: it exists
        assert await c.get("k") == b"v" and await c.get("nothing") is None
        await c.hset("h", mapping={"a": "1", "b": "2"})
        assert await c.hgetall("h") == {b"a": b"1", b"b": b"2"}
        assert await c.hmget("h", ["b", "zz"]) == [b"2", None]
        assert sorted([pair async for pair in c.hscan_iter("h", count=1)]) == [
            (b"a", b"1"), (b"b", b"2"),
        ]  # fmt: skip
        await c.zadd("z", {"x": 1.5, "y": 3})
        assert await c.zrange("z", 0, -1, withscores=True) == [(b"x", 1.5), (b"y", 3.0)]
        assert await c.zrangebyscore("z", 2, "+inf") == [b"y"]
        assert await c.blpop(["empty"], timeout=0.1) is None
        await c.rpush("l", "one")
        assert await c.blpop(["l"], timeout=1) == (b"l", b"one")
        assert await c.unlink("h", "z", "k") == 3
    finally:
        await c.aclose()


async def test_an_error_reply_raises_and_leaves_the_connection_usable(
    redis_server: RedisServer,
) -> None:
    c = client(redis_server.url)
    try:
        await c.set("s", "text")
        with pytest.raises(RespError, match="WRONGTYPE"):
            await c.hgetall("s")
        async with c.pipeline() as pipe:
            pipe.get("s").incr("s").get("s")
            with pytest.raises(RespError, match="not an integer"):
                await pipe.execute()
        assert await c.get("s") == b"text"  # the replies after the error were all read
        assert len(c.idle) == 1
    finally:
        await c.aclose()


async def test_a_script_redis_forgot_is_sent_again(redis_server: RedisServer) -> None:
    c = client(redis_server.url)
    try:
        double = c.register_script("return tonumber(ARGV[1]) * 2")
        assert await double(args=[21]) == 42
        await c.execute_command("SCRIPT", "FLUSH")  # as after a restart
        assert await double(args=[4]) == 8
        with pytest.raises(RespError):
            await c.register_script("return redis.call('nope')")()
    finally:
        await c.aclose()


async def test_concurrent_commands_do_not_wait_behind_a_blocking_one(
    redis_server: RedisServer,
) -> None:
    c = client(redis_server.url)
    try:
        waiting = asyncio.create_task(c.blpop(["reply"], timeout=5))
        await asyncio.sleep(0.05)
        assert await c.rpush("reply", "ok") == 1  # on a second connection
        assert await waiting == (b"reply", b"ok")
    finally:
        await c.aclose()


async def test_lost_and_stalled_servers_fail_within_bounds(redis_server: RedisServer) -> None:
    c = client(redis_server.url)
    try:
        assert await c.ping()
        assert redis_server.proc is not None
        redis_server.proc.send_signal(signal.SIGSTOP)
        try:
            started = time.monotonic()
            with pytest.raises(TimeoutError):
                await c.get("k")
            assert time.monotonic() - started < 7  # READ_TIMEOUT, not forever
        finally:
            redis_server.proc.send_signal(signal.SIGCONT)
        assert await c.ping()  # the timed-out connection was not reused
        redis_server.kill()
        with pytest.raises(RespConnectionError):
            await c.ping()
    finally:
        await c.aclose()


async def test_tls_from_the_url(redis_tls_server: RedisServer) -> None:
    assert redis_tls_server.tls is not None
    url = f"{redis_tls_server.url}?ssl_ca_certs={redis_tls_server.tls.ca}"
    c = client(url)
    try:
        assert await c.ping()
    finally:
        await c.aclose()
    untrusted = client(redis_tls_server.url)  # the self-signed certificate is not trusted
    with pytest.raises(RespConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
        await untrusted.ping()


async def test_password_and_database(redis_server: RedisServer) -> None:
    redis_server.command("CONFIG", "SET", "requirepass", "s3cret")
    port = redis_server.port
    good = client(f"redis://:s3cret@127.0.0.1:{port}/3")
    wrong = client(f"redis://:nope@127.0.0.1:{port}/0")
    try:
        await good.set("where", "db3")
        assert b"db=3" in await good.execute_command("CLIENT", "INFO")
        with pytest.raises(RespError, match=r"WRONGPASS|invalid"):
            await wrong.ping()
    finally:
        await good.aclose()
        await wrong.aclose()


def test_urls_it_leaves_to_redis_py() -> None:
    assert open_fast_client("redis://h:1/0", cluster=True) is None
    assert open_fast_client("redis://h:1/0?max_connections=5") is None
    assert open_fast_client("rediss://h:1/0?ssl_certfile=/c.pem") is None
    assert open_fast_client("redis://h:1/0") is not None
    assert open_fast_client("unix:///run/redis.sock?db=2") is not None
    assert open_fast_client("redis+sentinel://h1:26379,h2:26379/mymaster") is not None


async def test_a_server_that_does_not_speak_resp_is_a_connection_fault() -> None:
    """Pointed at something that is not Redis (here an HTTP-ish server), a command fails
    as a lost connection (exit 69 in the CLI), never with a parser's traceback."""

    async def not_redis(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(100)
        writer.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        await writer.drain()

    server = await asyncio.start_server(not_redis, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    c = client(f"redis://127.0.0.1:{port}/0")
    try:
        with pytest.raises(RespConnectionError, match="not RESP"):
            await c.ping()
    finally:
        await c.aclose()
        server.close()
