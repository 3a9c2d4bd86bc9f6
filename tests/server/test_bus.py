"""RedisBus on a real redis-server: batched publishing (one EVALSHA per batch), the bounded
outbox, the hiredis listener (subscriptions, TLS, unix socket, a server that stops
answering) and a node dropping its own publications unparsed."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from rtctl.server import bus as bus_module
from rtctl.server.bus import RedisBus
from rtctl.server.cluster import ClusterManager
from rtctl.server.manager import FanoutManager
from rtctl.state import wire
from rtctl.state.keys import Keys
from rtctl.state.redis_url import open_client
from tests.redis_server import RedisServer
from tests.server.live_client import until

pytestmark = pytest.mark.anyio

Received = list[tuple[str, bytes]]
OpenBus = Callable[..., Awaitable[tuple[RedisBus, Received]]]


@pytest.fixture
async def open_bus() -> AsyncIterator[OpenBus]:
    """``await open_bus(url, node, **options)``: a started bus and the list its handler fills;
    every bus and client is closed at teardown."""
    opened: list[tuple[RedisBus, Any]] = []

    async def open_(
        url: str, node: str, *, client: Any = None, wait: bool = True, **options: Any
    ) -> tuple[RedisBus, Received]:
        got: Received = []

        async def handler(channel: str, data: bytes) -> None:
            got.append((channel, data))

        client = client or open_client(url)
        bus = RedisBus(client, f"t:node:{node}", handler, sharded=False, **options)
        opened.append((bus, client))
        await bus.start()
        if wait:
            await asyncio.wait_for(bus.connected.wait(), 10)
        return bus, got

    yield open_
    for bus, client in opened:
        await bus.close()
        await client.aclose()


async def drained(bus: RedisBus) -> None:
    await until(lambda: bus.idle, timeout=10, what="the outbox to drain")


def subscribers(server: RedisServer, channel: str) -> int:
    return int(server.command("PUBSUB", "NUMSUB", channel)[1])


# publishing --------------------------------------------------------------------------------


async def test_batches_reach_subscribers_whole_and_in_order(
    redis_server: RedisServer, open_bus: OpenBus
) -> None:
    sender, _ = await open_bus(redis_server.url, "a")
    receiver, got = await open_bus(redis_server.url, "b")
    await receiver.subscribe("t:room")
    await until(lambda: subscribers(redis_server, "t:room") == 1, what="the subscription")
    n = 3000
    for i in range(n):
        sender.publish("t:room", b"m%d" % i)
        if i % 2:
            await asyncio.sleep(0)  # a daemon turns its loop between emits
    await drained(sender)
    await until(lambda: len(got) == n, what=f"{n} messages")
    assert [data for _, data in got] == [b"m%d" % i for i in range(n)]
    assert {channel for channel, _ in got} == {"t:room"}
    assert (sender.published, sender.dropped) == (n, 0)
    # under load a batch waits for the flush window: far fewer commands than messages
    assert sender.batches <= n // 10, sender.batches
    assert sender._script is not None  # standalone: one EVALSHA per batch


async def test_quiet_traffic_leaves_at_once(
    redis_server: RedisServer, open_bus: OpenBus, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Below LINGER_RATE a message leaves in the loop turn after it was queued, even one
    queued right behind another that is still on its way: the flush window costs latency
    only under load."""
    monkeypatch.setattr(bus_module, "FLUSH_WINDOW", 5.0)  # a linger would show
    sender, _ = await open_bus(redis_server.url, "a")
    receiver, got = await open_bus(redis_server.url, "b")
    await receiver.subscribe("t:room")
    await until(lambda: subscribers(redis_server, "t:room") == 1, what="the subscription")
    loop = asyncio.get_running_loop()
    for i in range(0, 20, 2):  # pairs, 200 messages/s
        started = loop.time()
        sender.publish("t:room", b"m%d" % i)
        await asyncio.sleep(0)
        await asyncio.sleep(0)  # the first is on its way
        sender.publish("t:room", b"m%d" % (i + 1))
        await until(lambda n=i + 2: len(got) == n, interval=0.001, what=f"messages {i}, {i + 1}")
        assert loop.time() - started < 1.0
        await asyncio.sleep(0.01)
    assert [d for _, d in got] == [b"m%d" % i for i in range(20)]


