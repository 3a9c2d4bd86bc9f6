"""A small streaming HTTP/1.1 client for upstream relays, on asyncio and h11.

h11 already comes with uvicorn, so the daemon needs no HTTP client library. One
request per connection (``Connection: close``); the connection is aborted the moment
the caller leaves the ``post_stream`` block, including by cancellation: a stopped
task closes its upstream connection at once, not after the upstream finishes.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import h11

from rtctl.errors import OperationFailed

READ_SIZE = 65536


class UpstreamError(OperationFailed):
    """The upstream could not be reached, answered badly, or went quiet."""

    code = "upstream_error"


@dataclass
class StreamingResponse:
    status: int
    headers: dict[str, str]
    _conn: h11.Connection
    _reader: asyncio.StreamReader
    _idle_timeout: float

    async def _next(self) -> Any:
        while True:
            event = self._conn.next_event()
            if event is not h11.NEED_DATA:
                return event
            try:
                data = await asyncio.wait_for(self._reader.read(READ_SIZE), self._idle_timeout)
            except TimeoutError:
                raise UpstreamError(
                    f"the upstream sent nothing for {self._idle_timeout:g}s", code="timeout"
                ) from None
            self._conn.receive_data(data)

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body, as it arrives; raises ``UpstreamError`` if it is cut short."""
        while True:
            try:
                event = await self._next()
            except h11.RemoteProtocolError as exc:
                raise UpstreamError(f"the upstream connection broke: {exc}") from None
            if isinstance(event, h11.Data):
                yield bytes(event.data)
            elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                return

    async def read(self, limit: int = 65536) -> bytes:
        out = b""
        async for chunk in self.chunks():
            out += chunk
            if len(out) >= limit:
                return out[:limit]
        return out


@asynccontextmanager
async def post_stream(
    url: str,
    body: bytes,
    headers: dict[str, str],
    *,
    connect_timeout: float = 10.0,
    idle_timeout: float = 120.0,
) -> AsyncIterator[StreamingResponse]:
    """POST ``body`` to ``url`` and yield the response as it streams in."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UpstreamError(f"{url!r} is not an http:// or https:// URL")
    tls = parts.scheme == "https"
    port = parts.port or (443 if tls else 80)
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(
                parts.hostname, port, ssl=ssl.create_default_context() if tls else None
            ),
            connect_timeout,
        )
    except (OSError, TimeoutError) as exc:
        reason = str(exc) or type(exc).__name__
        raise UpstreamError(f"cannot reach the upstream at {parts.netloc}: {reason}") from None
    try:
        conn = h11.Connection(h11.CLIENT)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        sent = [("Host", parts.netloc), ("Content-Length", str(len(body))),
                ("Connection", "close"), ("User-Agent", "rtctl"),
                *headers.items()]  # fmt: skip
        writer.write(conn.send(h11.Request(method="POST", target=target, headers=sent)))
        writer.write(conn.send(h11.Data(data=body)))
        writer.write(conn.send(h11.EndOfMessage()))
        try:
            await asyncio.wait_for(writer.drain(), connect_timeout)
            response = StreamingResponse(0, {}, conn, reader, idle_timeout)
            while True:
                event = await response._next()
                if isinstance(event, h11.Response):
                    break
                if isinstance(event, h11.ConnectionClosed):
                    raise UpstreamError("the upstream closed the connection without answering")
        except (OSError, h11.RemoteProtocolError) as exc:
            raise UpstreamError(f"the upstream connection broke: {exc}") from None
        response.status = event.status_code
        response.headers = {k.decode().lower(): v.decode("latin-1") for k, v in event.headers}
        yield response
    finally:
        writer.transport.abort()  # at once: no lingering, no waiting for the peer


def sse_events(buffer: str) -> tuple[list[str], str]:
    """Complete ``data:`` payloads in ``buffer`` (Server-Sent Events), and the rest."""
    out: list[str] = []
    *lines, rest = buffer.replace("\r\n", "\n").split("\n")
    for line in lines:
        if line.startswith("data:"):
            out.append(line[5:].strip())
    return out, rest
