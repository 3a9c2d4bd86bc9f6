"""The hub's Engine.IO server: engine.io's, with the behaviour a hub needs.

* Session ids never begin with ``-``.
* Closing a connection never waits for its client: engine.io's ``disconnect`` waits until
  the client has taken everything queued, which a long-polling client that does not poll
  again never does (the close, and whatever waited on it, hung for good).
"""

from __future__ import annotations

import engineio


class HubEngine(engineio.AsyncServer):
    """Engine.IO server whose session ids never begin with ``-``, and which closes
    without waiting on the client (see the module).

    Engine.IO ids are URL-safe base64, so one in 64 would begin with ``-`` and read as
    an option when an operator passes it to ``rtctl sessions kick``. Drawing again keeps
    the ids uniform over the rest of the alphabet and unique (a sequence number is in each).
    """

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