async def test_a_burst_lingers(
    redis_server: RedisServer, open_bus: OpenBus, monkeypatch: pytest.MonkeyPatch
) -> None:
    """LINGER_RATE * RATE_PERIOD messages inside one period are load: from there on a batch
    waits for the window, so the rest of the burst leaves in a few batches."""
    monkeypatch.setattr(bus_module, "FLUSH_WINDOW", 0.05)
    sender, _ = await open_bus(redis_server.url, "a")
    n = 500
    for i in range(n):
        sender.publish("t:room", b"m%d" % i)
        await asyncio.sleep(0)
    await drained(sender)
    assert sender.published == n
    assert sender.batches <= 20, sender.batches


async def test_outbox_is_bounded_and_warns_once(
    redis_server: RedisServer, open_bus: OpenBus, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="rtctl.bus")
    sender, _ = await open_bus(redis_server.url, "a", max_outbox=100)
    receiver, got = await open_bus(redis_server.url, "b")
    await receiver.subscribe("t:room")
    await until(lambda: subscribers(redis_server, "t:room") == 1, what="the subscription")

    for i in range(250):  # one loop turn: nothing leaves meanwhile
        sender.publish("t:room", b"m%d" % i)
    assert sender.dropped == 150
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "outbox full" in warnings[0].getMessage(), warnings
    await drained(sender)
    await until(lambda: len(got) == 100, what="the 100 queued messages")
    assert [data for _, data in got] == [b"m%d" % i for i in range(100)]  # the oldest kept
    assert any("outbox drained" in r.getMessage() for r in caplog.records)

    # drained: accepted again, and a new overflow warns again (once)
    for i in range(150):
        sender.publish("t:room", b"n%d" % i)
    assert sender.dropped == 200
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    await drained(sender)
    await until(lambda: len(got) == 200, what="the second 100")


async def test_outbox_is_bounded_in_bytes(redis_server: RedisServer, open_bus: OpenBus) -> None:
    sender, _ = await open_bus(redis_server.url, "a", max_outbox_bytes=1000)
    for _ in range(15):
        sender.publish("t:room", b"x" * 100)
    assert sender.dropped == 5
    await drained(sender)
    assert sender.published == 10
    sender.publish("t:room", b"x" * 100)  # room again once the batch left
    assert sender.dropped == 5


async def test_publishing_while_redis_is_down_is_counted_and_bounded(
    redis_server: RedisServer, open_bus: OpenBus, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="rtctl.bus")
    sender, _ = await open_bus(redis_server.url, "a", max_outbox=500)
    redis_server.kill()
    for round_ in range(5):
        for i in range(400):
            sender.publish("t:room", b"m%d" % i)
            assert len(sender._outbox) <= 500
        await asyncio.sleep(0.05 * round_)
    await drained(sender)
    assert sender.published == 0 and sender.dropped == 2000
    failing = [r for r in caplog.records if "could not publish" in r.getMessage()]
    assert [r.levelno for r in failing][:1] == [logging.WARNING]
    assert all(r.levelno == logging.DEBUG for r in failing[1:])

    redis_server.start()
    await asyncio.wait_for(sender.connected.wait(), 10)
    receiver, got = await open_bus(redis_server.url, "b")
    await receiver.subscribe("t:room")
    await until(lambda: subscribers(redis_server, "t:room") == 1, what="the subscription")
    sender.publish("t:room", b"back")
    await until(lambda: got == [("t:room", b"back")], what="publishing again")
    assert any("publishing to Redis again" in r.getMessage() for r in caplog.records)


