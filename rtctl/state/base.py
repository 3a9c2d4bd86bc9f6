"""The state interface every backend implements, and the records it holds.

A backend keeps what the whole deployment must agree on: the node registry, the
session pool with its room memberships, model usage marks and token revocations.
The embedded backend keeps it in this process; the Redis backend shares it across
daemons. Backends never talk to clients: delivering events is the daemon's job.

Every method may raise ``BackendUnavailable`` when the store does not answer.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol


def iso(ts: float | None) -> str | None:
    """Seconds since the epoch as ISO 8601 UTC (the CLI's and API's time format)."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class SessionRecord:
    sid: str
    user_id: str
    user_name: str
    node: str
    connected_at: float
    last_seen_at: float
    rooms: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        # spelled out: dataclasses.asdict deep-copies, a cost at 10k sessions per listing
        return {"sid": self.sid, "user_id": self.user_id, "user_name": self.user_name,
                "node": self.node, "connected_at": iso(self.connected_at),
                "last_seen_at": iso(self.last_seen_at), "rooms": sorted(self.rooms)}  # fmt: skip


@dataclass
class NodeRecord:
    id: str
    host: str
    pid: int
    version: str
    started_at: float
    last_seen_at: float
    sessions: int = 0
    url: str = ""
    # counts since the node started, as of last_seen_at: events_in (from clients),
    # events_out (emits to clients), deliveries (events handed to a session), connects
    stats: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["started_at"] = iso(self.started_at)
        data["last_seen_at"] = iso(self.last_seen_at)
        return data


@dataclass
class RoomRecord:
    room: str
    members: int
    nodes: list[str] = field(default_factory=list)  # the nodes its members are on

    def sorted(self) -> RoomRecord:
        self.nodes.sort()
        return self

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class OnlineUser:
    user_id: str
    user_name: str
    sessions: int
    nodes: list[str] = field(default_factory=list)  # the nodes its sessions are on

    def sorted(self) -> OnlineUser:
        self.nodes.sort()
        return self

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class UsageRecord:
    model: str
    sessions: list[str]
    updated_at: float

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "sessions": sorted(self.sessions),
            "count": len(self.sessions),
            "updated_at": iso(self.updated_at),
        }


@dataclass
class TaskRecord:
    """A running task: a cancellable job streaming events to its user's room."""

    id: str
    kind: str
    user_id: str
    node: str
    started_at: float
    item_id: str | None = None  # the chat (or document) it works on
    message_id: str | None = None  # the message it writes, in that chat

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "item_id": self.item_id,
                "message_id": self.message_id, "user_id": self.user_id, "node": self.node,
                "started_at": iso(self.started_at)}  # fmt: skip

    def to_wire(self) -> dict[str, Any]:
        """As stored: ``started_at`` in seconds."""
        return {"id": self.id, "kind": self.kind, "item_id": self.item_id,
                "message_id": self.message_id, "user_id": self.user_id, "node": self.node,
                "started_at": self.started_at}  # fmt: skip

    @classmethod
    def from_wire(cls, d: dict[str, Any]) -> TaskRecord:
        item, message = d.get("item_id"), d.get("message_id")  # absent in older records
        return cls(str(d["id"]), str(d["kind"]), str(d["user_id"]), str(d["node"]),
                   float(d["started_at"]), None if item is None else str(item),
                   None if message is None else str(message))  # fmt: skip


@dataclass
class RevocationRecord:
    """A revoked token (``jti``, refused ``until`` its horizon) or user (every token
    issued ``before`` the cutoff is refused)."""

    kind: str  # "jti" or "user"
    id: str
    until: float | None = None
    before: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "id": self.id, "until": iso(self.until),
                "before": iso(self.before)}  # fmt: skip


class StateBackend(Protocol):
    """What the daemon and the CLI need from shared state."""

    name: str

    async def start(self) -> None: ...
    async def close(self) -> None: ...
    async def ping(self) -> None:
        """Raise ``BackendUnavailable`` unless the store answers."""

    # nodes
    async def register_node(self, node: NodeRecord) -> None: ...
    async def list_nodes(self) -> list[NodeRecord]: ...

    # sessions and rooms
    async def add_session(self, session: SessionRecord) -> None: ...
    async def remove_session(self, sid: str) -> SessionRecord | None: ...
    async def touch_session(self, sid: str, at: float) -> bool: ...
    async def get_session(self, sid: str) -> SessionRecord | None: ...
    async def list_sessions(
        self, *, user_id: str | None = None, room: str | None = None
    ) -> list[SessionRecord]: ...
    async def count_user_sessions(self, user_id: str) -> int: ...
    async def room_size(self, room: str) -> int:
        """How many sessions are in a room, deployment-wide (from counts, not records)."""

    async def node_sids(self, node_id: str) -> list[str]:
        """The session ids the backend holds for one node (to reconcile with the node)."""

    async def join_room(self, sid: str, room: str) -> bool: ...
    async def leave_room(self, sid: str, room: str) -> bool: ...
    async def list_rooms(self) -> list[RoomRecord]: ...
    async def online_users(self) -> list[OnlineUser]: ...

    # model usage
    async def mark_usage(self, model: str, sid: str, at: float, ttl: float) -> None: ...
    async def list_usage(self, now: float) -> list[UsageRecord]: ...

    # token revocation
    async def revoke_jti(self, jti: str, until: float) -> None: ...
    async def revoke_user(self, user_id: str, cutoff: float) -> None: ...
    async def is_revoked(self, jti: str | None, user_id: str, issued_at: float | None) -> bool: ...
    async def list_revocations(self) -> list[RevocationRecord]: ...
    async def unrevoke_jti(self, jti: str) -> bool: ...
    async def unrevoke_user(self, user_id: str) -> bool: ...

    # tasks: each node writes only its own; listings show live nodes' tasks only
    async def add_task(self, task: TaskRecord) -> None: ...
    async def remove_task(self, task_id: str, node_id: str) -> TaskRecord | None: ...
    async def find_task(self, task_id: str) -> tuple[TaskRecord, bool] | None:
        """The task wherever it is recorded, and whether its owner is alive."""

    async def list_tasks(self, *, item_id: str | None = None) -> list[TaskRecord]: ...
    async def refresh_tasks(self, node_id: str, tasks: list[TaskRecord]) -> None:
        """The owner's heartbeat for its tasks: re-record any missing, extend their expiry."""

    async def request_stop(self, task: TaskRecord, ttl: float) -> None:
        """A durable stop intent for ``task``, which its owner picks up within ``ttl``."""

    async def take_stop_requests(self, node_id: str, task_ids: list[str]) -> list[str]:
        """The ids among ``task_ids`` with a stop intent; the intents are consumed."""


def online_from_sessions(sessions: Iterable[SessionRecord]) -> list[OnlineUser]:
    users: dict[str, OnlineUser] = {}
    for s in sessions:
        entry = users.setdefault(s.user_id, OnlineUser(s.user_id, s.user_name, 0))
        entry.sessions += 1
        if s.node not in entry.nodes:
            entry.nodes.append(s.node)
    return [users[uid].sorted() for uid in sorted(users)]
