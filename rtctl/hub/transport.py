"""How the domain reaches connected clients; implemented by the daemon's Socket.IO layer."""

from __future__ import annotations

from typing import Any, Protocol


def user_room(user_id: str) -> str:
    return f"user:{user_id}"


def channel_room(channel_id: str) -> str:
    return f"channel:{channel_id}"


class Transport(Protocol):
    async def emit(self, event: str, data: Any, *, to: str, skip_sid: str | None = None) -> None:
        """Send to a room or a single session id."""

    async def enter_room(self, sid: str, room: str) -> None: ...
    async def leave_room(self, sid: str, room: str) -> None: ...
    async def disconnect(self, sid: str) -> bool:
        """Disconnect a session hosted here; False if this node does not host it."""

    async def reconnect(self, sid: str) -> bool:
        """Close a session's connection so that its client reconnects by itself (a
        Socket.IO client does not after a plain disconnect); False if not hosted here."""

    async def call(self, sid: str, event: str, data: Any, timeout: float) -> Any:
        """Emit to one session and wait for its ack; raise ``TimeoutError`` past ``timeout``."""

    def hosts(self, sid: str) -> bool:
        """True if the session is connected to this node."""
