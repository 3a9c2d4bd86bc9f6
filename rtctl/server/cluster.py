"""Room delivery across daemons: the manager used in Redis mode.

An emit to a room reaches local members directly and is published once on the
room's channel; the nodes hosting members of that room (and only those, since a
node subscribes a room's channel while it hosts one of its members) queue the
already-encoded packets to their members. A node receives its own publications back
(it subscribes the channels of the rooms it hosts) and drops them on sight: a byte
comparison with its origin marker, before anything is parsed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from rtctl.server.bus import RedisBus
from rtctl.server.manager import FanoutManager
from rtctl.state import wire
from rtctl.state.keys import Keys

log = logging.getLogger("rtctl.cluster")

CommandHandler = Callable[[dict[str, Any]], Awaitable[None]]


class ClusterManager(FanoutManager):
    def __init__(self, keys: Keys, node_id: str) -> None:
        super().__init__()
        self.keys = keys
        self.node_id = node_id
        self._own = wire.origin_marker(node_id)
        self.own_skipped = 0  # own publications received back and dropped
        self.bus: RedisBus | None = None
        self.on_command: CommandHandler | None = None
        self.foreign_dropped = 0
        self._commands: set[asyncio.Future[None]] = set()

    def attach(self, bus: RedisBus, on_command: CommandHandler) -> None:
        self.bus = bus
        self.on_command = on_command

    # routing out ---------------------------------------------------------------------------

    async def emit_encoded(
        self,
        packets: list[Any],
        namespace: str,
        room: str | None,
        skip_sid: str | list[str] | None = None,
    ) -> int:
        count = await super().emit_encoded(packets, namespace, room, skip_sid)
        if self.bus is not None and room is not None and not self.is_connected(room, namespace):
            skip = skip_sid if isinstance(skip_sid, list) else [s for s in (skip_sid,) if s]
            self.bus.publish(
                self.keys.room_channel(room), wire.encode_room(self.node_id, room, packets, skip)
            )
        return count

    # subscriptions follow local membership -------------------------------------------------

    async def enter_room(
        self, sid: str, namespace: str, room: str, eio_sid: str | None = None
    ) -> None:
        first = not self._hosts(namespace, room)
        await super().enter_room(sid, namespace, room, eio_sid=eio_sid)
        if first and room is not None and room != sid and self.bus is not None:
            await self.bus.subscribe(self.keys.room_channel(room))

    async def leave_room(self, sid: str, namespace: str, room: str) -> None:
        await super().leave_room(sid, namespace, room)
        await self._drop_if_empty(namespace, [room])

    async def disconnect(self, sid: str, namespace: str, **kwargs: Any) -> None:
        rooms = [r for r in self.get_rooms(sid, namespace) if r not in (None, sid)]
        await super().disconnect(sid, namespace, **kwargs)
        await self._drop_if_empty(namespace, rooms)

    def _hosts(self, namespace: str, room: str) -> bool:
        return bool(self.rooms.get(namespace, {}).get(room))

    async def _drop_if_empty(self, namespace: str, rooms: list[str]) -> None:
        if self.bus is None:
            return
        for room in rooms:
            if not self._hosts(namespace, room):
                await self.bus.unsubscribe(self.keys.room_channel(room))

    # routing in ----------------------------------------------------------------------------

    async def deliver(self, channel: str, message: bytes) -> None:
        """Bus handler: a room message or a command for this node."""
        if wire.is_from(message, self._own):  # our own emit, delivered locally already
            self.own_skipped += 1
            return
        try:
            kind = wire.kind_of(message)
            if kind == wire.ROOM:
                msg = wire.decode_room(message)
                if msg.origin == self.node_id:
                    return
                await super().emit_encoded(msg.packets, "/", msg.room, msg.skip)
            elif channel == self.keys.node_channel(self.node_id) and self.on_command is not None:
                # a command may wait (a call waits for the client's ack): run it aside, so
                # the listener keeps delivering room traffic meanwhile
                task = asyncio.ensure_future(self.on_command(wire.decode_command(message)))
                self._commands.add(task)
                task.add_done_callback(self._commands.discard)
        except wire.WireError as exc:
            self.foreign_dropped += 1
            log.warning("dropped a malformed message on %s: %s", channel, exc)
