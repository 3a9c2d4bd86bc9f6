"""What operators do to the deployment: look, kick, emit, call, revoke, stop tasks.

The same code serves the daemon's admin API and the CLI working on Redis with no
daemon: everything it needs is the shared state, a way to send a command to the
node owning a session (``Peers``), and a way to emit to a room anywhere.
"""

from __future__ import annotations

import random
import time
from collections import defaultdict
from typing import Any, Protocol

from rtctl.auth import valid_id
from rtctl.errors import NotFound, OperationFailed, UsageError
from rtctl.hub import payload as p
from rtctl.hub.peers import Peers, raise_for_error
from rtctl.state.base import (
    NodeRecord,
    OnlineUser,
    RevocationRecord,
    RoomRecord,
    SessionRecord,
    StateBackend,
    TaskRecord,
    UsageRecord,
)

REVOCATION_HORIZON = 366 * 86400.0  # a revoked jti is remembered for a year
COMMAND_TIMEOUT = 5.0  # seconds a node has to run a kick, emit or revoke
MAX_CALL_TIMEOUT = 300.0
STOP_TIMEOUT = 10.0  # seconds a node has to cancel tasks and confirm
STOP_INTENT_TTL = 120.0  # seconds a stop intent waits for an owner cut off from Redis
# Per task, what a stop did: the SPEC's three, and "pending" for an owner that looks
# alive but did not answer: the stop intent stays, the owner applies it when it is back.
STOPPED, NOT_FOUND, OWNER_GONE, PENDING = "stopped", "not-found", "owner-gone", "pending"


class HookCache(Protocol):
    async def bump(self, user_id: str) -> None: ...


class RoomEmitter(Protocol):
    async def emit(
        self, event: str, data: Any, *, to: str, skip_sid: str | None = None
    ) -> None: ...


