"""The hub's Engine.IO server: engine.io's, with the bounds a hub needs.

* Session ids never begin with ``-``.
* Closing a connection never waits for its client: engine.io's ``disconnect`` waits until
  the client has taken everything queued, which a long-polling client that does not poll
  again never does (the close, and whatever waited on it, hung for good).
* A long-polling client's unread output is bounded (``max_unsent_bytes``): between its
  polls, packets wait in the connection's queue; past the bound the connection is closed.
  (A WebSocket's are bounded by its protocol, ``rtctl.server.protocols``.)
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import engineio
from engineio import packet as eio_packet

log = logging.getLogger("rtctl.sio")


@dataclass
class Backlog:
    """What waits in one long-polling connection's queue."""

    bytes: int = 0
    largest: int = 0  # one message larger than the bound (a document's state) still goes
    cut: bool = False


class HubEngine(engineio.AsyncServer):
    """Engine.IO server whose session ids never begin with ``-``, which closes without
    waiting on the client, and which bounds a long-polling client's unread output.

    Engine.IO ids are URL-safe base64, so one in 64 would begin with ``-`` and read as
    an option when an operator passes it to ``rtctl sessions kick``. Drawing again keeps
    the ids uniform over the rest of the alphabet and unique (a sequence number is in each).
    """

    max_unsent = 4 << 20  # set from settings (max_unsent_bytes) by rtctl.server.lifecycle

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._backlogs: weakref.WeakKeyDictionary[Any, Backlog] = weakref.WeakKeyDictionary()
        self._cutting: set[asyncio.Future[None]] = set()
        self.on_slow: Callable[[], None] = lambda: None

    def generate_id(self) -> str:
        while True:
            sid: str = super().generate_id()
            if not sid.startswith("-"):
                return sid

    async def disconnect(self, sid: str | None = None) -> None:
        """Close a connection (every one without ``sid``) without waiting for its client.

        A long-polling client is sent engine.io's CLOSE packet with its next poll. A
        WebSocket client ignores that packet, and engine.io would close the WebSocket only
        once the client sent again: its writer is ended instead, which closes the WebSocket
        once what is already queued is written, and before the disconnect handlers run
        (they may wait on a stalled Redis).
        """
        if sid is None:
            for one in list(self.sockets):
                await self.disconnect(one)
            return
        socket = self.sockets.get(sid)
        if socket is None:
            return
        if socket.upgraded:
            socket.queue.put_nowait(None)  # the writer's end: it closes the WebSocket
        await socket.close(wait=False, abort=socket.upgraded, reason=self.reason.SERVER_DISCONNECT)
        self.sockets.pop(sid, None)

    async def send_packet(self, sid: str, pkt: eio_packet.Packet) -> None:
        socket = self.sockets.get(sid)
        if socket is not None and not socket.upgraded and self._too_far_behind(socket, pkt):
            return
        await super().send_packet(sid, pkt)

    def _too_far_behind(self, socket: Any, pkt: eio_packet.Packet) -> bool:
        """Count ``pkt`` into the connection's backlog; True (and the connection is being
        closed) if the client has left more than ``max_unsent`` bytes unread.

        A poll takes the whole queue, so an empty queue means the client took all of it.
        """
        backlog = self._backlogs.get(socket)
        if backlog is None or socket.queue.empty():
            backlog = self._backlogs[socket] = Backlog(cut=backlog is not None and backlog.cut)
        if backlog.cut:
            return True
        if backlog.bytes > self.max_unsent + backlog.largest:
            backlog.cut = True
            log.info("closing connection %s: %d bytes unread (max_unsent_bytes)",
                     socket.sid, backlog.bytes)  # fmt: skip
            self.on_slow()
            self._later(self.disconnect(socket.sid))  # not in the emit that found it
            return True
        data = pkt.data
        size = len(data) if isinstance(data, str | bytes) else 0
        backlog.bytes += size
        backlog.largest = max(backlog.largest, size)
        return False

    def _later(self, work: Any) -> None:
        task = asyncio.ensure_future(work)
        self._cutting.add(task)
        task.add_done_callback(self._cutting.discard)
