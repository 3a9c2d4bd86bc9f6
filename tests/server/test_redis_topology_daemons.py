"""Two real daemons through Redis faults: Sentinel failover, Cluster, Redis down and back.

Each test measures how long the deployment takes to answer as one hub again and
prints it (``pytest -s`` shows the numbers); the assertions bound those times.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from tests.conftest import DaemonProcess
from tests.redis_server import RedisClusterSetup, RedisSentinelSetup, RedisServer
from tests.server.live_client import LiveClient, connect, http, until

pytestmark = pytest.mark.anyio

NODE_TTL = "2"  # seconds, so a node that missed its refreshes is noticed quickly
CHANNEL = "general"
OUTAGE = 4.0  # seconds Redis stays down in the down-and-back test
_marks = itertools.count()


@pytest.fixture
async def clients() -> AsyncIterator[list[LiveClient]]:
    opened: list[LiveClient] = []
    yield opened
    for c in opened:
        await c.close()


def daemons_on(make_daemon: Any, url: str, **extra: str) -> Callable[[str], DaemonProcess]:
    prefix = f"topo-{uuid.uuid4().hex[:8]}"  # the cluster fixture is shared by the session

    def start(node: str) -> DaemonProcess:
        d: DaemonProcess = make_daemon(
            RTCTL_REDIS_URL=url, RTCTL_NODE_ID=node, RTCTL_PREFIX=prefix,
            RTCTL_NODE_TTL=NODE_TTL, **extra,
        )  # fmt: skip
        return d

    return start


async def members(c: LiveClient, *channels: str) -> LiveClient:
    for channel in channels:
        assert (await c.call("channel:join", {"channel_id": channel}))["ok"] is True
    return c


async def sids_via(d: DaemonProcess) -> list[str] | None:
    """The deployment's sessions as node ``d`` lists them; None while it cannot."""
    status, body = await http(d, "GET", "/api/v1/sessions")
    return sorted(s["sid"] for s in body) if status == 200 else None


async def ready(d: DaemonProcess) -> int:
    status, _body = await http(d, "GET", "/readyz", auth=False)
    return int(status)


async def crosses(sender: LiveClient, receiver: LiveClient, timeout: float) -> float:
    """Send channel messages from ``sender`` until one reaches ``receiver``; the seconds taken.

    Each attempt carries a fresh mark, so a late delivery of an earlier attempt still
    counts as the path working again (it is working by the time it arrives).
    """
    started = time.monotonic()
    deadline = started + timeout
    sent: set[int] = set()
    while time.monotonic() < deadline:
        mark = next(_marks)
        sent.add(mark)
        payload = {"channel_id": CHANNEL, "data": {"type": "mark", "data": mark}}
        with contextlib.suppress(Exception):  # a call lost in the outage: try again
            await sender.call("events:channel", payload, timeout=2)
        window = time.monotonic() + 0.3
        while time.monotonic() < window:
            got = {m["data"]["data"] for m in receiver.received("events:channel")}
            if got & sent:
                return time.monotonic() - started
            await asyncio.sleep(0.02)
    raise AssertionError(f"no channel message crossed nodes within {timeout}s")


async def one_hub_again(a: DaemonProcess, b: DaemonProcess, everyone: list[str]) -> None:
    async def both_listed() -> bool:
        return await sids_via(a) == everyone and await sids_via(b) == everyone

    await until(both_listed, timeout=15, interval=0.2, what="both nodes to list every session")

    async def both_ready() -> bool:  # ready also needs the bus subscribed again (<= 2 s backoff)
        return await ready(a) == 200 and await ready(b) == 200

    await until(both_ready, timeout=10, interval=0.1, what="both nodes ready")


# Sentinel ----------------------------------------------------------------------------------


async def sentinel_pair(
    make_daemon: Any, setup: RedisSentinelSetup, clients: list[LiveClient]
) -> tuple[DaemonProcess, DaemonProcess, LiveClient, LiveClient]:
    start = daemons_on(make_daemon, setup.url)
    a, b = start("node-a"), start("node-b")
    on_a = await members(await connect(a, "alice", channels=[CHANNEL]), CHANNEL)
    on_b = await members(await connect(b, "bob", channels=[CHANNEL]), CHANNEL)
    clients += [on_a, on_b]
    await crosses(on_a, on_b, timeout=5)  # the path works before the fault
    return a, b, on_a, on_b


