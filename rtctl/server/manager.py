"""The Socket.IO client manager: who is in which room on this node, and fan-out.

python-socketio's stock manager emits to a room by creating one asyncio task per
recipient. Here a room emit encodes the packet once and hands it to each
recipient's Engine.IO queue in a plain loop (queueing never suspends), which is
the same delivery without a task per recipient. The Redis deployment subclasses
this manager to route emits between nodes.
"""

from __future__ import annotations

from typing import Any

import socketio
from engineio import packet as eio_packet
from socketio import packet as sio_packet

from rtctl.server.taps import Taps


class FanoutManager(socketio.AsyncManager):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.taps = Taps()
        self.deliveries = 0  # events handed to a local session, since start

    async def emit(
        self,
        event: str,
        data: Any,
        namespace: str,
        room: str | None = None,
        skip_sid: str | list[str] | None = None,
        callback: Any = None,
        to: str | None = None,
        **kwargs: Any,
    ) -> None:
        room = to or room
        if callback is not None:
            # acks need a packet per recipient; the stock path handles that
            await super().emit(
                event, data, namespace, room=room, skip_sid=skip_sid, callback=callback, **kwargs
            )
            return
        await self.emit_encoded(self.encode(event, data, namespace), namespace, room, skip_sid)

    def encode(self, event: str, data: Any, namespace: str = "/") -> list[eio_packet.Packet]:
        """The Engine.IO packets of one event (a text packet, then any binary attachments)."""
        if isinstance(data, tuple):
            args = list(data)
        elif data is not None:
            args = [data]
        else:
            args = []
        pkt = self.server.packet_class(sio_packet.EVENT, namespace=namespace, data=[event, *args])
        encoded = pkt.encode()
        if not isinstance(encoded, list):
            encoded = [encoded]
        return [eio_packet.Packet(eio_packet.MESSAGE, p) for p in encoded]

    async def emit_encoded(
        self,
        packets: list[eio_packet.Packet],
        namespace: str,
        room: str | None,
        skip_sid: str | list[str] | None = None,
    ) -> int:
        """Queue already-encoded packets for every local participant; returns how many."""
        if room is not None and self.taps.rooms:
            self.taps.offer(room, packets)
        skip = set(skip_sid) if isinstance(skip_sid, list) else {skip_sid}
        send = self.server.eio.send_packet
        count = 0
        for sid, eio_sid in list(self.get_participants(namespace, room)):
            if sid in skip:
                continue
            for p in packets:
                await send(eio_sid, p)
            count += 1
        self.deliveries += count
        return count
