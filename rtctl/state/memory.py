"""The embedded backend: the whole state in this process's memory.

Each query is answered from an index (user -> sids, room -> sids), so its cost is
proportional to the result. Revocations outlive a restart: they are written to a
small JSON file in the data dir.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import time
from collections import defaultdict
from pathlib import Path

from rtctl.config import Settings
from rtctl.state.base import (
    NodeRecord,
    OnlineUser,
    RevocationRecord,
    RoomRecord,
    SessionRecord,
    TaskRecord,
    UsageRecord,
    online_from_sessions,
)

log = logging.getLogger("rtctl.state")


class MemoryState:
    name = "embedded"

    def __init__(self, data_dir: Path | None = None) -> None:
        self._nodes: dict[str, NodeRecord] = {}
        self._sessions: dict[str, SessionRecord] = {}
        self._by_user: defaultdict[str, set[str]] = defaultdict(set)
        self._by_room: defaultdict[str, set[str]] = defaultdict(set)
        self._usage: defaultdict[str, dict[str, float]] = defaultdict(dict)
        self._usage_at: dict[str, float] = {}
        self._usage_of: defaultdict[str, set[str]] = defaultdict(set)  # sid -> its models
        self._revoked_jti: dict[str, float] = {}
        self._revoked_user: dict[str, float] = {}
        self._revocations_file = data_dir / "revocations.json" if data_dir else None
        self._tasks: dict[str, TaskRecord] = {}
        self._stops: dict[str, float] = {}  # task id -> intent expiry

    @classmethod
    def from_settings(cls, settings: Settings) -> MemoryState:
        return cls(settings.data_path)

    async def start(self) -> None:
        if self._revocations_file and self._revocations_file.exists():
            try:
                data = await asyncio.to_thread(self._revocations_file.read_text)
                loaded = json.loads(data)
                self._revoked_jti = {str(k): float(v) for k, v in loaded.get("jti", {}).items()}
                self._revoked_user = {str(k): float(v) for k, v in loaded.get("user", {}).items()}
            except (OSError, ValueError, AttributeError, TypeError) as exc:
                # A damaged file must not stop the hub; it is rewritten on the next revoke.
                log.warning("ignoring damaged %s: %s", self._revocations_file, exc)

    async def close(self) -> None:
        return None

    async def ping(self) -> None:
        return None

    # nodes ---------------------------------------------------------------------------------

    async def register_node(self, node: NodeRecord) -> None:
        self._nodes[node.id] = node

    async def list_nodes(self) -> list[NodeRecord]:
        return sorted(self._nodes.values(), key=lambda n: n.id)

    # sessions and rooms --------------------------------------------------------------------

    async def add_session(self, session: SessionRecord) -> None:
        # a copy, as a shared store would hold: callers never alias stored state
        session = dataclasses.replace(session, rooms=list(session.rooms))
        self._sessions[session.sid] = session
        self._by_user[session.user_id].add(session.sid)
        for room in session.rooms:
            self._by_room[room].add(session.sid)

    async def remove_session(self, sid: str) -> SessionRecord | None:
        session = self._sessions.pop(sid, None)
        if session is None:
            return None
        _discard(self._by_user, session.user_id, sid)
        for room in session.rooms:
            _discard(self._by_room, room, sid)
        for model in self._usage_of.pop(sid, ()):  # its own models only, never a scan
            marks = self._usage.get(model)
            if marks is not None and marks.pop(sid, None) is not None and not marks:
                del self._usage[model]
                self._usage_at.pop(model, None)
        return session

    async def touch_session(self, sid: str, at: float) -> bool:
        session = self._sessions.get(sid)
        if session is None:
            return False
        session.last_seen_at = at
        return True

    async def get_session(self, sid: str) -> SessionRecord | None:
        return self._sessions.get(sid)

    async def list_sessions(
        self, *, user_id: str | None = None, room: str | None = None
    ) -> list[SessionRecord]:
        if user_id is not None and room is not None:
            sids = self._by_user.get(user_id, set()) & self._by_room.get(room, set())
        elif user_id is not None:
            sids = self._by_user.get(user_id, set())
        elif room is not None:
            sids = self._by_room.get(room, set())
        else:
            sids = set(self._sessions)
        return sorted((self._sessions[s] for s in sids), key=lambda s: (s.connected_at, s.sid))

    async def node_sids(self, node_id: str) -> list[str]:
        return [sid for sid, s in self._sessions.items() if s.node == node_id]

    async def room_size(self, room: str) -> int:
        return len(self._by_room.get(room, ()))

    async def count_user_sessions(self, user_id: str) -> int:
        return len(self._by_user.get(user_id, ()))

    async def join_room(self, sid: str, room: str) -> bool:
        session = self._sessions.get(sid)
        if session is None:
            return False
        if room not in session.rooms:
            session.rooms.append(room)
        self._by_room[room].add(sid)
        return True

    async def leave_room(self, sid: str, room: str) -> bool:
        session = self._sessions.get(sid)
        if session is None or room not in session.rooms:
            return False
        session.rooms.remove(room)
        _discard(self._by_room, room, sid)
        return True

    async def list_rooms(self) -> list[RoomRecord]:
        return [
            RoomRecord(room, len(sids), sorted({self._sessions[sid].node for sid in sids}))
            for room, sids in sorted(self._by_room.items())
        ]

    async def online_users(self) -> list[OnlineUser]:
        return online_from_sessions(self._sessions.values())

    # model usage ---------------------------------------------------------------------------

    async def mark_usage(self, model: str, sid: str, at: float, ttl: float) -> None:
        self._usage[model][sid] = at + ttl
        self._usage_at[model] = at
        self._usage_of[sid].add(model)

    async def list_usage(self, now: float) -> list[UsageRecord]:
        out = []
        for model in sorted(self._usage):
            live = {sid: exp for sid, exp in self._usage[model].items() if exp > now}
            if live:
                self._usage[model] = live
                out.append(UsageRecord(model, list(live), self._usage_at.get(model, now)))
            else:
                del self._usage[model]
                self._usage_at.pop(model, None)
        return out

    # token revocation ----------------------------------------------------------------------

    async def revoke_jti(self, jti: str, until: float) -> None:
        self._revoked_jti[jti] = until
        await self._save_revocations()

    async def revoke_user(self, user_id: str, cutoff: float) -> None:
        self._revoked_user[user_id] = max(cutoff, self._revoked_user.get(user_id, 0.0))
        await self._save_revocations()

    async def is_revoked(self, jti: str | None, user_id: str, issued_at: float | None) -> bool:
        if jti is not None and self._revoked_jti.get(jti, 0.0) > time.time():
            return True
        cutoff = self._revoked_user.get(user_id)
        return cutoff is not None and (issued_at is None or issued_at < cutoff)

    async def list_revocations(self) -> list[RevocationRecord]:
        now = time.time()
        out = [RevocationRecord("jti", j, until=u) for j, u in self._revoked_jti.items() if u > now]
        out += [RevocationRecord("user", u, before=c) for u, c in self._revoked_user.items()]
        return sorted(out, key=lambda r: (r.kind, r.id))

    async def unrevoke_jti(self, jti: str) -> bool:
        found = self._revoked_jti.pop(jti, None) is not None
        await self._save_revocations()
        return found

    async def unrevoke_user(self, user_id: str) -> bool:
        found = self._revoked_user.pop(user_id, None) is not None
        await self._save_revocations()
        return found

    # tasks ---------------------------------------------------------------------------------

    async def add_task(self, task: TaskRecord) -> None:
        self._tasks[task.id] = dataclasses.replace(task)

    async def remove_task(self, task_id: str, node_id: str) -> TaskRecord | None:
        task = self._tasks.get(task_id)
        if task is None or task.node != node_id:
            return None
        self._stops.pop(task_id, None)
        return self._tasks.pop(task_id)

    async def find_task(self, task_id: str) -> tuple[TaskRecord, bool] | None:
        task = self._tasks.get(task_id)
        return None if task is None else (dataclasses.replace(task), True)

    async def list_tasks(self, *, item_id: str | None = None) -> list[TaskRecord]:
        found = (t for t in self._tasks.values() if item_id is None or t.item_id == item_id)
        return sorted((dataclasses.replace(t) for t in found), key=lambda t: (t.started_at, t.id))

    async def refresh_tasks(self, node_id: str, tasks: list[TaskRecord]) -> None:
        for task in tasks:
            self._tasks.setdefault(task.id, dataclasses.replace(task))

    async def request_stop(self, task: TaskRecord, ttl: float) -> None:
        self._stops[task.id] = time.time() + ttl

    async def take_stop_requests(self, node_id: str, task_ids: list[str]) -> list[str]:
        now = time.time()
        return [t for t in task_ids if self._stops.pop(t, 0.0) > now]

    async def _save_revocations(self) -> None:
        if self._revocations_file is None:
            return
        now = time.time()
        self._revoked_jti = {k: v for k, v in self._revoked_jti.items() if v > now}
        payload = json.dumps({"jti": self._revoked_jti, "user": self._revoked_user})
        await asyncio.to_thread(_write_atomic, self._revocations_file, payload)


def _discard(index: defaultdict[str, set[str]], key: str, sid: str) -> None:
    members = index.get(key)
    if members is not None:
        members.discard(sid)
        if not members:
            del index[key]


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    # 0600 like the generated secrets: which tokens are revoked is the operator's business
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # a tmp file left by an older version keeps its mode otherwise
    with open(fd, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
