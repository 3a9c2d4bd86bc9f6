"""The reaper on a real redis-server: dead nodes swept in batches, under a fenced lease."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator

import pytest

from rtctl.errors import OperationFailed
from rtctl.state.base import NodeRecord, SessionRecord
from rtctl.state.reaper import BATCH, LEASE, Reaper
from rtctl.state.redis import RedisState
from rtctl.state.redis_url import open_client
from rtctl.state.resp import open_fast_client
from tests.redis_server import RedisServer

pytestmark = pytest.mark.anyio
TTL = 2.0


@pytest.fixture(params=["redis-py", "resp"])
async def states(
    redis_server: RedisServer, request: pytest.FixtureRequest
) -> AsyncIterator[tuple[RedisState, RedisState]]:
    """A live node and a dead one; the reaper's client is redis-py (a daemon's) or
    ``rtctl.state.resp`` (the CLI's ``pool cleanup``)."""
    client = open_fast_client if request.param == "resp" else open_client
    alive = RedisState(client(redis_server.url), "rp", "alive", node_ttl=TTL)
    dead = RedisState(open_client(redis_server.url), "rp", "dead", node_ttl=TTL)
    now = time.time()
    await alive.register_node(NodeRecord("alive", "h", 1, "t", now, now))
    # the dead node's last heartbeat is older than the liveness timeout
    await dead.register_node(NodeRecord("dead", "h", 2, "t", now - 60, now - 60))
    yield alive, dead
    await alive.close()
    await dead.close()


def session(sid: str, node: str, user: str) -> SessionRecord:
    return SessionRecord(sid, user, user, node, 1.0, 1.0, [f"user:{user}", "channel:all"])


async def test_sweep_removes_a_dead_nodes_leftovers_only(
    states: tuple[RedisState, RedisState],
) -> None:
    alive, dead = states
    count = BATCH * 2 + 7  # several batches
    for i in range(count):
        await dead.add_session(session(f"d{i}", "dead", f"u{i % 10}"))
    await alive.add_session(session("a0", "alive", "u0"))
    await dead.mark_usage("gpt", "d1", time.time(), 60)

    reaper = Reaper(alive, "alive")
    planned = await reaper.sweep(dry_run=True)
    assert [(n.node, n.sessions) for n in planned.nodes] == [("dead", count)]
    assert await dead.redis.hlen(alive.keys.sessions("dead")) == count  # dry: nothing removed

    swept = await reaper.sweep()
    assert swept.complete and [(n.node, n.sessions) for n in swept.nodes] == [("dead", count)]
    leftovers = [k async for k in dead.redis.scan_iter(match="{rp:n:dead}*")]
    assert leftovers == []
    assert await dead.redis.zscore(alive.keys.nodes, "dead") is None
    assert [s.sid for s in await alive.list_sessions()] == ["a0"]
    assert await alive.list_usage(time.time()) == []
    assert (await reaper.sweep()).nodes == []  # nothing left to do


async def test_sweep_follows_the_scan_cursor_to_the_end(
    states: tuple[RedisState, RedisState],
) -> None:
    """Deleting as it scans empties buckets behind the cursor: a scan restarted at 0
    would come back empty with most of the hash still there."""
    alive, dead = states
    count = 3000
    async with dead.redis.pipeline(transaction=False) as pipe:
        for i in range(count):  # records only: the hash is what the scan walks
            record = {"sid": f"d{i}", "user_id": "u", "user_name": "u", "node": "dead",
                      "connected_at": 1.0, "last_seen_at": 1.0, "rooms": []}  # fmt: skip
            pipe.hset(dead.keys.sessions("dead"), f"d{i}", json.dumps(record))
        await pipe.execute()
    swept = await Reaper(alive, "alive", batch=50).sweep()
    assert swept.complete and swept.nodes[0].sessions == count
    assert await dead.redis.hlen(alive.keys.sessions("dead")) == 0
    assert [k async for k in dead.redis.scan_iter(match="{rp:n:dead}*")] == []


async def test_one_reaper_at_a_time(states: tuple[RedisState, RedisState]) -> None:
    alive, _ = states
    first = Reaper(alive, "first")
    await first._hold()
    with pytest.raises(OperationFailed) as refused:
        await Reaper(alive, "second").sweep()
    assert refused.value.code == "busy"


async def test_a_reaper_that_lost_its_lease_deletes_nothing(
    states: tuple[RedisState, RedisState],
) -> None:
    alive, dead = states
    await dead.add_session(session("d0", "dead", "u0"))
    slow = Reaper(alive, "slow")
    old_token = await slow._hold()
    await dead.redis.delete(alive.keys.lease(LEASE))  # its lease expired while it paused
    newer = Reaper(alive, "newer")
    new_token = await newer._hold()
    assert new_token > old_token
    await alive._run("partition_claim", [alive.keys.partition_claim("dead")], [new_token, 10_000])
    # the slow reaper wakes up and tries a batch with its old token: fenced off
    assert await alive.remove_sessions("dead", ["d0"], fence=old_token) == []
    assert await dead.redis.hexists(alive.keys.sessions("dead"), "d0")
    assert [r.sid for r in await alive.remove_sessions("dead", ["d0"], fence=new_token)] == ["d0"]


async def test_a_dead_nodes_tasks_leave_the_list_and_are_reaped(
    states: tuple[RedisState, RedisState],
) -> None:
    from rtctl.state.base import TaskRecord

    live, dead = states
    now = time.time()
    await dead.register_node(NodeRecord("dead", "h", 2, "t", now, now))  # alive, for now
    await dead.add_task(TaskRecord("t-dead", "echo", "alice", dead.node_id, 1.0, "chat-1"))
    await live.add_task(TaskRecord("t-live", "echo", "bob", live.node_id, 2.0, "chat-1"))
    assert {t.id for t in await live.list_tasks(item_id="chat-1")} == {"t-dead", "t-live"}
    await dead.redis.zadd(dead.keys.nodes, {dead.node_id: 0})  # its heartbeat stopped long ago
    assert [t.id for t in await live.list_tasks(item_id="chat-1")] == ["t-live"]
    found = await live.find_task("t-dead")
    assert found is not None and found[1] is False  # recorded, its owner dead: owner-gone
    await Reaper(live, "reaper-1").sweep()
    assert await live.find_task("t-dead") is None
    assert not await live.redis.exists(live.keys.tasks(dead.node_id))
    assert not await live.redis.exists(live.keys.task_item(dead.node_id, "chat-1"))
