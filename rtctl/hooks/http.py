"""A small keep-alive HTTP/1.1 client on asyncio and h11, for JSON to one host: the
app's auth hook and webhook endpoint, and a daemon's admin API (``rtctl.Client``).

The auth hook is asked on every connect that misses its cache, webhooks may come in
bursts, and an app's client sends batch after batch, so connections are kept open
and reused (up to ``max_idle`` of them). Every call has one deadline covering
connect, send and answer; past it the call fails and its connection is dropped,
never reused.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

import h11

from rtctl.errors import BackendUnavailable, ConfigError

READ_SIZE = 65536
MAX_ANSWER = 1024 * 1024  # the app's answer body, bytes


class AppUnreachable(BackendUnavailable):
    """The app did not answer in time, or its connection broke."""


@dataclass
class Answer:
    status: int
    body: bytes


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_ANSWER)

    def reusable(self) -> bool:
        return (
            self.h11.our_state is h11.DONE
            and self.h11.their_state is h11.DONE
            and not self.writer.is_closing()
        )

    def close(self) -> None:
        self.writer.transport.abort()


class KeptAliveHttp:
    """Requests to one host (``post`` to its URL); safe to use from many tasks at once."""

    def __init__(self, url: str, *, timeout: float, max_idle: int = 8) -> None:
        """``url``: what ``post`` posts to; ``request`` may reach any path of its host."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"{url!r} is not an http:// or https:// URL")
        self.url = url
        self.timeout = timeout
        self._tls = ssl.create_default_context() if parts.scheme == "https" else None
        self._host, self._netloc = parts.hostname, parts.netloc
        self._port = parts.port or (443 if self._tls else 80)
        self._target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.base_path = parts.path.rstrip("/")
        self._idle: list[_Connection] = []
        self._max_idle = max_idle

    async def post(self, body: bytes, headers: dict[str, str] | None = None) -> Answer:
        """The app's answer; ``AppUnreachable`` if it gives none within the timeout."""
        return await self.request("POST", self._target, body, headers)

    async def request(
        self,
        method: str,
        target: str,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> Answer:
        """Any request to the same host (``target`` is its path and query)."""
        try:
            async with asyncio.timeout(timeout or self.timeout):
                return await self._post((method, target), body, headers or {})
        except TimeoutError:
            raise AppUnreachable(
                f"{self._netloc} did not answer within {self.timeout:g}s", code="unavailable"
            ) from None

    async def _post(self, line: tuple[str, str], body: bytes, headers: dict[str, str]) -> Answer:
        if self._idle:
            try:
                return await self._use(self._idle.pop(), line, body, headers)
            except AppUnreachable:
                pass  # an idle connection the app has closed meanwhile: once more, on a new one
        return await self._use(await self._connect(), line, body, headers)

    async def _use(
        self, conn: _Connection, line: tuple[str, str], body: bytes, headers: dict[str, str]
    ) -> Answer:
        try:
            answer = await self._exchange(conn, line, body, headers)
        except (OSError, h11.ProtocolError) as exc:
            conn.close()
            raise AppUnreachable(f"{self._netloc}: {exc or type(exc).__name__}") from None
        except BaseException:
            conn.close()  # cancelled or timed out mid-exchange: its state is unknown
            raise
        self._release(conn)
        return answer

    async def _connect(self) -> _Connection:
        try:
            reader, writer = await asyncio.open_connection(self._host, self._port, ssl=self._tls)
        except OSError as exc:
            raise AppUnreachable(f"cannot reach {self._netloc}: {exc}") from None
        return _Connection(reader, writer)

    async def _exchange(
        self, conn: _Connection, line: tuple[str, str], body: bytes, headers: dict[str, str]
    ) -> Answer:
        sent = [("Host", self._netloc), ("Content-Length", str(len(body))),
                ("Content-Type", "application/json"), ("User-Agent", "rtctl"),
                *headers.items()]  # fmt: skip
        h = conn.h11
        method, target = line
        conn.writer.write(h.send(h11.Request(method=method, target=target, headers=sent)))
        conn.writer.write(h.send(h11.Data(data=body)))
        conn.writer.write(h.send(h11.EndOfMessage()))
        await conn.writer.drain()
        status, chunks, size = 0, [], 0
        while True:
            event = h.next_event()
            if event is h11.NEED_DATA:
                data = await conn.reader.read(READ_SIZE)
                h.receive_data(data)  # b"" means the peer closed: h11 raises or ends
                continue
            if isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.Data):
                size += len(event.data)
                if size > MAX_ANSWER:
                    raise h11.RemoteProtocolError(f"answer larger than {MAX_ANSWER} bytes")
                chunks.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                return Answer(status, b"".join(chunks))
            elif isinstance(event, h11.ConnectionClosed):
                raise ConnectionError("closed without answering")

    def _release(self, conn: _Connection) -> None:
        if conn.reusable() and len(self._idle) < self._max_idle:
            conn.h11.start_next_cycle()
            self._idle.append(conn)
        else:
            conn.close()

    def close(self) -> None:
        while self._idle:
            self._idle.pop().close()
