"""A real python-socketio client for tests against a running daemon.

``LiveClient`` records every event the server sends it, so a test can wait for one
with a deadline instead of sleeping, and can answer (or refuse to answer) calls.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import socketio

from tests.conftest import DaemonProcess


async def until(
    check: Callable[[], Any], timeout: float = 5.0, what: str = "condition", interval: float = 0.02
) -> Any:
    """Poll ``check`` (sync or async) until it returns a truthy value; fail past ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if isinstance(value, Awaitable):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(interval)


async def http(d: DaemonProcess, method: str, path: str, body: Any = None, **kw: Any) -> Any:
    """The admin API from async code, off the event loop so clients keep receiving."""
    return await asyncio.to_thread(d.http, method, path, body, **kw)


class LiveClient:
    """One Socket.IO session with a record of what it received."""

    def __init__(self, daemon: DaemonProcess, token: str | None, **options: Any) -> None:
        self.daemon, self.token = daemon, token
        self.sio = socketio.AsyncClient(reconnection=False, handle_sigint=False, **options)
        self.events: list[tuple[str, Any]] = []
        self.disconnected = asyncio.Event()
        self.sid = ""
        self.replies: dict[str, Callable[..., Awaitable[Any]]] = {}
        self.sio.on("*", self._on_event)
        self.sio.on("disconnect", self._on_disconnect)
        self.sio.on("connect_error", self._on_connect_error)
        self.connect_errors: list[Any] = []

    async def _on_event(self, event: str, *args: Any) -> Any:
        self.events.append((event, args[0] if len(args) == 1 else list(args)))
        reply = self.replies.get(event)
        return await reply(*args) if reply is not None else None

    async def _on_disconnect(self, *args: Any) -> None:
        self.disconnected.set()

    async def _on_connect_error(self, data: Any = None) -> None:
        self.connect_errors.append(data)

    async def connect(self, transports: tuple[str, ...] = ("websocket",)) -> LiveClient:
        auth = {"token": self.token} if self.token is not None else None
        try:
            await self.sio.connect(
                self.daemon.url, auth=auth, transports=list(transports), wait_timeout=5
            )
        except BaseException:
            await self.close()
            raise
        sid = self.sio.get_sid()
        assert sid is not None
        self.sid = sid  # kept after a disconnect, which clears the client's own
        return self

    async def call(self, event: str, data: Any = None, timeout: float = 5.0) -> Any:
        return await self.sio.call(event, data, timeout=timeout)

    def received(self, event: str) -> list[Any]:
        return [data for name, data in self.events if name == event]

    async def next_event(
        self, event: str, match: Callable[[Any], bool] = lambda _: True, timeout: float = 5.0
    ) -> Any:
        found = await until(
            lambda: [d for d in self.received(event) if match(d)], timeout, f"event {event!r}"
        )
        return found[0]

    async def wait_disconnected(self, timeout: float = 5.0) -> None:
        await asyncio.wait_for(self.disconnected.wait(), timeout)

    async def close(self) -> None:
        if self.sio.connected:
            await self.sio.disconnect()
        await self.sio.shutdown()
        http = self.sio.eio.http  # left open by a connect that failed before the handshake
        if http is not None and not http.closed:
            await http.close()


async def connect(d: DaemonProcess, user: str = "alice", **claims: Any) -> LiveClient:
    return await LiveClient(d, d.token(user, **claims)).connect()
