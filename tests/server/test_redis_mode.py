"""Many daemons, one state: two real daemons on a private redis-server behave as one hub."""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from tests.conftest import DaemonProcess
from tests.redis_server import RedisServer
from tests.server.live_client import LiveClient, connect, http, until

pytestmark = pytest.mark.anyio

NODE_TTL = "2"  # seconds, so a dead node is noticed quickly


@pytest.fixture
def cluster(make_daemon: Any, redis_server: RedisServer) -> Callable[..., DaemonProcess]:
    def start(node: str, prefix: str = "it") -> DaemonProcess:
        d: DaemonProcess = make_daemon(
            RTCTL_REDIS_URL=redis_server.url, RTCTL_NODE_ID=node, RTCTL_PREFIX=prefix,
            RTCTL_NODE_TTL=NODE_TTL,
        )  # fmt: skip
        return d

    return start


@pytest.fixture
async def clients() -> AsyncIterator[list[LiveClient]]:
    opened: list[LiveClient] = []
    yield opened
    for c in opened:
        await c.close()


async def sids_via(d: DaemonProcess, **query: str) -> list[str]:
    path = "/api/v1/sessions" + (
        "?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else ""
    )
    status, body = await http(d, "GET", path)
    assert status == 200, body
    return sorted(s["sid"] for s in body)


async def test_two_daemons_answer_as_one_hub(cluster: Any, clients: list[LiveClient]) -> None:
    a, b = cluster("node-a"), cluster("node-b")
    on_a = await connect(a, "alice", channels=["general"])
    on_b = await connect(b, "alice", channels=["general"])
    bob = await connect(b, "bob", channels=["general"])
    clients += [on_a, on_b, bob]
    for c in clients:
        assert (await c.call("channel:join", {"channel_id": "general"}))["ok"] is True
    everyone = sorted(c.sid for c in clients)
    assert await sids_via(a) == everyone == await sids_via(b)
    assert await sids_via(b, user="alice") == sorted([on_a.sid, on_b.sid])
    assert await sids_via(a, room="channel:general") == everyone

    async def node_counts() -> bool:  # each node refreshes its record periodically
        _status, nodes = await http(a, "GET", "/api/v1/nodes")
        return {n["id"]: n["sessions"] for n in nodes} == {"node-a": 1, "node-b": 2}

    await until(node_counts, what="both nodes with their session counts")
    status, online = await http(b, "GET", "/api/v1/users/online")
    assert {u["user_id"]: u["sessions"] for u in online} == {"alice": 2, "bob": 1}

    # a channel message from node B reaches members on both nodes, once each
    await bob.call("events:channel", {"channel_id": "general", "data": {"type": "m", "data": 1}})
    for c in clients:
        await c.next_event("events:channel")
        assert len(c.received("events:channel")) == 1

    # emits by user, by room and by session, asked of either node
    status, body = await http(a, "POST", "/api/v1/emit", {"event": "events", "data": {"n": 1},
                                                          "user": "alice"})  # fmt: skip
    assert (status, body["sessions"]) == (200, 2)
    await on_a.next_event("events")
    await on_b.next_event("events")
    status, _ = await http(a, "POST", "/api/v1/emit", {"event": "only", "data": 2, "sid": bob.sid})
    assert status == 200
    assert await bob.next_event("only") == 2
    assert on_b.received("only") == [] and on_a.received("only") == []

    # a call from node A to a session on node B comes back with its ack
    async def pong(data: Any) -> Any:
        return {"pong": data}

    bob.replies["ping"] = pong
    call = {"event": "ping", "data": 7, "sid": bob.sid, "timeout": 3}
    status, body = await http(a, "POST", "/api/v1/call", call)
    assert (status, body["reply"]) == (200, {"pong": 7})

    # kick on the other node, then revoke everywhere
    status, body = await http(a, "POST", "/api/v1/sessions/kick", {"sids": [bob.sid]})
    assert body == {"kicked": [bob.sid], "not_found": []}
    await bob.wait_disconnected()
    status, body = await http(b, "POST", "/api/v1/tokens/revoke", {"user": "alice"})
    assert sorted(body["disconnected"]) == sorted([on_a.sid, on_b.sid])
    await on_a.wait_disconnected()
    await on_b.wait_disconnected()

    async def none_left() -> bool:
        return await sids_via(a) == []

    await until(none_left, what="no sessions left")


async def test_a_killed_node_leaves_the_listings_by_itself(
    cluster: Any, clients: list[LiveClient]
) -> None:
    a, b = cluster("node-a"), cluster("node-b")
    clients += [await connect(a, "alice"), await connect(b, "bob")]
    assert len(await sids_via(a)) == 2
    assert b.proc is not None
    b.proc.send_signal(signal.SIGKILL)
    b.proc.wait()

    async def only_node_a() -> bool:
        _status, nodes = await http(a, "GET", "/api/v1/nodes")
        return await sids_via(a) == [clients[0].sid] and [n["id"] for n in nodes] == ["node-a"]

    await until(only_node_a, timeout=float(NODE_TTL) * 2 + 5, what="node-b to be forgotten")


async def test_redis_restarted_empty_is_repopulated(
    cluster: Any, redis_server: RedisServer, clients: list[LiveClient]
) -> None:
    a = cluster("node-a")
    alice = await connect(a, "alice", channels=["general"])
    clients.append(alice)
    await alice.call("channel:join", {"channel_id": "general"})
    redis_server.restart()  # every key is gone
    assert alice.sio.connected  # clients stay connected through the outage

    async def listed_again() -> bool:
        status, body = await http(a, "GET", "/api/v1/sessions?room=channel:general")
        return status == 200 and [s["sid"] for s in body] == [alice.sid]

    await until(listed_again, timeout=15, what="the session to be re-registered")
    status, _body = await http(a, "POST", "/api/v1/emit", {"event": "back", "data": 1,
                                                          "user": "alice"})  # fmt: skip
    assert status == 200
    assert await alice.next_event("back", timeout=10) == 1


async def test_prefixes_sharing_one_redis_stay_apart(
    cluster: Any, clients: list[LiveClient]
) -> None:
    a, b = cluster("node-a", prefix="one"), cluster("node-b", prefix="two")
    clients += [await connect(a, "alice"), await connect(b, "bob")]
    assert await sids_via(a) == [clients[0].sid]
    assert await sids_via(b) == [clients[1].sid]
    status, _ = await http(a, "POST", "/api/v1/emit", {"event": "x", "data": 1, "user": "bob"})
    assert status == 404
    status, metrics = await http(a, "GET", "/metrics", auth=False)
    assert status == 200 and "\nrtctl_bus_dropped_total 0\n" in metrics


async def test_a_node_without_clients_still_emits_to_the_others(
    cluster: Any, clients: list[LiveClient]
) -> None:
    """python-socketio forgets a namespace when its last local client leaves; the
    emit must still be published for the nodes that host the room."""
    empty, hosting = cluster("node-empty"), cluster("node-hosting")
    passer = await connect(empty, "passer")  # the namespace exists, then is left
    await passer.close()
    bob = await connect(hosting, "bob")
    clients.append(bob)
    status, body = await http(empty, "POST", "/api/v1/emit", {"event": "hi", "data": 1,
                                                              "user": "bob"})  # fmt: skip
    assert (status, body["sessions"]) == (200, 1)
    assert await bob.next_event("hi") == 1
