"""The session pool: who is connected here, as whom, in which rooms.

The pool keeps the identities of this node's sessions (their grants are needed on
every request) and mirrors every change into the state backend, which answers
deployment-wide queries.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

from rtctl.auth import Identity, TokenVerifier
from rtctl.errors import AuthError, Forbidden, NotFound, RateLimited
from rtctl.hub.limits import KeyedLimiter
from rtctl.hub.transport import Transport, user_room
from rtctl.state.base import SessionRecord, StateBackend

if TYPE_CHECKING:
    from rtctl.hooks.auth import AuthHook, Grants

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
        hook: AuthHook | None = None,
    ) -> None:
        self.state = state
        self.hook = hook
        self.transport = transport
        self.verifier = verifier
        self.node_id = node_id
        self.max_sessions_per_user = max_sessions_per_user
        self._identities: dict[str, Identity] = {}
        self._rooms: dict[str, set[str]] = {}
        self._connected_at: dict[str, float] = {}
        self._headers: dict[str, Mapping[str, str]] = {}  # what the auth hook is told
        self._app_rooms: dict[str, set[str]] = {}  # rooms the app put the session in
        self._models: dict[str, set[str]] = {}  # models a session marked in use
        self._event_limits = KeyedLimiter(event_rate, event_burst)
        self._connect_limits = KeyedLimiter(connect_rate, max(1.0, connect_rate * 2))

    def __len__(self) -> int:
        return len(self._identities)

    def hosts(self, sid: str) -> bool:
        return sid in self._identities

    def local_sids(self) -> list[str]:
        return list(self._identities)

    def identity(self, sid: str) -> Identity:
        identity = self._identities.get(sid)
        if identity is None:
            raise NotFound(f"session {sid} is not connected here")
        return identity

    async def authenticate(
        self, token: object, *, sid: str = "", headers: Mapping[str, str] | None = None
    ) -> Identity:
        """Who a token is: its verified claims, and with an auth hook what the app says.

        A token the hub cannot verify itself (the app's own, opaque or signed with a
        key the hub lacks) is the app's to judge when a hook is set; an expired or
        revoked token of the hub's is refused without asking.
        """
        verified: Identity | None
        try:
            verified = self.verifier.verify(token)
        except AuthError as exc:
            if self.hook is None or exc.code != "invalid_token":
                raise
            verified = None
        if self.hook is not None:
            assert isinstance(token, str)  # verify() refused anything else
            grants = await self.hook.identify(token, sid, headers or {})
            identity = _described(verified, grants)
        else:
            assert verified is not None
            identity = verified
        if await self.state.is_revoked(identity.jti, identity.user_id, identity.issued_at):
            raise AuthError("token has been revoked", code="token_revoked")
        return identity

    def allow_connect(self, address: str) -> None:
        if not self._connect_limits.allow(address):
            raise RateLimited("too many connections from this address; retry later")

    def allow_event(self, sid: str) -> None:
        if not self._event_limits.allow(sid):
            raise RateLimited("too many events; slow down")

    async def open(
        self, sid: str, identity: Identity, headers: Mapping[str, str] | None = None
    ) -> SessionRecord:
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
        self._headers[sid] = headers or {}
        await self.state.add_session(record)
        await self.transport.enter_room(sid, room)
        return record

    async def close(self, sid: str) -> SessionRecord | None:
        self._identities.pop(sid, None)
        self._rooms.pop(sid, None)
        self._connected_at.pop(sid, None)
        self._headers.pop(sid, None)
        self._app_rooms.pop(sid, None)
        self._models.pop(sid, None)
        self._event_limits.forget(sid)
        return await self.state.remove_session(sid)

    async def touch(self, sid: str) -> None:
        self.identity(sid)
        await self.state.touch_session(sid, time.time())

    async def reauthenticate(self, sid: str, token: object) -> Identity:
        """Replace a session's identity with a fresh token's; the user may not change."""
        current = self.identity(sid)
        identity = await self.authenticate(token, sid=sid, headers=self._headers.get(sid))
        if identity.user_id != current.user_id:
            raise Forbidden("the token belongs to another user; reconnect to switch users")
        self._identities[sid] = identity
        await self.state.touch_session(sid, time.time())
        return identity

    async def join(self, sid: str, room: str, *, by_app: bool = False) -> None:
        """Enter a room; ``by_app``: the app put the session there, so a fresh token
        that does not grant the room does not take it out (``user-join``)."""
        self.identity(sid)
        await self.state.join_room(sid, room)
        await self.transport.enter_room(sid, room)
        self._rooms[sid].add(room)
        if by_app:
            self._app_rooms.setdefault(sid, set()).add(room)

    async def leave(self, sid: str, room: str) -> bool:
        self.identity(sid)
        left = await self.state.leave_room(sid, room)
        await self.transport.leave_room(sid, room)
        self._rooms[sid].discard(room)
        self._app_rooms.get(sid, set()).discard(room)
        return left

    def note_model(self, sid: str, model: str, limit: int) -> None:
        """Count a model the session marks in use; past ``limit`` distinct ones, refuse."""
        models = self._models.setdefault(sid, set())
        if model not in models and len(models) >= limit:
            raise RateLimited(f"a session may mark at most {limit} models in use",
                              code="too_many_models")  # fmt: skip
        models.add(model)

    def rooms_of(self, sid: str) -> set[str]:
        return set(self._rooms.get(sid, ()))

    def app_rooms(self, sid: str) -> set[str]:
        return set(self._app_rooms.get(sid, ()))

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


def _described(identity: Identity | None, grants: Grants) -> Identity:
    """The token's identity as the app describes it, or the app's alone for a token
    the hub could not verify."""
    if identity is None:
        if grants.user_id is None:
            raise AuthError("the auth hook accepted the token without naming its user (user.id)")
        identity = Identity(user_id=grants.user_id, name=grants.name or grants.user_id)
    return identity.with_grants(
        user_id=grants.user_id, name=grants.name, role=grants.role,
        channel_ids=grants.channels, docs=grants.docs, docs_ro=grants.docs_ro,
    )  # fmt: skip
