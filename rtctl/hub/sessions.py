"""The session pool: who is connected here, as whom, in which rooms.

The pool keeps the identities of this node's sessions (their grants are needed on
every request) and mirrors every change into the state backend, which answers
deployment-wide queries.
"""

from __future__ import annotations

import asyncio
import time

from rtctl.auth import Identity, TokenVerifier
from rtctl.errors import AuthError, Forbidden, NotFound, RateLimited
from rtctl.hub.limits import KeyedLimiter
from rtctl.hub.transport import Transport, user_room
from rtctl.state.base import SessionRecord, StateBackend

RECONCILE_BATCH = 1000


class SessionPool:
    def __init__(
        self,
        state: StateBackend,
        transport: Transport,
        verifier: TokenVerifier,
        node_id: str,
        *,
        max_sessions_per_user: int = 0,
        event_rate: float = 0.0,
        event_burst: int = 1,
        connect_rate: float = 0.0,
    ) -> None:
        self.state = state
        self.transport = transport
        self.verifier = verifier
        self.node_id = node_id
        self.max_sessions_per_user = max_sessions_per_user
        self._identities: dict[str, Identity] = {}
        self._rooms: dict[str, set[str]] = {}
        self._connected_at: dict[str, float] = {}
        self._event_limits = KeyedLimiter(event_rate, event_burst)
        self._connect_limits = KeyedLimiter(connect_rate, max(1.0, connect_rate * 2))

    def __len__(self) -> int:
        return len(self._identities)

    def local_sids(self) -> list[str]:
        return list(self._identities)

    def identity(self, sid: str) -> Identity:
        identity = self._identities.get(sid)
        if identity is None:
            raise NotFound(f"session {sid} is not connected here")
        return identity

    async def authenticate(self, token: object) -> Identity:
        identity = self.verifier.verify(token)
        if await self.state.is_revoked(identity.jti, identity.user_id, identity.issued_at):
            raise AuthError("token has been revoked", code="token_revoked")
        return identity

    def allow_connect(self, address: str) -> None:
        if not self._connect_limits.allow(address):
            raise RateLimited("too many connections from this address; retry later")

    def allow_event(self, sid: str) -> None:
        if not self._event_limits.allow(sid):
            raise RateLimited("too many events; slow down")

    async def open(self, sid: str, identity: Identity) -> SessionRecord:
        if self.max_sessions_per_user:
            count = await self.state.count_user_sessions(identity.user_id)
            if count >= self.max_sessions_per_user:
                raise RateLimited(
                    f"user already has {count} sessions (limit {self.max_sessions_per_user})",
                    code="too_many_sessions",
                )
        now = time.time()
        room = user_room(identity.user_id)
        record = SessionRecord(sid, identity.user_id, identity.name, self.node_id, now, now, [room])
        self._identities[sid] = identity
        self._rooms[sid] = {room}
        self._connected_at[sid] = now
        await self.state.add_session(record)
        await self.transport.enter_room(sid, room)
        return record

    async def close(self, sid: str) -> SessionRecord | None:
        self._identities.pop(sid, None)
        self._rooms.pop(sid, None)
        self._connected_at.pop(sid, None)
        self._event_limits.forget(sid)
        return await self.state.remove_session(sid)

    async def touch(self, sid: str) -> None:
        self.identity(sid)
        await self.state.touch_session(sid, time.time())

    async def reauthenticate(self, sid: str, token: object) -> Identity:
        """Replace a session's identity with a fresh token's; the user may not change."""
        current = self.identity(sid)
        identity = await self.authenticate(token)
        if identity.user_id != current.user_id:
            raise Forbidden("the token belongs to another user; reconnect to switch users")
        self._identities[sid] = identity
        await self.state.touch_session(sid, time.time())
        return identity

    async def join(self, sid: str, room: str) -> None:
        self.identity(sid)
        await self.state.join_room(sid, room)
        await self.transport.enter_room(sid, room)
        self._rooms[sid].add(room)

    async def leave(self, sid: str, room: str) -> bool:
        self.identity(sid)
        left = await self.state.leave_room(sid, room)
        await self.transport.leave_room(sid, room)
        self._rooms[sid].discard(room)
        return left

    async def reconcile(self) -> tuple[int, int]:
        """Make the backend's record of this node's sessions match the sessions here.

        Re-adds what the backend lost (Redis restarted empty, or a write failed while
        it was away) and removes what outlived its session (a disconnect that could not
        be recorded). Returns (re-added, removed).
        """
        stored = set(await self.state.node_sids(self.node_id))
        now = time.time()
        added = 0
        for i, (sid, identity) in enumerate(list(self._identities.items())):
            if i % RECONCILE_BATCH == RECONCILE_BATCH - 1:
                await asyncio.sleep(0)  # a node may hold 100k sessions: never stall the loop
            if sid not in stored:
                record = SessionRecord(sid, identity.user_id, identity.name, self.node_id,
                                       self._connected_at.get(sid, now), now,
                                       sorted(self._rooms.get(sid, ())))  # fmt: skip
                await self.state.add_session(record)
                added += 1
        stale = [sid for sid in stored if sid not in self._identities]
        for sid in stale:
            await self.state.remove_session(sid)
        return added, len(stale)

    def in_room(self, sid: str, room: str) -> bool:
        """Whether a session of this node is in a room (no round trip to the backend)."""
        return room in self._rooms.get(sid, ())

    def sids_with(self, *, user_id: str | None = None, jti: str | None = None) -> list[str]:
        return [
            sid
            for sid, ident in self._identities.items()
            if (user_id is None or ident.user_id == user_id) and (jti is None or ident.jti == jti)
        ]