async def test_scripting_refused_falls_back_to_pipelined_publish(
    redis_server: RedisServer, open_bus: OpenBus, caplog: pytest.LogCaptureFixture
) -> None:
    redis_server.command(
        "ACL", "SETUSER", "noscript", "on", ">secret", "~*", "&*", "+@all", "-@scripting"
    )
    url = redis_server.url.replace("redis://", "redis://noscript:secret@")
    sender, _ = await open_bus(url, "a")
    receiver, got = await open_bus(redis_server.url, "b")
    await receiver.subscribe("t:room")
    await until(lambda: subscribers(redis_server, "t:room") == 1, what="the subscription")
    for i in range(50):
        sender.publish("t:room", b"m%d" % i)
    await drained(sender)
    await until(lambda: len(got) == 50, what="50 messages")
    assert [d for _, d in got] == [b"m%d" % i for i in range(50)]
    assert sender._script is None and sender.dropped == 0
    assert any("EVALSHA refused" in r.getMessage() for r in caplog.records)


# listening ---------------------------------------------------------------------------------


async def test_listener_follows_subscriptions(redis_server: RedisServer, open_bus: OpenBus) -> None:
    sender, _ = await open_bus(redis_server.url, "a")
    receiver, got = await open_bus(redis_server.url, "b")
    assert receiver._hiredis is not None  # standalone: the hiredis listener
    assert subscribers(redis_server, "t:node:b") == 1
    await receiver.subscribe("t:room")
    await receiver.subscribe("t:room")  # twice: once on Redis
    await until(lambda: subscribers(redis_server, "t:room") == 1, what="the subscription")
    assert await sender.publish_now("t:room", b"1") == 1
    await until(lambda: got == [("t:room", b"1")], what="the message")
    await receiver.unsubscribe("t:room")
    await until(lambda: subscribers(redis_server, "t:room") == 0, what="the unsubscription")
    await receiver.unsubscribe("t:node:b")  # never: its commands come there
    assert await sender.publish_now("t:node:b", b"2") == 1
    await until(lambda: len(got) == 2, what="a command")
    assert got[1] == ("t:node:b", b"2")


async def test_handler_failure_is_counted_and_listening_goes_on(
    redis_server: RedisServer, open_bus: OpenBus
) -> None:
    got: list[bytes] = []

    async def handler(channel: str, data: bytes) -> None:
        if data == b"bad":
            raise RuntimeError("boom")
        got.append(data)

    client = open_client(redis_server.url)
    receiver = RedisBus(client, "t:node:b", handler, sharded=False)
    await receiver.start()
    try:
        await asyncio.wait_for(receiver.connected.wait(), 10)
        for data in (b"ok1", b"bad", b"ok2"):
            await receiver.publish_now("t:node:b", data)
        await until(lambda: got == [b"ok1", b"ok2"], what="the good messages")
        assert receiver.dropped == 1
    finally:
        await receiver.close()
        await client.aclose()


async def test_listener_survives_its_connection_being_killed(
    redis_server: RedisServer, open_bus: OpenBus
) -> None:
    receiver, got = await open_bus(redis_server.url, "b")
    await receiver.subscribe("t:room")
    await until(lambda: subscribers(redis_server, "t:room") == 1, what="the subscription")
    redis_server.command("CLIENT", "KILL", "TYPE", "pubsub")
    await until(lambda: subscribers(redis_server, "t:room") == 1, timeout=10, what="resubscribed")
    assert await receiver.publish_now("t:room", b"again") == 1
    await until(lambda: got == [("t:room", b"again")], what="the message")


