"""The Redis backend on every topology rtctl supports, with real servers.

The state contract runs on Sentinel and Cluster too (``tests/state/conftest.py``).
Here is what only a topology can show: a Sentinel failover under a live client, a
Cluster holding two nodes' partitions on different masters, a unix socket, TLS, and
two prefixes sharing one Redis.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from rtctl.errors import BackendUnavailable
from rtctl.state.base import SessionRecord
from rtctl.state.keys import Keys
from rtctl.state.redis import RedisState
from rtctl.state.redis_url import open_client
from tests.redis_server import RedisClusterSetup, RedisSentinelSetup, RedisServer, wait_for
from tests.state.conftest import LiveRedisState, unique_prefix

pytestmark = pytest.mark.anyio


# helpers ------------------------------------------------------------------------------------


def record(
    sid: str, node: str, user: str = "alice", rooms: list[str] | None = None
) -> SessionRecord:
    now = time.time()
    return SessionRecord(
        sid, user, user.title(), node, now, now, [f"user:{user}"] if rooms is None else rooms
    )


async def retry(what: str, step: Callable[[], Awaitable[Any]], within: float) -> Any:
    """Run ``step`` until it stops raising ``BackendUnavailable``, for at most ``within``."""
    deadline = time.monotonic() + within
    while True:
        try:
            return await step()
        except BackendUnavailable as exc:
            if time.monotonic() >= deadline:
                raise AssertionError(f"{what}: still failing after {within}s: {exc}") from exc
        await anyio.sleep(0.05)


# Sentinel -----------------------------------------------------------------------------------


async def test_sentinel_failover_keeps_the_client_working(
    redis_sentinel: RedisSentinelSetup, record_property: Any
) -> None:
    """A forced failover under a live client: it follows the new master by itself.

    Measured here (7.0, localhost): the failover takes ~1.1 s until every sentinel
    names the new master; the very next write of the same client lands on it (the
    pool re-asks the sentinels at most once a second). Without that pool redis-py
    kept writing to the demoted master for ~10 s, and those writes were lost.
    """
    prefix = unique_prefix()
    state = LiveRedisState(open_client(redis_sentinel.url), prefix, "node-a")
    await state.start()
    try:
        await state.add_session(record("before", "node-a", rooms=["user:alice", "channel:x"]))
        await state.revoke_user("mallory", time.time())
        old = redis_sentinel.master

        took = await anyio.to_thread.run_sync(redis_sentinel.failover)
        new = redis_sentinel.master
        assert new is not old and new.info("replication")["role"] == "master"

        started = time.monotonic()
        await retry("first write after the failover", lambda: state.add_session(
            record("after", "node-a", user="bob")), within=15.0)  # fmt: skip
        recovered = time.monotonic() - started
        record_property("failover_seconds", round(took, 2))
        record_property("client_recovery_seconds", round(recovered, 3))
        print(f"failover {took:.2f}s, client recovered in {recovered:.3f}s")

        sessions_key = state.keys.sessions("node-a")
        assert new.command("HEXISTS", sessions_key, "after")  # on the new master
        assert [s.sid for s in await state.list_sessions()] == ["before", "after"]
        assert await state.join_room("after", "channel:x") is True
        assert {r.room: r.members for r in await state.list_rooms()}["channel:x"] == 2
        assert await state.is_revoked(None, "mallory", time.time() - 60) is True
        assert recovered < 5.0

        # the old master is demoted by the sentinels (~10 s later) and resyncs from the
        # new one: nothing the client wrote after the failover may be lost by that
        await anyio.to_thread.run_sync(lambda: _wait_role(old, "slave", 30.0))
        await anyio.to_thread.run_sync(lambda: redis_sentinel.wait_replicated(10.0))
        assert old.command("HEXISTS", sessions_key, "after")
        assert [s.sid for s in await state.list_sessions()] == ["before", "after"]
    finally:
        await state.close()


def _wait_role(server: RedisServer, role: str, timeout: float) -> None:
    wait_for(f"{server.address} is a {role}", lambda: server.info("replication")["role"] == role,
             timeout, interval=0.1)  # fmt: skip


async def test_sentinel_master_killed_client_moves_on(tmp_path: Path) -> None:
    """The master dies (SIGKILL): the sentinels elect the replica, the client follows."""
    setup = await anyio.to_thread.run_sync(
        lambda: RedisSentinelSetup(tmp_path / "sentinel").start(peers=True)
    )
    try:
        state = LiveRedisState(open_client(setup.url), unique_prefix(), "node-a")
        await state.start()
        try:
            await state.add_session(record("s1", "node-a"))
            await anyio.to_thread.run_sync(setup.wait_replicated)
            setup.kill_master()
            started = time.monotonic()
            with pytest.raises(BackendUnavailable):
                await state.add_session(record("s2", "node-a"))  # nobody to write to yet
            await retry("write after the master died", lambda: state.add_session(
                record("s2", "node-a")), within=20.0)  # fmt: skip
            print(f"client back after {time.monotonic() - started:.2f}s")
            assert [s.sid for s in await state.list_sessions()] == ["s1", "s2"]
            assert setup.replica.command("HEXISTS", state.keys.sessions("node-a"), "s2")
        finally:
            await state.close()
    finally:
        setup.stop()


# Cluster ------------------------------------------------------------------------------------


def nodes_on_different_masters(setup: RedisClusterSetup, prefix: str) -> tuple[str, str]:
    """Two node ids whose partitions are served by different cluster masters."""
    keys = Keys(prefix)
    first = "node-0"
    owner = setup.node_for_key(keys.partition(first))
    for i in range(1, 100):
        other = f"node-{i}"
        if setup.node_for_key(keys.partition(other)) is not owner:
            return first, other
    raise AssertionError("every partition hashed to one master")


async def test_cluster_two_nodes_answer_for_both(redis_cluster: RedisClusterSetup) -> None:
    prefix = unique_prefix()
    a_id, b_id = nodes_on_different_masters(redis_cluster, prefix)
    # each daemon seeds from a different cluster node
    a = LiveRedisState(open_client(redis_cluster.nodes[0].url, cluster=True), prefix, a_id)
    b = LiveRedisState(open_client(redis_cluster.nodes[1].url, cluster=True), prefix, b_id)
    await a.start()
    await b.start()
    try:
        await a.add_session(record("a1", a_id, "alice", ["user:alice", "channel:x"]))
        await b.add_session(record("b1", b_id, "bob", ["user:bob", "channel:x"]))
        await b.add_session(record("b2", b_id, "alice", ["user:alice"]))
        # really two slots on two masters, each holding its own node's sessions
        owner_a = redis_cluster.node_for_key(a.keys.sessions(a_id))
        owner_b = redis_cluster.node_for_key(b.keys.sessions(b_id))
        assert owner_a is not owner_b
        assert owner_a.command("HKEYS", a.keys.sessions(a_id)) == ["a1"]
        assert sorted(owner_b.command("HKEYS", b.keys.sessions(b_id))) == ["b1", "b2"]

        now = time.time()
        await a.mark_usage("gpt", "a1", now, 60.0)
        await b.mark_usage("gpt", "b1", now, 60.0)
        await b.mark_usage("llama", "b2", now, 60.0)
        await a.revoke_jti("jti-1", now + 60)
        await b.revoke_user("mallory", now)

        for state in (a, b):
            assert [s.sid for s in await state.list_sessions()] == ["a1", "b1", "b2"]
            assert [s.sid for s in await state.list_sessions(user_id="alice")] == ["a1", "b2"]
            assert [s.sid for s in await state.list_sessions(room="channel:x")] == ["a1", "b1"]
            got = await state.list_sessions(user_id="alice", room="channel:x")
            assert [s.sid for s in got] == ["a1"]
            assert {r.room: r.members for r in await state.list_rooms()} == {
                "channel:x": 2, "user:alice": 2, "user:bob": 1}  # fmt: skip
            assert [(u.user_id, u.user_name, u.sessions) for u in await state.online_users()] == [
                ("alice", "Alice", 2), ("bob", "Bob", 1)]  # fmt: skip
            assert await state.count_user_sessions("alice") == 2
            assert (await state.get_session("a1")) is not None
            assert (await state.get_session("b2")) is not None
            usage = {u.model: sorted(u.sessions) for u in await state.list_usage(time.time())}
            assert usage == {"gpt": ["a1", "b1"], "llama": ["b2"]}
            assert await state.is_revoked("jti-1", "alice", now) is True
            assert await state.is_revoked(None, "mallory", now - 1) is True
            assert await state.is_revoked("jti-2", "alice", now) is False
            assert [n.id for n in await state.list_nodes()] == sorted([a_id, b_id])

        assert await b.remove_session("b2") is not None
        assert await a.count_user_sessions("alice") == 1
        assert {u.model for u in await a.list_usage(time.time())} == {"gpt"}
        assert await a.join_room("a1", "channel:y") is True
        assert [s.sid for s in await b.list_sessions(room="channel:y")] == ["a1"]
    finally:
        await a.close()
        await b.close()


async def test_cluster_seed_that_is_no_cluster_is_unavailable(redis_server: RedisServer) -> None:
    state = RedisState(open_client(redis_server.url, cluster=True), unique_prefix(), "n")
    try:
        with pytest.raises(BackendUnavailable):
            await state.ping()
    finally:
        await state.close()


# unix socket and TLS ------------------------------------------------------------------------


async def test_unix_socket_url(redis_unix_server: RedisServer) -> None:
    url = redis_unix_server.unix_url
    state = LiveRedisState(open_client(url), unique_prefix(), "node-a")
    await state.start()
    try:
        await state.add_session(record("s1", "node-a"))
        assert [s.sid for s in await state.list_sessions(user_id="alice")] == ["s1"]
        info = await state.redis.client_info()
        assert info["laddr"] == f"{redis_unix_server.unixsocket}:0"  # not over TCP
    finally:
        await state.close()


async def test_tls_url(redis_tls_server: RedisServer) -> None:
    assert redis_tls_server.tls is not None
    url = f"{redis_tls_server.url}?ssl_ca_certs={redis_tls_server.tls.ca}"
    assert url.startswith("rediss://")
    state = LiveRedisState(open_client(url), unique_prefix(), "node-a")
    await state.start()
    try:
        await state.add_session(record("s1", "node-a"))
        assert [s.sid for s in await state.list_sessions()] == ["s1"]
        info = await state.redis.client_info()
        assert info["addr"].startswith("127.0.0.1:")
    finally:
        await state.close()

    # the certificate is really checked, and the port really speaks only TLS
    for bad in (redis_tls_server.url, redis_tls_server.url.replace("rediss://", "redis://")):
        untrusted = RedisState(open_client(bad), unique_prefix(), "node-a")
        try:
            with pytest.raises(BackendUnavailable):
                await untrusted.ping()
        finally:
            await untrusted.close()


# prefixes -----------------------------------------------------------------------------------


@pytest.fixture(params=["standalone", "cluster"])
def shared_redis(request: pytest.FixtureRequest) -> Callable[[], Any]:
    """A client factory for one Redis that two deployments share."""
    if request.param == "cluster":
        setup: RedisClusterSetup = request.getfixturevalue("redis_cluster")
        return lambda: open_client(setup.url, cluster=True)
    server: RedisServer = request.getfixturevalue("redis_server")
    return lambda: open_client(server.url)


async def test_two_prefixes_stay_isolated(shared_redis: Callable[[], Any]) -> None:
    first, second = unique_prefix(), unique_prefix()
    a = LiveRedisState(shared_redis(), first, "node-1")
    b = LiveRedisState(shared_redis(), second, "node-1")  # even the same node id
    await a.start()
    await b.start()
    try:
        now = time.time()
        await a.add_session(record("s1", "node-1", rooms=["user:alice", "channel:x"]))
        await a.mark_usage("gpt", "s1", now, 60.0)
        await a.revoke_jti("j1", now + 60)
        await a.revoke_user("alice", now)

        assert await b.list_sessions() == []
        assert await b.list_sessions(user_id="alice") == []
        assert await b.list_sessions(room="channel:x") == []
        assert await b.get_session("s1") is None
        assert await b.list_rooms() == []
        assert await b.online_users() == []
        assert await b.count_user_sessions("alice") == 0
        assert await b.list_usage(time.time()) == []
        assert await b.is_revoked("j1", "alice", now - 1) is False
        assert await b.remove_session("s1") is None
        assert await b.join_room("s1", "channel:y") is False

        await b.add_session(record("s1", "node-1", user="bob"))  # same sid, other deployment
        got = await a.get_session("s1")
        assert got is not None and got.user_id == "alice"
        assert [u.user_id for u in await a.online_users()] == ["alice"]
        assert [u.user_id for u in await b.online_users()] == ["bob"]
        assert [n.id for n in await a.list_nodes()] == ["node-1"]
    finally:
        await a.close()
        await b.close()
