"""The hub: what clients ask of this node, and the commands it runs for its sessions.

Client requests arrive with the session id of the caller; identity always comes
from the caller's token, never from the payload. Commands (kick, emit, call,
revoke; see ``rtctl.hub.peers``) come from an ``Operator`` anywhere in the
deployment, in-process when embedded, over Redis otherwise.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from rtctl.auth import Identity, valid_id
from rtctl.errors import Forbidden, NotFound, OperationFailed, RtctlError, UsageError
from rtctl.hub import payload as p
from rtctl.hub.peers import Command, CommandHandler
from rtctl.hub.sessions import SessionPool
from rtctl.hub.transport import Transport, channel_room, user_room
from rtctl.state.base import (
    NodeRecord,
    StateBackend,
)

MAX_MODEL_NAME = 256
MAX_MODELS_PER_SESSION = 64  # distinct models one session may mark in use (`usage`)


class Webhooks(Protocol):
    def send(self, type: str, data: dict[str, Any]) -> None: ...


CHANNEL = channel_room("")
NOTE = "note:"


class Hub:
    def __init__(
        self,
        state: StateBackend,
        transport: Transport,
        pool: SessionPool,
        node: NodeRecord,
        *,
        usage_ttl: float = 30.0,
        call_timeout: float = 10.0,
    ) -> None:
        self.state = state
        self.transport = transport
        self.pool = pool
        self.node = node
        self.usage_ttl = usage_ttl
        self.call_timeout = call_timeout
        self.commands: dict[str, CommandHandler] = {}  # more ops (tasks_stop: the task runner)
        self.webhooks: Webhooks | None = None  # what the app must record (SPEC §9)
        self.stats: Callable[[], dict[str, int]] = dict  # this node's counters, for its record
        # told of each fresh identity a session takes (documents leave what it no longer reads)
        self.on_reauthenticated: list[Callable[[str, Identity], Awaitable[None]]] = []

    def add_command(self, op: str, handler: CommandHandler) -> None:
        """Serve one more command op on this node (see ``rtctl.hub.peers``)."""
        self.commands[op] = handler

    # client requests -----------------------------------------------------------------------

    async def user_join(self, sid: str, data: Any) -> dict[str, str]:
        """Re-authenticate, enter every channel granted by exact id and leave the ones
        no longer granted (rooms the app put the session in stay)."""
        identity = await self._reauthenticate(sid, p.token_of(data))
        for channel_id in identity.exact_channels():
            if not self.pool.in_room(sid, channel_room(channel_id)):
                await self.pool.join(sid, channel_room(channel_id))
        return {"id": identity.user_id, "name": identity.name}

    async def _reauthenticate(self, sid: str, token: object) -> Identity:
        """A fresh token's identity for the session; it leaves the channel and note rooms,
        and the documents, the new grants no longer cover (rooms the app put it in stay)."""
        identity = await self.pool.reauthenticate(sid, token)
        kept = self.pool.app_rooms(sid)
        for room in sorted(self.pool.rooms_of(sid) - kept):
            if room.startswith(CHANNEL):
                granted = identity.may_join_channel(room[len(CHANNEL) :])
            elif room.startswith(NOTE):
                granted = identity.may_read_doc(room)  # room note:<id> is document note:<id>
            else:
                continue
            if not granted:
                await self.pool.leave(sid, room)
        for told in self.on_reauthenticated:
            await told(sid, identity)
        return identity

    async def heartbeat(self, sid: str) -> dict[str, bool]:
        await self.pool.touch(sid)
        return {"ok": True}

    async def channel_join(self, sid: str, data: Any) -> dict[str, Any]:
        channel_id = p.ident(p.obj(data), "channel_id")
        if not self.pool.identity(sid).may_join_channel(channel_id):
            raise Forbidden(f"the token does not grant channel {channel_id}")
        await self.pool.join(sid, channel_room(channel_id))
        return {"ok": True, "channel_id": channel_id}

    async def channel_leave(self, sid: str, data: Any) -> dict[str, Any]:
        channel_id = p.ident(p.obj(data), "channel_id")
        left = await self.pool.leave(sid, channel_room(channel_id))
        return {"ok": left, "channel_id": channel_id}

    async def join_note(self, sid: str, data: Any) -> dict[str, Any]:
        """Enter room ``note:<note_id>``, where the app pushes its note events (Open
        WebUI's: ``note-events``); read access to document ``note:<note_id>`` is required.
        A token given re-authenticates first."""
        body = p.obj(data)
        note_id = p.ident(body, "note_id")
        identity: Identity = self.pool.identity(sid)
        if p.token_of(body) is not None:
            identity = await self._reauthenticate(sid, p.token_of(body))
        if not identity.may_read_doc(f"note:{note_id}"):
            raise Forbidden(f"the token does not grant document note:{note_id}")
        await self.pool.join(sid, f"note:{note_id}")
        return {"ok": True, "note_id": note_id}

    async def join_channels(self, sid: str, data: Any) -> dict[str, Any]:
        """Enter every channel the (fresh) token grants by exact id."""
        identity: Identity = self.pool.identity(sid)
        if p.token_of(data) is not None:
            identity = await self._reauthenticate(sid, p.token_of(data))
        joined = []
        for channel_id in identity.exact_channels():
            await self.pool.join(sid, channel_room(channel_id))
            joined.append(channel_id)
        return {"ok": True, "channels": joined}

    async def channel_event(self, sid: str, data: Any) -> dict[str, bool]:
        body = p.obj(data)
        channel_id = p.ident(body, "channel_id")
        message_id = p.opt_ident(body, "message_id")
        event = p.obj(body.get("data"), "data")
        if not isinstance(event.get("type"), str) or not event["type"]:
            raise UsageError("data.type must be a non-empty string")
        room = channel_room(channel_id)
        if not self.pool.in_room(sid, room):
            raise Forbidden(f"join channel {channel_id} before sending to it")
        identity = self.pool.identity(sid)
        if event["type"] == "last_read_at":  # the app's to record, nobody else's to see
            self._record("channel.read", {"channel_id": channel_id, "user_id": identity.user_id})
            return {"ok": True}
        out: dict[str, Any] = {
            "channel_id": channel_id,
            "data": {"type": event["type"], "data": event.get("data")},
            "user": {"id": identity.user_id, "name": identity.name},
        }
        if "message_id" in body:  # exactly as sent: Open WebUI shows typing for a null one
            out["message_id"] = message_id
        await self.transport.emit("events:channel", out, to=room)
        return {"ok": True}

    async def chat_event(self, sid: str, data: Any) -> dict[str, bool]:
        """A chat's read state (``{chat_id, data: {type, data}}``): the app's to record."""
        body = p.obj(data)
        chat_id = p.ident(body, "chat_id")
        event = p.obj(body.get("data"), "data")
        if not isinstance(event.get("type"), str) or not event["type"]:
            raise UsageError("data.type must be a non-empty string")
        user_id = self.pool.identity(sid).user_id
        read = {"type": event["type"], "data": event.get("data")}
        self._record("chat.read", {"chat_id": chat_id, "user_id": user_id, "data": read})
        return {"ok": True}

    def _record(self, kind: str, data: dict[str, Any]) -> None:
        if self.webhooks is not None:
            self.webhooks.send(kind, data)

    async def usage(self, sid: str, data: Any) -> dict[str, bool]:
        body = p.obj(data)
        model = body.get("model")
        if not isinstance(model, str) or not model or len(model) > MAX_MODEL_NAME:
            raise UsageError(f"model must be a name of 1 to {MAX_MODEL_NAME} characters")
        if not model.isprintable():  # operators read it in listings: no terminal controls
            raise UsageError("model must be printable: no control or formatting characters")
        self.pool.identity(sid)
        self.pool.note_model(sid, model, MAX_MODELS_PER_SESSION)
        await self.state.mark_usage(model, sid, time.time(), self.usage_ttl)
        return {"ok": True}

    # this node ---------------------------------------------------------------------------

    async def refresh_node(self) -> None:
        """Register this node (again) with its session count; refreshes its liveness."""
        self.node.sessions = len(self.pool)
        self.node.stats = self.stats()
        self.node.last_seen_at = time.time()
        await self.state.register_node(self.node)

    async def handle_command(self, command: Command) -> dict[str, Any]:
        """Run a command addressed to this node (see ``rtctl.hub.peers``) for its sessions."""
        op = command.get("op")
        try:
            if op == "kick":
                sids = [valid_id(s, "sid") for s in command.get("sids") or []]
                kicked = [sid for sid in sids if await self.transport.disconnect(sid)]
                return {"kicked": kicked, "not_found": [s for s in sids if s not in kicked]}
            if op == "emit":
                sid = valid_id(command.get("sid"), "sid")
                if not self.transport.hosts(sid):
                    return {"delivered": 0}
                await self.transport.emit(
                    p.event_name(command.get("event")), command.get("data"), to=sid
                )
                return {"delivered": 1}
            if op == "rooms":
                return await self._membership(command)
            if op == "call":
                return {"reply": await self._call(command)}
            if op == "revoke":
                jti, user = command.get("jti"), command.get("user")
                if not jti and not user:
                    raise UsageError("revoke needs jti or user")
                sids = self.pool.sids_with(jti=jti) if jti else self.pool.sids_with(user_id=user)
                for sid in sids:
                    await self.transport.disconnect(sid)
                return {"disconnected": sids}
            extra = self.commands.get(op) if isinstance(op, str) else None
            if extra is not None:
                return await extra(command)
            raise UsageError(f"unknown command {op!r}")
        except RtctlError as exc:
            return {"error": exc.to_dict()}

    async def _membership(self, command: Command) -> dict[str, Any]:
        """The app puts every session of a user here in a room, or takes them out."""
        user_id = valid_id(command.get("user"), "user")
        room = valid_id(command.get("room"), "room")
        done = []
        for sid in self.pool.sids_with(user_id=user_id):
            try:
                if command.get("join"):
                    await self.pool.join(sid, room, by_app=True)
                else:
                    await self.pool.leave(sid, room)
            except NotFound:
                continue  # disconnected meanwhile
            done.append(sid)
        return {"sessions": done}

    async def _call(self, command: Command) -> Any:
        sid = valid_id(command.get("sid"), "sid")
        event = p.event_name(command.get("event"))
        timeout = command.get("timeout")
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
            timeout = self.call_timeout
        if not self.transport.hosts(sid):
            raise NotFound(f"session {sid} is not connected")
        try:
            return await self.transport.call(sid, event, command.get("data"), float(timeout))
        except TimeoutError:
            raise OperationFailed(
                f"session {sid} did not answer within {timeout:g}s", code="timeout"
            ) from None


__all__ = ["Hub", "user_room"]
