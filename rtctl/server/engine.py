"""The hub's Engine.IO server: engine.io's, with the bounds and refusals a hub needs.

* Session ids never begin with ``-``.
* Closing a connection never waits for its client: engine.io's ``disconnect`` waits until
  the client has taken everything queued, which a long-polling client that does not poll
  again never does (the close, and whatever waited on it, hung for good).
* A long-polling client's unread output is bounded (``max_unsent_bytes``): between its
  polls, packets wait in the connection's queue; past the bound the connection is closed.
  (A WebSocket's are bounded by its protocol, ``rtctl.server.protocols``.)
* A polling POST larger than ``max_payload`` is answered 413, and one that does not decode
  400, each with one log line; engine.io gave the first no answer at all, and the second
  a traceback in the log per request.
"""

from __future__ import annotations

import asyncio
import logging
import urllib.parse
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import engineio
from engineio import packet as eio_packet
from engineio import payload as eio_payload

log = logging.getLogger("rtctl.sio")

ASGIReceive = Callable[[], Any]
ASGISend = Callable[[dict[str, Any]], Any]
# What a client may send over long-polling (engine.io refuses the rest, or fails on it).
CLIENT_PACKETS = frozenset({eio_packet.CLOSE, eio_packet.PONG, eio_packet.MESSAGE,
                            eio_packet.UPGRADE})  # fmt: skip


@dataclass
class Backlog:
    """What waits in one long-polling connection's queue."""

    bytes: int = 0
    largest: int = 0  # one message larger than the bound (a document's state) still goes
    cut: bool = False


class HubEngine(engineio.AsyncServer):
    """Engine.IO server whose session ids never begin with ``-``, and which closes and
    refuses without waiting on the client (see the module).

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

    async def handle_request(self, *args: Any, **kwargs: Any) -> Any:
        """Answer an ASGI request; a long-polling POST's body is read and checked first."""
        scope, receive, send = args
        socket = self._polling_socket(scope)
        if socket is not None:
            body = await self._polling_body(socket, scope, receive, send)
            if body is None:
                return None  # answered, or the client is gone
            scope, receive = _replayed(scope, receive, body)
        return await super().handle_request(scope, receive, send, **kwargs)

    def _polling_socket(self, scope: dict[str, Any]) -> Any:
        """The open long-polling connection a POST is for, if it is one."""
        if scope.get("type") != "http" or scope.get("method") != "POST":
            return None
        query = urllib.parse.parse_qs(scope.get("query_string", b"").decode("latin-1"))
        sid = (query.get("sid") or [None])[0]
        socket = self.sockets.get(sid) if sid else None
        if socket is None or not socket.connected or socket.upgraded:
            return None  # engine.io answers these itself, without reading a body
        return socket

    async def _polling_body(
        self, socket: Any, scope: dict[str, Any], receive: ASGIReceive, send: ASGISend
    ) -> bytes | None:
        """The POST's body if it is a well-formed payload within ``max_payload``; otherwise
        the client is answered (413 or 400) and its connection closed, and None returned."""
        limit = self.max_http_buffer_size
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await self._refuse(socket, send, 413, f"payload over {limit} bytes")
            return None
        body = bytearray()
        more = True
        while more:
            event = await receive()
            if event["type"] != "http.request":
                return None  # the client went away
            body += event.get("body", b"")
            more = bool(event.get("more_body"))
            if len(body) > limit:
                await self._refuse(socket, send, 413, f"payload over {limit} bytes")
                return None
        problem = _payload_problem(bytes(body))
        if problem is not None:
            await self._refuse(socket, send, 400, problem)
            return None
        return bytes(body)

    async def _refuse(self, socket: Any, send: ASGISend, status: int, reason: str) -> None:
        log.info("closing connection %s: polling request refused (%d, %s)", socket.sid,
                 status, reason)  # fmt: skip
        headers = [(b"content-type", b"text/plain"), (b"connection", b"close")]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": reason.encode()})
        await self.disconnect(socket.sid)  # a packet was lost: the client must start afresh


def _content_length(scope: dict[str, Any]) -> int | None:
    for name, value in scope.get("headers") or ():
        if name.lower() == b"content-length":
            return int(value) if value.isdigit() else None
    return None


def _payload_problem(body: bytes) -> str | None:
    """Why a long-polling payload cannot be taken, or None if engine.io can take it."""
    try:
        packets = eio_payload.Payload(encoded_payload=body.decode("utf-8")).packets
    except (ValueError, KeyError, IndexError) as exc:  # bad UTF-8, JSON, base64, count
        return f"malformed payload ({type(exc).__name__})"
    for pkt in packets:
        if pkt.packet_type not in CLIENT_PACKETS:
            return f"unexpected packet type {pkt.packet_type!r}"
    return None


def _replayed(
    scope: dict[str, Any], receive: ASGIReceive, body: bytes
) -> tuple[dict[str, Any], ASGIReceive]:
    """The request as engine.io reads it: its body already read, and its length stated
    (a chunked body has none, and engine.io would read nothing)."""
    headers = [(n, v) for n, v in scope.get("headers") or ()
               if n.lower() not in (b"content-length", b"transfer-encoding")]  # fmt: skip
    headers.append((b"content-length", str(len(body)).encode()))
    given = False

    async def again() -> Any:
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return {**scope, "headers": headers}, again