class Operator:
    def __init__(
        self,
        state: StateBackend,
        peers: Peers,
        rooms: RoomEmitter,
        *,
        call_timeout: float = 10.0,
        hook_cache: HookCache | None = None,
    ) -> None:
        self.state = state
        self.peers = peers
        self.rooms = rooms
        self.call_timeout = call_timeout
        self.hook_cache = hook_cache

    # looking ---------------------------------------------------------------------------------

    async def sessions(
        self, *, user_id: str | None = None, room: str | None = None
    ) -> list[SessionRecord]:
        return await self.state.list_sessions(user_id=user_id, room=room)

    async def online_users(self) -> list[OnlineUser]:
        return await self.state.online_users()

    async def rooms_list(self) -> list[RoomRecord]:
        return await self.state.list_rooms()

    async def room_members(self, room: str) -> list[SessionRecord]:
        members = await self.state.list_sessions(room=valid_id(room, "room"))
        if not members:
            raise NotFound(f"room {room} has no members")
        return members

    async def usage(self) -> list[UsageRecord]:
        return await self.state.list_usage(time.time())

    async def nodes(self) -> list[NodeRecord]:
        return await self.state.list_nodes()

    # acting ----------------------------------------------------------------------------------

    async def kick(
        self, *, sids: list[str] | None = None, user_id: str | None = None
    ) -> dict[str, list[str]]:
        """Disconnect sessions wherever they are: ``{"kicked": [...], "not_found": [...]}``."""
        if user_id is not None:
            found = await self.state.list_sessions(user_id=valid_id(user_id, "user"))
            if not found:
                raise NotFound(f"user {user_id} has no sessions")
            wanted = [s.sid for s in found]
        else:
            wanted = [valid_id(sid, "sid") for sid in sids or []]  # refuse before kicking any
            found = [s for s in [await self.state.get_session(sid) for sid in wanted] if s]
        by_node: defaultdict[str, list[str]] = defaultdict(list)
        for session in found:
            by_node[session.node].append(session.sid)
        kicked: set[str] = set()
        for node, node_sids in by_node.items():
            reply = await self.peers.request(node, "kick", {"sids": node_sids}, COMMAND_TIMEOUT)
            if reply is not None:  # None: the owner is gone; its sessions go with it
                kicked.update(raise_for_error(reply).get("kicked", []))
        return {
            "kicked": [s for s in wanted if s in kicked],
            "not_found": [s for s in wanted if s not in kicked],
        }

    async def emit(self, event: str, data: Any, *, to: str) -> int:
        """Emit to a room or one session, anywhere; returns how many sessions it addressed."""
        p.event_name(event)
        valid_id(to, "target")
        count = await self.state.room_size(to)  # one round trip, from the per-node counts
        if count:
            await self.rooms.emit(event, data, to=to)
            return count
        session = await self.state.get_session(to)
        if session is not None:
            reply = await self.peers.request(
                session.node, "emit", {"sid": to, "event": event, "data": data}, COMMAND_TIMEOUT
            )
            if reply is None or not raise_for_error(reply).get("delivered"):
                raise NotFound(f"session {to} is not connected")
            return 1
        raise NotFound(f"no session in {to}")

    async def emit_to_room(self, event: str, data: Any, *, room: str) -> None:
        """Emit to whoever is in a room now, without counting them first (an app's
        stream of events to its users: one publish each)."""
        p.event_name(event)
        await self.rooms.emit(event, data, to=valid_id(room, "room"))

    async def call(self, sid: str, event: str, data: Any, timeout: float | None = None) -> Any:
        """Server-to-client RPC with one session, wherever it is; returns its ack."""
        p.event_name(event)
        timeout = self.call_timeout if timeout is None else timeout
        if not 0 < timeout <= MAX_CALL_TIMEOUT:
            raise UsageError(f"timeout must be between 0 and {MAX_CALL_TIMEOUT:g} seconds")
        session = await self.state.get_session(valid_id(sid, "sid"))
        if session is None:
            raise NotFound(f"session {sid} is not connected")
        fields = {"sid": sid, "event": event, "data": data, "timeout": timeout}
        reply = await self.peers.request(session.node, "call", fields, timeout + COMMAND_TIMEOUT)
        if reply is None:
            raise NotFound(f"session {sid} is not connected (its node is gone)")
        return raise_for_error(reply).get("reply")

    async def revoke(self, *, jti: str | None = None, user_id: str | None = None) -> dict[str, Any]:
        """Refuse a token (by ``jti``) or every token a user holds now; disconnect holders."""
        if (jti is None) == (user_id is None):
            raise UsageError("revoke needs exactly one of jti or user")
        now = time.time()
        if jti is not None:
            await self.state.revoke_jti(valid_id(jti, "jti"), now + REVOCATION_HORIZON)
            fields: dict[str, Any] = {"jti": jti}
        else:
            await self.state.revoke_user(valid_id(user_id, "user"), now)
            fields = {"user": user_id}
        replies = await self.peers.request_all("revoke", fields, COMMAND_TIMEOUT)
        disconnected = sorted(s for r in replies for s in r.get("disconnected", []))
        return {"revoked": jti or user_id, "kind": "jti" if jti else "user",
                "disconnected": disconnected}  # fmt: skip

    async def membership(self, room: str, *, user_id: str, join: bool) -> dict[str, Any]:
        """Put every session of a user, on every node, in a room or take them out:
        ``{room, user_id, action, sessions: [sid…]}``. The user's cached auth hook
        answers go stale, so a session opened next asks the app again."""
        valid_id(room, "room")
        valid_id(user_id, "user")
        if room.startswith("user:"):
            raise UsageError("every session of a user is in its user room; it cannot be changed")
        if self.hook_cache is not None:
            await self.hook_cache.bump(user_id)
        fields = {"user": user_id, "room": room, "join": join}
        replies = await self.peers.request_all("rooms", fields, COMMAND_TIMEOUT)
        sids = sorted(s for r in replies for s in raise_for_error(r).get("sessions", []))
        return {"room": room, "user_id": user_id, "action": "join" if join else "leave",
                "sessions": sids}  # fmt: skip

    async def revocations(self) -> list[RevocationRecord]:
        return await self.state.list_revocations()

    async def unrevoke(
        self, *, jti: str | None = None, user_id: str | None = None
    ) -> dict[str, Any]:
        """Accept a revoked token (by ``jti``) or a revoked user's tokens again."""
        if (jti is None) == (user_id is None):
            raise UsageError("unrevoke needs exactly one of jti or user")
        if jti is not None:
            found = await self.state.unrevoke_jti(valid_id(jti, "jti"))
        else:
            found = await self.state.unrevoke_user(valid_id(user_id, "user"))
        if not found:
            raise NotFound(f"{'token' if jti else 'user'} {jti or user_id} is not revoked")
        return {"unrevoked": jti or user_id, "kind": "jti" if jti else "user"}

    # tasks -------------------------------------------------------------------------------------

    async def tasks(self, *, item_id: str | None = None) -> list[TaskRecord]:
        item = None if item_id is None else valid_id(item_id, "item")
        return await self.state.list_tasks(item_id=item)

    async def start_task(
        self,
        kind: str,
        *,
        user_id: str,
        item_id: str | None = None,
        message_id: str | None = None,
        payload: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Start a task for a user on this node (a daemon) or on a live node (no daemon
        here); its events go to the user's sessions wherever they are. The task's record."""
        node = getattr(self.peers, "node_id", None)
        if node is None:
            nodes = [n.id for n in await self.state.list_nodes()]
            if not nodes:
                raise OperationFailed("no live node can run the task", code="no_node")
            node = random.choice(nodes)
        fields = {"kind": kind, "user": user_id, "item_id": item_id, "message_id": message_id,
                  "payload": payload}  # fmt: skip
        reply = await self.peers.request(node, "tasks_start", fields, COMMAND_TIMEOUT)
        if reply is None:
            raise OperationFailed(f"node {node} is gone; try again", code="no_node")
        task: dict[str, Any] = raise_for_error(reply)["task"]
        return task

    async def task_so_far(self, task_id: str) -> dict[str, Any]:
        """What a running task has streamed (``{task_id, chat_id, message_id, user_id,
        content, seq, done}``), from the node that runs it; ``NotFound`` once it ended."""
        found = await self.state.find_task(valid_id(task_id, "task id"))
        if found is None or not found[1]:
            raise NotFound(f"task {task_id} is not running")
        reply = await self.peers.request(found[0].node, "tasks_so_far", {"id": task_id},
                                         COMMAND_TIMEOUT)  # fmt: skip
        if reply is None:
            raise NotFound(f"task {task_id} is not running: its node is gone")
        so_far = raise_for_error(reply).get("so_far")
        if not isinstance(so_far, dict):
            raise OperationFailed(f"node {found[0].node} gave no account of task {task_id}")
        return so_far

    async def stop_tasks(
        self,
        ids: list[str] | None = None,
        *,
        item_id: str | None = None,
        all_tasks: bool = False,
    ) -> list[dict[str, str]]:
        """Stop tasks wherever they run: per id ``{"id", "result"}``, the result one of
        ``stopped``, ``not-found``, ``owner-gone`` (its node is dead; the record is
        removed) or ``pending`` (the owner did not answer; a stop intent waits for it)."""
        if sum((ids is not None, item_id is not None, all_tasks)) != 1:
            raise UsageError("give exactly one of ids, item or all")
        if ids is not None:
            wanted = list(dict.fromkeys(valid_id(t, "task id") for t in ids))
            if not wanted:
                raise UsageError("give at least one task id")
        else:
            found = await self.tasks(item_id=item_id)
            if item_id is not None and not found:
                raise NotFound(f"item {item_id} has no running tasks")
            wanted = [t.id for t in found]
        results: dict[str, str] = {}
        by_node: defaultdict[str, list[TaskRecord]] = defaultdict(list)
        for task_id in wanted:
            hit = await self.state.find_task(task_id)
            if hit is None:
                results[task_id] = NOT_FOUND
            elif not hit[1]:  # its node is dead: nothing runs it any more
                await self.state.remove_task(task_id, hit[0].node)
                results[task_id] = OWNER_GONE
            else:
                by_node[hit[0].node].append(hit[0])
        for node, tasks in by_node.items():
            for task in tasks:  # durable first: an owner cut off now still gets it
                await self.state.request_stop(task, STOP_INTENT_TTL)
            node_ids = [t.id for t in tasks]
            try:
                reply = await self.peers.request(node, "tasks_stop", {"ids": node_ids},
                                                 STOP_TIMEOUT)  # fmt: skip
            except OperationFailed:  # timed out: the intent stays for the owner
                results.update(dict.fromkeys(node_ids, PENDING))
                continue
            if reply is None:  # nothing listens for its node any more: it is gone
                for task in tasks:
                    await self.state.remove_task(task.id, node)
                # (the intent stays: a node merely cut off from Redis still stops them)
                results.update(dict.fromkeys(node_ids, OWNER_GONE))
                continue
            stopped = set(raise_for_error(reply).get("stopped", []))
            results.update({t: STOPPED if t in stopped else NOT_FOUND for t in node_ids})
        return [{"id": t, "result": results[t]} for t in wanted]
