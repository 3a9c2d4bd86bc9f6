"""Commands to the nodes of a Redis deployment, over each node's pub/sub channel.

A request publishes ``{op, reply, …}`` on the owner's channel and waits on the reply
list; PUBLISH reports how many subscribers received the message, so a node that is
gone is known at once (no listener) rather than after a timeout. A node runs its own
commands in-process. Used by the daemons and by the CLI, which needs no daemon.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from rtctl.errors import OperationFailed
from rtctl.hub.peers import CommandHandler
from rtctl.state import wire
from rtctl.state.keys import Keys

REPLY_TTL = 60  # seconds a reply waits for a requester that gave up
BLOCK_SLICE = 2.0  # BLPOP in slices shorter than the client's socket timeout


class RedisPeers:
    def __init__(
        self,
        client: Any,
        keys: Keys,
        live_nodes: Callable[[], Awaitable[list[str]]],
        *,
        sharded: bool = False,
        node_id: str | None = None,
        local: CommandHandler | None = None,
        origin: str | None = None,
    ) -> None:
        self.redis = client
        self.keys = keys
        self.live_nodes = live_nodes
        self.sharded = sharded
        self.node_id = node_id
        self.local = local
        self.origin = origin or node_id  # who sends the commands, for the nodes' audit

    async def publish(self, channel: str, message: bytes) -> int:
        if self.sharded:
            return int(await self.redis.spublish(channel, message))
        return int(await self.redis.publish(channel, message))

    async def request(
        self, node_id: str, op: str, fields: dict[str, Any], timeout: float
    ) -> dict[str, Any] | None:
        if node_id == self.node_id and self.local is not None:
            return await self.local({"op": op, **fields})
        reply_key = self.keys.reply(uuid.uuid4().hex)
        extra = {"from": self.origin} if self.origin else {}
        message = wire.encode_command(op, reply=reply_key, **extra, **fields)
        if await self.publish(self.keys.node_channel(node_id), message) == 0:
            return None  # nobody listens on that node's channel: the node is gone
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            got = await self.redis.blpop([reply_key], timeout=min(BLOCK_SLICE, remaining))
            if got is not None:
                reply = json.loads(got[1])
                return (
                    reply
                    if isinstance(reply, dict)
                    else {"error": {"code": "failed", "message": "bad reply"}}
                )
        raise OperationFailed(f"node {node_id} did not answer within {timeout:g}s", code="timeout")

    async def request_all(
        self, op: str, fields: dict[str, Any], timeout: float
    ) -> list[dict[str, Any]]:
        nodes = await self.live_nodes()
        answers = await asyncio.gather(
            *(self.request(n, op, fields, timeout) for n in nodes), return_exceptions=True
        )
        return [a for a in answers if isinstance(a, dict)]

    async def answer(self, command: dict[str, Any], handler: CommandHandler) -> None:
        """Run a command received on this node's channel and send the reply, if asked for."""
        result = await handler(command)
        reply_key = command.get("reply")
        if isinstance(reply_key, str) and reply_key.startswith(self.keys.reply("")):
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.rpush(reply_key, json.dumps(result, default=str))
                pipe.expire(reply_key, REPLY_TTL)
                await pipe.execute()


def room_message(
    origin: str, room: str, event: str, data: Any, skip: list[str] | None = None
) -> bytes:
    """An emit to ``room`` encoded as the nodes expect it on the room's channel."""
    from engineio import packet as eio_packet
    from socketio import packet as sio_packet

    encoded = sio_packet.Packet(sio_packet.EVENT, namespace="/", data=[event, data]).encode()
    parts = encoded if isinstance(encoded, list) else [encoded]
    packets = [eio_packet.Packet(eio_packet.MESSAGE, part) for part in parts]
    return wire.encode_room(origin, room, packets, skip or [])


class RoomPublisher:
    """Emits to a room by publishing it, encoded as a daemon would, on the room's channel
    (the CLI and the Python client, which have no Socket.IO server of their own)."""

    def __init__(self, peers: RedisPeers, keys: Keys, origin: str) -> None:
        self.peers, self.keys, self.origin = peers, keys, origin

    async def emit(self, event: str, data: Any, *, to: str, skip_sid: str | None = None) -> None:
        message = room_message(self.origin, to, event, data, [skip_sid] if skip_sid else [])
        await self.peers.publish(self.keys.room_channel(to), message)
