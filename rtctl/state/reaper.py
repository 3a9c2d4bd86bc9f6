"""The reaper: removes what dead nodes left in Redis, under a fenced lease.

One reaper works at a time, holding the ``reaper`` lease (renewed before every step,
well before it expires). Its fencing token is stamped on each dead node's partition
before the sweep, and every deletion batch checks that stamp in the same atomic
step, so a reaper that paused past its lease (and was replaced) deletes nothing.
A sweep removes sessions in batches of ``BATCH`` through the same script a daemon
uses on disconnect, yielding to the event loop between batches, so it never stalls
a daemon's loop however many sessions a dead node held. Any Redis fault ends the
sweep; the daemon's loop tries again later. The CLI runs the same sweep
(``rtctl pool cleanup``), with no daemon needed.

A dead node's tasks go with its partition (they were out of every listing already).
A node that was only slow, not dead, re-adds its sessions and tasks on its next
reconcile.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from rtctl.errors import OperationFailed
from rtctl.state.redis import RedisState
from rtctl.state.redis_faults import backend_call

LEASE = "reaper"
BATCH = 500


@dataclass
class NodeSweep:
    node: str
    sessions: int = 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Sweep:
    dry_run: bool
    nodes: list[NodeSweep] = field(default_factory=list)
    complete: bool = True  # False when the lease was lost part-way

    def to_json(self) -> dict[str, Any]:
        return {"dry_run": self.dry_run, "complete": self.complete,
                "sessions": sum(n.sessions for n in self.nodes),
                "nodes": [n.to_json() for n in self.nodes]}  # fmt: skip


class LeaseLost(Exception):
    pass


class Reaper:
    def __init__(
        self, state: RedisState, holder: str, *, lease_ttl: float = 10.0, batch: int = BATCH
    ) -> None:
        self.state = state
        self.batch = batch
        self.keys = state.keys
        self.holder = holder
        self.lease_ttl = lease_ttl
        self._fence = 0

    async def _hold(self) -> int:
        """Take or renew the lease; raise ``LeaseLost`` if someone else holds it."""
        token = int(await self.state._run(
            "lease", [self.keys.lease(LEASE), self.keys.fence(LEASE)],
            [self.holder, int(self.lease_ttl * 1000)],
        ))  # fmt: skip
        if token == 0 or (self._fence and token != self._fence):
            self._fence = 0
            raise LeaseLost("another reaper holds the lease")
        self._fence = token
        return token

    async def dead_nodes(self) -> list[str]:
        now = int(time.time() * 1000)  # past the deadline each node registered with
        raw = await self.state.redis.zrangebyscore(self.keys.nodes, "-inf", f"({now}")
        return sorted(n.decode() if isinstance(n, bytes) else n for n in raw)

    @backend_call
    async def sweep(self, *, dry_run: bool = False) -> Sweep:
        """Remove (or, dry, count) every dead node's sessions and records."""
        result = Sweep(dry_run)
        if dry_run:
            for node in await self.dead_nodes():
                count = await self.state.redis.hlen(self.keys.sessions(node))
                result.nodes.append(NodeSweep(node, int(count)))
            return result
        try:
            await self._hold()
        except LeaseLost:
            raise OperationFailed("another cleanup holds the reaper lease; try again",
                                  code="busy") from None  # fmt: skip
        try:
            for node in await self.dead_nodes():
                result.nodes.append(await self._sweep_node(node))
        except LeaseLost:
            result.complete = False
        finally:
            await self.state._run("lease_release", [self.keys.lease(LEASE)], [self.holder])
            self._fence = 0
        return result

    async def _sweep_node(self, node: str) -> NodeSweep:
        swept = NodeSweep(node)
        fence = await self._hold()
        claimed = await self.state._run(
            "partition_claim", [self.keys.partition_claim(node)],
            [fence, int(self.lease_ttl * 3000)],
        )  # fmt: skip
        if not int(claimed):
            raise LeaseLost(f"a newer reaper claimed {node}")
        sessions = self.keys.sessions(node)
        cursor = 0
        while True:
            fence = await self._hold()  # renewed before every batch: stop the moment it is lost
            # Follow the cursor: deleting as we go empties buckets behind it, so a scan
            # restarted at 0 can come back empty long before the hash is.
            cursor, batch = await self.state.redis.hscan(sessions, cursor, count=self.batch)
            if batch:
                sids = [k.decode() if isinstance(k, bytes) else k for k in batch]
                removed = await self.state.remove_sessions(node, sids, fence=fence)
                if not removed and await self._fenced_off(node, fence):
                    raise LeaseLost(f"fenced off from {node}")
                swept.sessions += len(removed)
            if int(cursor) == 0 and await self.state.redis.hlen(sessions) == 0:
                break
            await asyncio.sleep(0)  # let the daemon's event loop breathe between batches
        await self._forget_node(node)
        return swept

    async def _fenced_off(self, node: str, fence: int) -> bool:
        claim = await self.state.redis.get(self.keys.partition_claim(node))
        return claim is None or int(claim) != fence

    async def _forget_node(self, node: str) -> None:
        k = self.keys
        tasks = await self.state.redis.hvals(k.tasks(node))  # its tasks died with it
        items = {t["item_id"] for t in map(json.loads, tasks) if t.get("item_id") is not None}
        leftovers = [k.sessions(node), k.room_counts(node), k.user_counts(node),
                     k.partition(node) + ":names", k.tasks(node),
                     *(k.task_item(node, item) for item in sorted(items)),
                     k.partition_claim(node)]  # fmt: skip
        for key in leftovers:  # one key at a time: on Cluster they share a slot anyway
            await self.state.redis.unlink(key)
        await self.state.redis.zrem(k.nodes, node)
        await self.state.redis.unlink(k.node(node))
