"""The Redis backend: the state interface shared by every daemon of a deployment.

The session pool is partitioned by node (see ``rtctl.state.keys``): a daemon only
writes its own partition, through the Lua scripts in ``lua/``; queries read the
partitions of live nodes, pipelined, so they cost one round trip per node plus the
size of the answer. Every Redis fault surfaces as ``BackendUnavailable``.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rtctl.config import Settings
from rtctl.state.base import (
    NodeRecord,
    OnlineUser,
    RevocationRecord,
    RoomRecord,
    SessionRecord,
    TaskRecord,
    UsageRecord,
)
from rtctl.state.keys import Keys
from rtctl.state.redis_faults import backend_call
from rtctl.state.redis_revocations import RedisRevocations
from rtctl.state.redis_url import open_client

SCAN_BATCH = 1000  # entries per HSCAN round trip, and per event-loop turn
NODE_TTL = 15.0  # seconds without a heartbeat before a node counts as dead
SCRIPTS = (
    "session_add", "session_remove", "session_touch", "room_join",
    "usage_mark", "usage_forget", "revoke_user",
    "lease", "lease_release", "partition_claim",
    "task_add", "task_remove", "task_refresh", "task_stops",
)  # fmt: skip

_DECODER = json.JSONDecoder()


def _session_json(s: SessionRecord) -> str:
    return json.dumps(
        {
            "sid": s.sid,
            "user_id": s.user_id,
            "user_name": s.user_name,
            "node": s.node,
            "connected_at": s.connected_at,
            "last_seen_at": s.last_seen_at,
            "rooms": list(s.rooms),
        }
    )


def _session(raw: bytes | str | None) -> SessionRecord | None:
    if raw is None:
        return None
    d = json.loads(raw)
    return SessionRecord(
        d["sid"],
        d["user_id"],
        d["user_name"],
        d["node"],
        float(d["connected_at"]),
        float(d["last_seen_at"]),
        list(d.get("rooms") or []),
    )


def _sessions(raws: list[Any]) -> list[SessionRecord]:
    """``_session`` of each stored record, at two thirds of the cost for a large listing
    (10k records: ~20 ms instead of ~30 ms): ``json.loads`` detects the encoding and
    checks for surrounding whitespace on every call, which a record as the scripts store
    it (UTF-8, one JSON object) does not need. Any record that is not that goes through
    ``_session``, so it decodes, or fails, exactly as there."""
    decode = _DECODER.raw_decode
    out = []
    for raw in raws:
        try:
            text = raw.decode() if type(raw) is bytes else raw
            d, end = decode(text)
            if end != len(text):
                raise ValueError("not one JSON value")
            record = SessionRecord(d["sid"], d["user_id"], d["user_name"], d["node"],
                                   float(d["connected_at"]), float(d["last_seen_at"]),
                                   list(d.get("rooms") or []))  # fmt: skip
        except Exception:  # the general path below decodes it, or fails, as it should
            if (slow := _session(raw)) is None:
                continue
            record = slow
        out.append(record)
    return out


DECODE_BATCH = 5000  # records decoded per event-loop turn (~5 ms)


async def _sessions_yielding(raws: list[Any]) -> list[SessionRecord]:
    """``_sessions`` in batches, yielding between them: in a daemon, listing 100k
    sessions must not hold every client's deliveries for the whole decode."""
    if len(raws) <= DECODE_BATCH:
        return _sessions(raws)
    out: list[SessionRecord] = []
    for i in range(0, len(raws), DECODE_BATCH):
        if i:
            await asyncio.sleep(0)
        out += _sessions(raws[i : i + DECODE_BATCH])
    return out