async def test_sentinel_failover_is_followed(
    make_daemon: Any, redis_sentinel: RedisSentinelSetup, clients: list[LiveClient]
) -> None:
    a, b, on_a, on_b = await sentinel_pair(make_daemon, redis_sentinel, clients)
    took = await asyncio.to_thread(redis_sentinel.failover)
    switched = time.monotonic()
    a_to_b = await crosses(on_a, on_b, timeout=5)
    b_to_a = await crosses(on_b, on_a, timeout=5)
    # the listeners move to the new master (a demoted master keeps pub/sub clients, and
    # relays only what it replicates, so without the move delivery would hang on it)
    moved = await listeners_moved(redis_sentinel, a, timeout=5)
    await one_hub_again(a, b, sorted([on_a.sid, on_b.sid]))
    print(
        f"\nsentinel failover: switch {took:.2f}s; after it: channel A->B {a_to_b:.2f}s, "
        f"B->A {b_to_a:.2f}s, listeners on the new master {moved:.2f}s, "
        f"one hub again {time.monotonic() - switched:.2f}s"
    )
    assert on_a.sio.connected and on_b.sio.connected


async def test_sentinel_master_killed_is_followed(
    make_daemon: Any, redis_sentinel: RedisSentinelSetup, clients: list[LiveClient]
) -> None:
    redis_sentinel.wait_settled()  # the sentinels must know each other to elect a leader
    a, b, on_a, on_b = await sentinel_pair(make_daemon, redis_sentinel, clients)
    await asyncio.to_thread(redis_sentinel.wait_replicated)
    killed = time.monotonic()
    redis_sentinel.kill_master()
    took = await asyncio.to_thread(redis_sentinel.wait_new_master)
    a_to_b = await crosses(on_a, on_b, timeout=10)
    moved = await listeners_moved(redis_sentinel, a, timeout=10)
    await one_hub_again(a, b, sorted([on_a.sid, on_b.sid]))
    print(
        f"\nsentinel master killed: new master after {took:.2f}s; after that: channel A->B "
        f"{a_to_b:.2f}s, listeners on it {moved:.2f}s; "
        f"one hub again {time.monotonic() - killed:.2f}s after the kill"
    )
    assert on_a.sio.connected and on_b.sio.connected


def _prefix(d: DaemonProcess) -> str:
    return d.env["RTCTL_PREFIX"]


def _subscribers(server: RedisServer, channels: list[str]) -> list[int]:
    reply = server.command("PUBSUB", "NUMSUB", *channels)
    return [int(n) for n in reply[1::2]]


async def listeners_moved(setup: RedisSentinelSetup, d: DaemonProcess, timeout: float) -> float:
    """Seconds until both nodes listen on the new master and none on the old one."""
    started = time.monotonic()
    node_channels = [f"{_prefix(d)}:ch:node:{n}" for n in ("node-a", "node-b")]

    def on_new_master() -> bool:
        old = [0, 0] if not setup.replica.alive() else _subscribers(setup.replica, node_channels)
        return _subscribers(setup.master, node_channels) == [1, 1] and old == [0, 0]

    await until(on_new_master, timeout=timeout, interval=0.05, what="listeners on the new master")
    return time.monotonic() - started


# Cluster -----------------------------------------------------------------------------------


