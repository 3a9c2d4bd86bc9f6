"""Checking the shape of client payloads: every field typed and bounded."""

from __future__ import annotations

from typing import Any

from rtctl.auth import valid_id
from rtctl.errors import UsageError

MAX_EVENT_NAME = 128
# Names Socket.IO clients reserve for their own lifecycle; an emitted event of that
# name would fire the client's connect/disconnect handlers.
RESERVED_EVENT_NAMES = frozenset(
    {"connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener"}
)


def obj(data: Any, what: str = "payload") -> dict[str, Any]:
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UsageError(f"{what} must be an object")
    return data


def ident(data: dict[str, Any], key: str) -> str:
    return valid_id(data.get(key), key)


def opt_ident(data: dict[str, Any], key: str) -> str | None:
    value = data.get(key)
    return None if value is None else valid_id(value, key)


def token_of(data: Any) -> Any:
    """The token in ``{auth: {token}}`` (or ``{token}``), unchecked."""
    data = obj(data)
    auth = data.get("auth", data)
    return auth.get("token") if isinstance(auth, dict) else None


def event_name(value: Any) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_EVENT_NAME:
        raise UsageError(f"event must be a name of 1 to {MAX_EVENT_NAME} characters")
    if not value.isprintable():
        raise UsageError("event name contains control characters")
    if value in RESERVED_EVENT_NAMES:
        raise UsageError(f"event name {value!r} is reserved by Socket.IO")
    return value