async def test_a_server_that_stops_answering_is_noticed(
    redis_server: RedisServer, open_bus: OpenBus, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No bytes for a while: the listener PINGs; no answer within PING_TIMEOUT: it drops
    the connection and listens again (a dead peer sends no FIN to notice)."""
    import redis.asyncio as aioredis

    monkeypatch.setattr(bus_module, "PING_TIMEOUT", 0.5)
    client = aioredis.Redis.from_url(redis_server.url, health_check_interval=0.3)
    receiver, got = await open_bus(redis_server.url, "b", client=client)
    await asyncio.sleep(1.5)  # quiet but answering PINGs: stays connected
    assert receiver.connected.is_set()
    redis_server.command("CLIENT", "PAUSE", "2500", "ALL")
    await until(lambda: not receiver.connected.is_set(), timeout=5, what="the silence noticed")
    await asyncio.wait_for(receiver.connected.wait(), 15)
    assert await receiver.publish_now("t:node:b", b"after") == 1
    await until(lambda: got == [("t:node:b", b"after")], what="the message")


async def test_listener_over_unix_socket(redis_unix_server: RedisServer, open_bus: OpenBus) -> None:
    receiver, got = await open_bus(redis_unix_server.unix_url, "b")
    await receiver.subscribe("t:room")
    await until(lambda: subscribers(redis_unix_server, "t:room") == 1, what="the subscription")
    receiver.publish("t:room", b"over unix")
    await until(lambda: got == [("t:room", b"over unix")], what="the message")


async def test_listener_over_tls(redis_tls_server: RedisServer, open_bus: OpenBus) -> None:
    assert redis_tls_server.tls is not None
    url = f"{redis_tls_server.url}?ssl_ca_certs={redis_tls_server.tls.ca}"
    receiver, got = await open_bus(url, "b")
    await receiver.subscribe("t:room")
    await until(lambda: subscribers(redis_tls_server, "t:room") == 1, what="the subscription")
    big = b"y" * 300_000  # more than one TLS record and one read
    for data in (b"over tls", big):
        receiver.publish("t:room", data)
    await until(lambda: len(got) == 2, what="the messages")
    assert got == [("t:room", b"over tls"), ("t:room", big)]


# own publications --------------------------------------------------------------------------


def test_origin_marker_matches_only_its_node() -> None:
    from engineio.packet import MESSAGE, Packet

    packets = [Packet(MESSAGE, '2["e",1]')]
    message = wire.encode_room("node-a", "user:bob", packets, ["s1"])
    assert wire.is_from(message, wire.origin_marker("node-a"))
    for other in ("node-ab", "node-", "node-b", 'node-a",'):
        assert not wire.is_from(message, wire.origin_marker(other))
    assert not wire.is_from(wire.encode_command("kick"), wire.origin_marker("node-a"))
    decoded = wire.decode_room(message)
    assert (decoded.origin, decoded.room, decoded.skip) == ("node-a", "user:bob", ["s1"])
    assert [p.data for p in decoded.packets] == ['2["e",1]']


async def test_own_publications_are_dropped_before_parsing(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from engineio.packet import MESSAGE, Packet

    delivered: list[tuple[str | None, list[str]]] = []

    async def emit_encoded(
        self: Any, packets: list[Any], namespace: str, room: str | None, skip: Any = None
    ) -> int:
        delivered.append((room, [p.data for p in packets]))
        return 0

    monkeypatch.setattr(FanoutManager, "emit_encoded", emit_encoded)
    parsed = 0
    real_decode = wire.decode_room

    def counting_decode(message: bytes) -> wire.RoomMessage:
        nonlocal parsed
        parsed += 1
        return real_decode(message)

    monkeypatch.setattr(wire, "decode_room", counting_decode)
    keys = Keys("t")
    manager = ClusterManager(keys, "node-a")
    client = open_client(redis_server.url)
    bus = RedisBus(client, keys.node_channel("node-a"), manager.deliver, sharded=False)
    manager.attach(bus, on_command=lambda command: asyncio.sleep(0))
    await bus.start()
    try:
        await asyncio.wait_for(bus.connected.wait(), 10)
        channel = keys.room_channel("user:bob")
        await bus.subscribe(channel)
        await until(lambda: subscribers(redis_server, channel) == 1, what="the subscription")
        packets = [Packet(MESSAGE, '2["e",1]')]
        bus.publish(channel, wire.encode_room("node-a", "user:bob", packets))  # own
        bus.publish(channel, wire.encode_room("node-b", "user:bob", packets))  # another node's
        # own, but from an encoder that orders the header differently: parsed, then dropped
        header = b'{"r":"user:bob","o":"node-a","s":[],"p":[["t",8]]}'
        foreign = b"\x01R" + len(header).to_bytes(2, "big") + header + b'2["e",1]'
        bus.publish(channel, foreign)
        await until(lambda: manager.own_skipped == 1 and parsed == 2, what="all three")
        await asyncio.sleep(0.05)
        assert delivered == [("user:bob", ['2["e",1]'])]
        assert manager.foreign_dropped == 0
    finally:
        await bus.close()
        await client.aclose()
