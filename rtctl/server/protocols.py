"""The daemon's own HTTP and WebSocket protocols: uvicorn's, with the bounds a hub needs.

uvicorn takes its protocol classes as settings (``http=``, ``ws=``); these subclasses
add what it lacks:

* the time a client may take to send a request's headers (``header_timeout``). uvicorn
  times out an idle keep-alive connection, but a connection that trickles its headers, or
  sends nothing at all, is held for good, one file descriptor each;
* the bytes a WebSocket client may leave unread (``max_unsent_bytes``). uvicorn makes a
  send wait while the client does not read, and engine.io queues every later packet
  behind that wait without bound. Here a send never waits: what the client has not read
  stays in the transport's buffer, which is measured, and a connection past the bound is
  cut. A closed connection whose client never reads its close is cut too, where uvicorn
  would wait for its buffer to drain (for ever, if the client only stopped reading).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

log = logging.getLogger("rtctl.transport")

CLOSE_GRACE = 10.0  # seconds a closed WebSocket has to take its close frame before it is cut


class HubHttpProtocol(HttpToolsProtocol):
    """HTTP/1.1 whose request headers must arrive within ``header_timeout`` seconds,
    and whose responses may not wait on a client that stops reading for more than
    ``write_timeout`` seconds (a long-polling GET whose client went quiet).

    The header clock starts when the connection opens and when a new request on it
    begins, and stops when the headers are complete (a WebSocket upgrade included).
    The write clock runs while the transport has paused writing for a full buffer.
    """

    header_timeout = 10.0
    write_timeout = 30.0
    _header_timer: asyncio.TimerHandle | None = None
    _write_timer: asyncio.TimerHandle | None = None

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._write_timer is None:
            loop = asyncio.get_running_loop()
            self._write_timer = loop.call_later(self.write_timeout, self._write_stalled)

    def resume_writing(self) -> None:
        if self._write_timer is not None:
            self._write_timer.cancel()
            self._write_timer = None
        super().resume_writing()

    def _write_stalled(self) -> None:
        self._write_timer = None
        log.info("closing connection from %s: it read nothing for %gs (write_timeout)",
                 _address(self.client), self.write_timeout)  # fmt: skip
        self.transport.abort()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_timer()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._header_timer is None:
            self._arm_header_timer()

    def on_headers_complete(self) -> None:
        self._cancel_header_timer()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        if self._write_timer is not None:
            self._write_timer.cancel()
            self._write_timer = None
        super().connection_lost(exc)

    def _arm_header_timer(self) -> None:
        loop = asyncio.get_running_loop()
        self._header_timer = loop.call_later(self.header_timeout, self._headers_late)

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_late(self) -> None:
        self._header_timer = None
        log.debug("closing connection from %s: no request headers within %gs",
                  _address(self.client), self.header_timeout)  # fmt: skip
        self.transport.abort()  # close() would wait to flush for a client that is not reading


class HubWebSocketProtocol(WebSocketsSansIOProtocol):
    """A WebSocket whose unread output is bounded by bytes, not by a writer that waits.

    A send fails, and the connection is cut, when the bytes the client has not taken
    exceed ``max_unsent`` plus the largest message among them: one message larger than
    the bound (a document's state) still reaches a client that reads it.
    """

    max_unsent = 4 << 20
    _largest = 0  # the largest message written since the buffer was last empty
    _lost = False
    _abort_timer: asyncio.TimerHandle | None = None

    @staticmethod
    def on_slow() -> None:
        """Called once per connection cut for being too far behind (a metric)."""

    def pause_writing(self) -> None:
        """Sends do not wait for the client (see the class): nothing to pause."""

    def resume_writing(self) -> None:
        """Sends do not wait for the client: nothing to resume."""

    async def send(self, message: Any) -> None:
        if message["type"] == "websocket.send" and self._too_far_behind(message):
            raise OSError("the client is not reading; connection closed")
        await super().send(message)
        if message["type"] == "websocket.close" and self._abort_timer is None and not self._lost:
            loop = asyncio.get_running_loop()
            self._abort_timer = loop.call_later(CLOSE_GRACE, self._abort_if_open)

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        if self._abort_timer is not None:
            self._abort_timer.cancel()
            self._abort_timer = None
        super().connection_lost(exc)

    def _too_far_behind(self, message: Any) -> bool:
        transport = self.transport
        if transport is None or transport.is_closing():
            return False  # uvicorn's send answers a closed connection itself
        unsent = transport.get_write_buffer_size()
        if unsent == 0:
            self._largest = 0
        if unsent > self.max_unsent + self._largest:
            log.info("closing connection from %s: %d bytes unread (max_unsent_bytes)",
                     _address(self.client), unsent)  # fmt: skip
            self.on_slow()
            transport.abort()
            return True
        data = message.get("bytes") or message.get("text") or b""
        self._largest = max(self._largest, len(data))
        return False

    def _abort_if_open(self) -> None:
        self._abort_timer = None
        if not self._lost:
            self.transport.abort()


def _address(client: tuple[str, int] | None) -> str:
    return f"{client[0]}:{client[1]}" if client else "unknown"


def protocol_classes(
    *,
    header_timeout: float,
    max_unsent: int,
    on_slow: Callable[[], None],
    write_timeout: float = 30.0,
) -> tuple[type[HubHttpProtocol], type[HubWebSocketProtocol]]:
    """The HTTP and WebSocket protocol classes to hand uvicorn, with these bounds."""

    class HttpProtocol(HubHttpProtocol):
        pass

    class WebSocketProtocol(HubWebSocketProtocol):
        pass

    HttpProtocol.header_timeout = header_timeout
    HttpProtocol.write_timeout = write_timeout
    WebSocketProtocol.max_unsent = max_unsent
    WebSocketProtocol.on_slow = staticmethod(on_slow)  # type: ignore[method-assign]
    return HttpProtocol, WebSocketProtocol