def _stats(raw: str | None) -> dict[str, int]:
    """A node's counters as it stored them (none from a node of an older version)."""
    try:
        stats = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    if not isinstance(stats, dict):
        return {}
    out = {}
    for key, value in stats.items():
        if isinstance(value, int | float) and math.isfinite(value):
            out[str(key)] = int(value)
    return out


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RedisState:
    name = "redis"

    def __init__(
        self, client: Any, prefix: str, node_id: str, *, node_ttl: float = NODE_TTL
    ) -> None:
        self.redis = client
        self.keys = Keys(prefix)
        self.node_id = node_id
        self.node_ttl = node_ttl
        lua = Path(__file__).with_name("lua")
        self._scripts = {n: client.register_script((lua / f"{n}.lua").read_text()) for n in SCRIPTS}
        self._revocations = RedisRevocations(client, self.keys, self._run)

    @classmethod
    def from_settings(cls, settings: Settings) -> RedisState:
        client = open_client(settings.redis_url, cluster=settings.redis_cluster)
        return cls(client, settings.prefix, settings.effective_node_id, node_ttl=settings.node_ttl)

    async def start(self) -> None:
        return None  # connections open lazily; readiness pings

    async def close(self) -> None:
        await self.redis.aclose()

    @backend_call
    async def ping(self) -> None:
        await self.redis.ping()

    async def _run(self, script: str, keys: list[str], args: list[Any]) -> Any:
        return await self._scripts[script](keys=keys, args=args)

    # nodes ---------------------------------------------------------------------------------

    @backend_call
    async def register_node(self, node: NodeRecord) -> None:
        k = self.keys
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hset(k.node(node.id), mapping={
                "id": node.id, "host": node.host, "pid": node.pid, "version": node.version,
                "started_at": node.started_at, "last_seen_at": node.last_seen_at,
                "sessions": node.sessions, "url": node.url,
                "stats": json.dumps(node.stats, separators=(",", ":"))})  # fmt: skip
            pipe.pexpire(k.node(node.id), int(self.node_ttl * 4000))
            # scored by the node's own deadline: readers need not know its node_ttl
            pipe.zadd(k.nodes, {node.id: int((node.last_seen_at + self.node_ttl) * 1000)})
            await pipe.execute()

    async def live_node_ids(self) -> list[str]:
        now = int(time.time() * 1000)  # a node is live until the deadline it registered
        return [_text(n) for n in await self.redis.zrangebyscore(self.keys.nodes, now, "+inf")]

    @backend_call
    async def list_nodes(self) -> list[NodeRecord]:
        ids = await self.live_node_ids()
        async with self.redis.pipeline(transaction=False) as pipe:
            for node_id in ids:
                pipe.hgetall(self.keys.node(node_id))
            rows = await pipe.execute()
        nodes = []
        for row in rows:
            d = {_text(k): _text(v) for k, v in row.items()}
            if d:
                nodes.append(
                    NodeRecord(
                        d["id"],
                        d["host"],
                        int(d["pid"]),
                        d["version"],
                        float(d["started_at"]),
                        float(d["last_seen_at"]),
                        int(d["sessions"]),
                        d.get("url", ""),
                        _stats(d.get("stats")),
                    )
                )
        return sorted(nodes, key=lambda n: n.id)

    # sessions and rooms --------------------------------------------------------------------

    def _partition(self, node_id: str) -> tuple[list[str], str]:
        return [self.keys.sessions(node_id)], self.keys.partition(node_id)

    @backend_call
    async def add_session(self, session: SessionRecord) -> None:
        keys, tag = self._partition(session.node)
        await self._run("session_add", keys, [tag, session.sid, _session_json(session)])

    @backend_call
    async def remove_session(self, sid: str) -> SessionRecord | None:
        removed = await self.remove_sessions(self.node_id, [sid])
        return removed[0] if removed else None

    @backend_call
    async def remove_sessions(
        self, node_id: str, sids: list[str], fence: int | None = None
    ) -> list[SessionRecord]:
        """Remove sessions of a node's partition (with a fencing token: the reaper's)."""
        keys, tag = self._partition(node_id)
        args = [tag, "" if fence is None else str(fence), *sids]
        removed = [_session(raw) for raw in await self._run("session_remove", keys, args)]
        if removed:  # usage lives in its own slot: a second, idempotent step
            await self._run("usage_forget", [self.keys.usage_models],
                            [self.keys.usage(""), self.keys.usage_session(""),
                             *(r.sid for r in removed if r)])  # fmt: skip
        return [r for r in removed if r is not None]

    @backend_call
    async def touch_session(self, sid: str, at: float) -> bool:
        keys, _ = self._partition(self.node_id)
        return bool(await self._run("session_touch", keys, [sid, repr(at)]))

    @backend_call
    async def get_session(self, sid: str) -> SessionRecord | None:
        own = await self.redis.hget(self.keys.sessions(self.node_id), sid)
        if own is not None:
            return _session(own)
        for raw in await self._per_node(lambda pipe, n: pipe.hget(self.keys.sessions(n), sid)):
            if raw is not None:
                return _session(raw)
        return None

    async def _per_node(self, queue: Callable[[Any, str], Any]) -> list[Any]:
        """Run one pipelined command per live node; results in node order."""
        return (await self._nodes_and_answers(queue))[1]

    async def _nodes_and_answers(
        self, queue: Callable[[Any, str], Any]
    ) -> tuple[list[str], list[Any]]:
        """The live nodes, and what ``queue``'s commands for each answered, in node order."""
        ids = await self.live_node_ids()
        async with self.redis.pipeline(transaction=False) as pipe:
            for node_id in ids:
                queue(pipe, node_id)
            return ids, list(await pipe.execute())

    @backend_call
    async def list_sessions(
        self, *, user_id: str | None = None, room: str | None = None
    ) -> list[SessionRecord]:
        k = self.keys
        ids = await self.live_node_ids()
        async with self.redis.pipeline(transaction=False) as pipe:
            for n in ids:
                if user_id is not None and room is not None:
                    # one slot (the partition's tag); the Cluster pipeline only blocks
                    # the sinter() helper because it cannot know that
                    pipe.execute_command("SINTER", k.user_sids(n, user_id), k.room_sids(n, room))
                elif user_id is not None:
                    pipe.smembers(k.user_sids(n, user_id))
                elif room is not None:
                    pipe.smembers(k.room_sids(n, room))
                else:
                    pipe.hvals(k.sessions(n))
            answers = await pipe.execute()
        if user_id is None and room is None:
            records = await _sessions_yielding([raw for rows in answers for raw in rows])
        else:
            async with self.redis.pipeline(transaction=False) as pipe:
                wanted = [
                    (n, sorted(_text(s) for s in sids))
                    for n, sids in zip(ids, answers, strict=True)
                ]
                for n, sids in wanted:
                    if sids:
                        pipe.hmget(k.sessions(n), sids)
                rows = await pipe.execute()
            records = await _sessions_yielding(
                [raw for row in rows for raw in row if raw is not None]
            )
        return sorted(records, key=lambda s: (s.connected_at, s.sid))

    @backend_call
    async def node_sids(self, node_id: str) -> list[str]:
        """In batches, yielding between them: a partition may hold 100k sessions."""
        sids: list[str] = []
        # (HSCAN NOVALUES would save the values' bytes, but needs Redis 7.4)
        async for sid, _ in self.redis.hscan_iter(self.keys.sessions(node_id), count=SCAN_BATCH):
            sids.append(_text(sid))
            if len(sids) % SCAN_BATCH == 0:
                await asyncio.sleep(0)
        return sids

    @backend_call
    async def room_size(self, room: str) -> int:
        counts = await self._per_node(lambda pipe, n: pipe.hget(self.keys.room_counts(n), room))
        return sum(int(c) for c in counts if c is not None)

    @backend_call
    async def count_user_sessions(self, user_id: str) -> int:
        counts = await self._per_node(lambda pipe, n: pipe.hget(self.keys.user_counts(n), user_id))
        return sum(int(c) for c in counts if c is not None)

    async def _membership(self, sid: str, room: str, join: bool) -> int:
        """1 changed, 0 already so, -1 no such session (see lua/room_join.lua)."""
        keys, tag = self._partition(self.node_id)
        return int(await self._run("room_join", keys, [tag, sid, room, "1" if join else "0"]))

    @backend_call
    async def join_room(self, sid: str, room: str) -> bool:
        """True if the session is (now) in the room."""
        return await self._membership(sid, room, True) >= 0

    @backend_call
    async def leave_room(self, sid: str, room: str) -> bool:
        """True if the session was in the room."""
        return await self._membership(sid, room, False) == 1

    @backend_call
    async def list_rooms(self) -> list[RoomRecord]:
        rooms: dict[str, RoomRecord] = {}
        ids, answers = await self._nodes_and_answers(
            lambda pipe, n: pipe.hgetall(self.keys.room_counts(n))
        )
        for node, counts in zip(ids, answers, strict=True):
            for room, count in counts.items():
                if int(count) > 0:
                    entry = rooms.setdefault(_text(room), RoomRecord(_text(room), 0))
                    entry.members += int(count)
                    entry.nodes.append(node)
        return [rooms[room].sorted() for room in sorted(rooms)]

    @backend_call
    async def online_users(self) -> list[OnlineUser]:
        def queue(pipe: Any, n: str) -> None:
            pipe.hgetall(self.keys.user_counts(n))
            pipe.hgetall(self.keys.partition(n) + ":names")

        ids, answers = await self._nodes_and_answers(queue)
        users: dict[str, OnlineUser] = {}
        for node, counts, names in zip(ids, answers[::2], answers[1::2], strict=True):
            for user, count in counts.items():
                if int(count) <= 0:
                    continue
                uid = _text(user)
                entry = users.setdefault(uid, OnlineUser(uid, _text(names.get(user, user)), 0))
                entry.sessions += int(count)
                entry.nodes.append(node)
        return [users[uid].sorted() for uid in sorted(users)]

    # model usage ---------------------------------------------------------------------------

    @backend_call
    async def mark_usage(self, model: str, sid: str, at: float, ttl: float) -> None:
        k = self.keys
        await self._run(
            "usage_mark",
            [k.usage(model), k.usage_models, k.usage_session(sid)],
            [sid, int((at + ttl) * 1000), int(at * 1000), model],
        )

    @backend_call
    async def list_usage(self, now: float) -> list[UsageRecord]:
        k = self.keys
        models = await self.redis.zrange(k.usage_models, 0, -1, withscores=True)
        now_ms = int(now * 1000)
        async with self.redis.pipeline(transaction=False) as pipe:
            for model, _ in models:
                pipe.zrangebyscore(k.usage(_text(model)), now_ms + 1, "+inf")
            live = await pipe.execute()
        out, dead = [], []
        for (model, updated), sids in zip(models, live, strict=True):
            if sids:
                out.append(UsageRecord(_text(model), [_text(s) for s in sids], updated / 1000))
            else:
                dead.append(model)
        if dead:
            await self.redis.zrem(k.usage_models, *dead)
        return out

    # token revocation (rtctl.state.redis_revocations) -------------------------------------

    @backend_call
    async def revoke_jti(self, jti: str, until: float) -> None:
        await self._revocations.revoke_jti(jti, until)

    @backend_call
    async def revoke_user(self, user_id: str, cutoff: float) -> None:
        await self._revocations.revoke_user(user_id, cutoff)

    @backend_call
    async def is_revoked(self, jti: str | None, user_id: str, issued_at: float | None) -> bool:
        return await self._revocations.is_revoked(jti, user_id, issued_at)

    @backend_call
    async def list_revocations(self) -> list[RevocationRecord]:
        return await self._revocations.list_revocations()

    @backend_call
    async def unrevoke_jti(self, jti: str) -> bool:
        return await self._revocations.unrevoke_jti(jti)

    @backend_call
    async def unrevoke_user(self, user_id: str) -> bool:
        return await self._revocations.unrevoke_user(user_id)

    # tasks ---------------------------------------------------------------------------------

    def _task_ttl_ms(self) -> int:
        # past node_ttl a dead owner's tasks are out of every listing already (only live
        # partitions are read); the keys themselves go a little later, or with the reaper
        return int(self.node_ttl * 2000)

    @backend_call
    async def add_task(self, task: TaskRecord) -> None:
        tag = self.keys.partition(task.node)
        await self._run("task_add", [self.keys.tasks(task.node)],
                        [tag, task.id, json.dumps(task.to_wire()), task.item_id or "",
                         self._task_ttl_ms()])  # fmt: skip

    @backend_call
    async def remove_task(self, task_id: str, node_id: str) -> TaskRecord | None:
        tag = self.keys.partition(node_id)
        raw = await self._run("task_remove", [self.keys.tasks(node_id)], [tag, task_id])
        return TaskRecord.from_wire(json.loads(raw)) if raw else None

    @backend_call
    async def find_task(self, task_id: str) -> tuple[TaskRecord, bool] | None:
        # every registered node, dead ones too (until reaped): a dead owner is "owner-gone"
        nodes = await self.redis.zrange(self.keys.nodes, 0, -1, withscores=True)
        now = time.time() * 1000
        async with self.redis.pipeline(transaction=False) as pipe:
            for node_id, _ in nodes:
                pipe.hget(self.keys.tasks(_text(node_id)), task_id)
            rows = await pipe.execute()
        for (_, deadline), raw in zip(nodes, rows, strict=True):
            if raw is not None:
                return TaskRecord.from_wire(json.loads(raw)), deadline >= now
        return None

    @backend_call
    async def list_tasks(self, *, item_id: str | None = None) -> list[TaskRecord]:
        k = self.keys
        ids = await self.live_node_ids()
        async with self.redis.pipeline(transaction=False) as pipe:
            for n in ids:
                if item_id is None:
                    pipe.hvals(k.tasks(n))
                else:
                    pipe.smembers(k.task_item(n, item_id))
            answers = await pipe.execute()
        if item_id is None:
            raws = [raw for rows in answers for raw in rows]
        else:
            wanted = [(n, sorted(_text(t) for t in tids))
                      for n, tids in zip(ids, answers, strict=True) if tids]  # fmt: skip
            async with self.redis.pipeline(transaction=False) as pipe:
                for n, tids in wanted:
                    pipe.hmget(k.tasks(n), tids)
                rows = await pipe.execute()
            raws = [raw for row in rows for raw in row if raw is not None]
        tasks = [TaskRecord.from_wire(json.loads(raw)) for raw in raws]
        return sorted(tasks, key=lambda t: (t.started_at, t.id))

    @backend_call
    async def refresh_tasks(self, node_id: str, tasks: list[TaskRecord]) -> None:
        args: list[Any] = [self.keys.partition(node_id), self._task_ttl_ms()]
        for t in tasks:
            args += [t.id, json.dumps(t.to_wire()), t.item_id or ""]
        await self._run("task_refresh", [self.keys.tasks(node_id)], args)

    @backend_call
    async def request_stop(self, task: TaskRecord, ttl: float) -> None:
        await self.redis.set(self.keys.stop_intent(task.node, task.id), "1", px=int(ttl * 1000))

    @backend_call
    async def take_stop_requests(self, node_id: str, task_ids: list[str]) -> list[str]:
        if not task_ids:
            return []
        found = await self._run("task_stops", [self.keys.tasks(node_id)],
                                [self.keys.partition(node_id), *task_ids])  # fmt: skip
        return [_text(t) for t in found]