async def test_cluster_daemons_answer_as_one_hub(
    make_daemon: Any, redis_cluster: RedisClusterSetup, clients: list[LiveClient]
) -> None:
    start = daemons_on(make_daemon, redis_cluster.url, RTCTL_REDIS_CLUSTER="1")
    a, b = start("node-a"), start("node-b")
    on_a = await members(await connect(a, "alice", channels=[CHANNEL]), CHANNEL)
    on_b = await members(await connect(b, "alice", channels=[CHANNEL]), CHANNEL)
    bob = await members(await connect(b, "bob", channels=[CHANNEL]), CHANNEL)
    clients += [on_a, on_b, bob]
    everyone = sorted(c.sid for c in clients)
    assert await sids_via(a) == everyone == await sids_via(b)
    status, online = await http(a, "GET", "/api/v1/users/online")
    assert {u["user_id"]: u["sessions"] for u in online} == {"alice": 2, "bob": 1}

    # a channel message from node A reaches the members on node B, once each, once both
    # nodes' SSUBSCRIBE took effect on the shard (a subscription is not confirmed to the
    # joining session)
    channel = f"{a.env['RTCTL_PREFIX']}:ch:room:channel:{CHANNEL}"
    shard = redis_cluster.node_for_key(channel)
    await until(lambda: int(shard.command("PUBSUB", "SHARDNUMSUB", channel)[1]) >= 2,
                what="both nodes subscribed to the channel's room")  # fmt: skip
    await on_a.call("events:channel", {"channel_id": CHANNEL, "data": {"type": "m", "data": 1}})
    for c in clients:
        await c.next_event("events:channel")
    assert len(bob.received("events:channel")) == 1 and len(on_b.received("events:channel")) == 1

    # a user emit asked of node B reaches alice on both nodes
    emit = {"event": "events", "data": {"n": 1}, "user": "alice"}
    status, body = await http(b, "POST", "/api/v1/emit", emit)
    assert (status, body["sessions"]) == (200, 2)
    assert await on_a.next_event("events") == {"n": 1}
    assert await on_b.next_event("events") == {"n": 1}
    assert bob.received("events") == []

    # a call from node A to a session on node B comes back with its ack
    async def pong(data: Any) -> Any:
        return {"pong": data}

    bob.replies["ping"] = pong
    call = {"event": "ping", "data": 7, "sid": bob.sid, "timeout": 3}
    status, body = await http(a, "POST", "/api/v1/call", call)
    assert (status, body["reply"]) == (200, {"pong": 7})

    # a kick asked of node B for a session on node A
    status, body = await http(b, "POST", "/api/v1/sessions/kick", {"sids": [on_a.sid]})
    assert (status, body) == (200, {"kicked": [on_a.sid], "not_found": []})
    await on_a.wait_disconnected()
    rest = sorted([on_b.sid, bob.sid])

    async def kicked_everywhere() -> bool:
        return await sids_via(a) == rest and await sids_via(b) == rest

    await until(kicked_everywhere, what="the kicked session to leave both listings")


# Standalone Redis down and back ------------------------------------------------------------


async def test_redis_down_and_back_empty(
    make_daemon: Any, redis_server: RedisServer, clients: list[LiveClient]
) -> None:
    start = daemons_on(make_daemon, redis_server.url)
    a, b = start("node-a"), start("node-b")
    on_a = await members(await connect(a, "alice", channels=[CHANNEL]), CHANNEL)
    on_b = await members(await connect(b, "bob", channels=[CHANNEL]), CHANNEL)
    clients += [on_a, on_b]
    everyone = sorted([on_a.sid, on_b.sid])
    await crosses(on_a, on_b, timeout=5)

    redis_server.kill()
    down = time.monotonic()

    async def both_unready() -> bool:
        return await ready(a) == 503 and await ready(b) == 503

    await until(both_unready, timeout=8, interval=0.1, what="/readyz 503 on both nodes")
    unready_after = time.monotonic() - down
    asked = time.monotonic()
    status, body = await http(a, "GET", "/api/v1/sessions")
    answered_in = time.monotonic() - asked
    assert status == 503, body
    assert "Redis" in body["error"]["message"], body
    assert answered_in < 8, f"GET /api/v1/sessions took {answered_in:.1f}s with Redis down"
    # the outage lasts a few seconds (the listener retries meanwhile); it stays 503 and
    # the clients stay connected throughout
    while time.monotonic() < down + OUTAGE:
        assert await ready(a) == 503 and await ready(b) == 503
        assert on_a.sio.connected and on_b.sio.connected
        await asyncio.sleep(0.2)

    await asyncio.to_thread(redis_server.start)  # same port, every key gone
    up = time.monotonic()
    await one_hub_again(a, b, everyone)
    listed_after = time.monotonic() - up
    a_to_b = await crosses(on_a, on_b, timeout=10)
    print(
        f"\nredis down: /readyz 503 after {unready_after:.2f}s, sessions 503 in "
        f"{answered_in:.2f}s; back: both listed after {listed_after:.2f}s, channel A->B "
        f"{a_to_b:.2f}s later"
    )
    assert on_a.sio.connected and on_b.sio.connected
    for d in (a, b):  # one warning per outage, not one per retry
        lost = d.log().count("bus listener lost Redis")
        assert lost <= 1, f"{lost} listener warnings:\n{d.log()}"


