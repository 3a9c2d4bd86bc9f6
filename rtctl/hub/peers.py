"""Reaching the daemons of a deployment: commands a node runs for its own sessions.

A session lives on exactly one node, so kicking it, calling it or emitting to it
alone is a command to that node. Commands and their replies are plain JSON::

    kick    {sids}                       -> {kicked: [...], not_found: [...]}
    emit    {sid, event, data}           -> {delivered: 0 | 1}
    call    {sid, event, data, timeout}  -> {reply} | {error: {code, message}}
    revoke  {jti} | {user}               -> {disconnected: [...]}
    tasks_stop {ids}                     -> {stopped: [...], not_found: [...]}

``LocalPeers`` serves the embedded mode (one node: itself); the Redis deployment
carries commands over each node's pub/sub channel (``rtctl.state.redis_peers``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from rtctl.errors import NotFound, OperationFailed, RateLimited, RtctlError, UsageError

Command = dict[str, Any]
CommandHandler = Callable[[Command], Awaitable[dict[str, Any]]]
OPS = frozenset({"kick", "emit", "call", "revoke", "rooms", "tasks_start", "tasks_stop"})


class Peers(Protocol):
    async def request(
        self, node_id: str, op: str, fields: dict[str, Any], timeout: float
    ) -> dict[str, Any] | None:
        """Run a command on one node and return its reply; None if no such node listens."""

    async def request_all(
        self, op: str, fields: dict[str, Any], timeout: float
    ) -> list[dict[str, Any]]:
        """Run a command on every live node; the replies of those that answered."""


class LocalPeers:
    """The embedded deployment: a single node, which runs commands in-process."""

    def __init__(self, node_id: str, handler: CommandHandler) -> None:
        self.node_id = node_id
        self.handler = handler

    async def request(
        self, node_id: str, op: str, fields: dict[str, Any], timeout: float
    ) -> dict[str, Any] | None:
        if node_id != self.node_id:
            return None
        return await self.handler({"op": op, **fields})

    async def request_all(
        self, op: str, fields: dict[str, Any], timeout: float
    ) -> list[dict[str, Any]]:
        return [await self.handler({"op": op, **fields})]


_ERRORS: dict[str, type[RtctlError]] = {
    "not_found": NotFound,
    "invalid_request": UsageError,
    "rate_limited": RateLimited,
    "too_many_tasks": RateLimited,
}


def raise_for_error(reply: dict[str, Any]) -> dict[str, Any]:
    """A reply carrying ``{error}`` becomes the matching exception (by code)."""
    error = reply.get("error")
    if isinstance(error, dict):
        code = str(error.get("code", "failed"))
        cls = _ERRORS.get(code, OperationFailed)
        raise cls(str(error.get("message", "the node refused the command")), code=code)
    return reply