async def test_bus_listener_outlives_outages(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """In-process: the listener survives two outages, resubscribes after each, and warns
    once per outage however many times it retries."""
    from rtctl.server.bus import RedisBus
    from rtctl.state.redis_url import open_client

    caplog.set_level(logging.DEBUG, logger="rtctl.bus")
    got: list[bytes] = []

    async def handler(channel: str, data: bytes) -> None:
        got.append(data)

    client = open_client(redis_server.url)
    bus = RedisBus(client, "t:node", handler, sharded=False)
    await bus.start()
    await bus.subscribe("t:room")
    try:

        async def subscribed() -> bool:
            with contextlib.suppress(Exception):
                return await bus.publish_now("t:room", b"x") == 1
            return False

        def quiet_retries() -> list[logging.LogRecord]:
            return [r for r in caplog.records if "still without Redis" in r.getMessage()]

        await until(subscribed, timeout=5, what="the bus to subscribe")
        for outage in range(2):
            redis_server.kill()
            await until(lambda: not bus.connected.is_set(), timeout=15, what="the loss noticed")
            wanted = len(quiet_retries()) + 2
            await until(lambda n=wanted: len(quiet_retries()) >= n, what="retries while down")
            redis_server.start()
            back = time.monotonic()
            await until(subscribed, timeout=10, what=f"resubscribed after outage {outage + 1}")
            print(f"\nbus listener resubscribed {time.monotonic() - back:.2f}s after Redis")
            assert bus._listener is not None and not bus._listener.done()
        await until(lambda: b"x" in got, what="a message through the bus")
        lost = [r for r in caplog.records if "lost Redis" in r.getMessage()]
        assert [r.levelno for r in lost] == [logging.WARNING] * 2, [r.getMessage() for r in lost]
        assert {r.levelno for r in quiet_retries()} == {logging.DEBUG}
    finally:
        await bus.close()
        await client.aclose()


async def test_cluster_deliveries_do_not_wait_on_idle_shards(
    make_daemon: Any, redis_cluster: RedisClusterSetup, clients: list[LiveClient]
) -> None:
    """A node listening on several shards hands on each message as it arrives: waiting on
    one shard at a time (redis-py's round robin) delayed some by up to a second each."""
    start = daemons_on(make_daemon, redis_cluster.url, RTCTL_REDIS_CLUSTER="1")
    a, b = start("node-a"), start("node-b")
    sender = await members(await connect(a, "sender", channels=["*"]), "c1")
    readers = [await members(await connect(b, f"reader-{i}", channels=["*"]), "c1", f"c{i + 2}")
               for i in range(4)]  # subscriptions of node B on several shards  # fmt: skip
    clients += [sender, *readers]
    channel = f"{a.env['RTCTL_PREFIX']}:ch:room:channel:c1"
    shard = redis_cluster.node_for_key(channel)
    await until(lambda: int(shard.command("PUBSUB", "SHARDNUMSUB", channel)[1]) >= 2,
                what="both nodes subscribed to the channel's room")  # fmt: skip
    worst = 0.0
    for n in range(8):
        sent = time.monotonic()
        await sender.call("events:channel", {"channel_id": "c1", "data": {"type": "m", "data": n}})
        await readers[0].next_event("events:channel", lambda e, n=n: e["data"]["data"] == n)
        worst = max(worst, time.monotonic() - sent)
        await asyncio.sleep(0.15)  # idle shards between messages
    assert worst < 0.5, f"a delivery took {worst:.2f}s"
