"""The Python client straight on Redis, no daemon needed: an emit to a user or room is
published where the nodes hosting it listen, encoded as a daemon would encode it.
Emits are queued and published in order, many per script call (``rtctl.client.outbox``).
Everything else runs the same ``Operator`` code as a daemon's admin API."""

from __future__ import annotations

import asyncio
import json
import os
import socket
from typing import Any

from rtctl.auth import valid_id
from rtctl.client.outbox import Outbox
from rtctl.errors import UsageError
from rtctl.hooks.cache import RedisHookCache
from rtctl.hub import payload as p
from rtctl.hub.operator import Operator
from rtctl.state import wire
from rtctl.state.redis import RedisState
from rtctl.state.redis_faults import backend_call
from rtctl.state.redis_peers import RedisPeers, RoomPublisher, room_message
from rtctl.state.redis_url import open_client

MAX_PIPELINE = 500  # emits per script call: Redis runs it in well under a millisecond
PUBLISH_ALL = """
for i = 1, #ARGV, 2 do
  redis.call('PUBLISH', ARGV[i], ARGV[i + 1])
end
return #ARGV / 2
"""
MAX_QUEUED = 20_000
_dumps = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode


def encode_emit(origin: str, room: str, event: str, data: Any) -> bytes:
    """The room message of one emit; a text event skips socket.io's generic encoder."""
    try:
        packet = ("2" + _dumps([event, data])).encode()
    except TypeError:  # bytes in the data: a binary event, with attachments
        return room_message(origin, room, event, data)
    except ValueError as exc:  # NaN or Infinity, which no JSON parser accepts
        raise UsageError(f"data is not JSON: {exc}") from None
    return wire.encode_room_text(origin, room, packet)


class RedisWay:
    def __init__(self, url: str, *, prefix: str, cluster: bool, timeout: float) -> None:
        self.origin = f"client-{socket.gethostname()}-{os.getpid()}-{os.urandom(3).hex()}"
        self.cluster = cluster
        self.redis = open_client(url, cluster=cluster)
        self.state = RedisState(self.redis, prefix, self.origin)
        self.keys = self.state.keys
        self.peers = RedisPeers(self.redis, self.keys, self.state.live_node_ids, sharded=cluster,
                                origin=self.origin)  # fmt: skip
        self.operator = Operator(self.state, self.peers, RoomPublisher(self.peers, self.keys,
                                 self.origin), call_timeout=timeout,
                                 hook_cache=RedisHookCache(self.redis, self.keys))  # fmt: skip
        self._publish_all = self.redis.register_script(PUBLISH_ALL)
        self.outbox: Outbox[tuple[str, bytes]] = Outbox(
            self._publish, max_batch=MAX_PIPELINE, max_queued=MAX_QUEUED, give_up=timeout
        )

    async def emit_to_room(self, event: str, data: Any, room: str) -> None:
        p.event_name(event)
        message = encode_emit(self.origin, valid_id(room, "room"), event, data)
        await self.outbox.put((self.keys.room_channel(room), message))

    @backend_call
    async def _publish(self, batch: list[tuple[str, bytes]]) -> None:
        if self.cluster:  # shard channels live on different nodes: one call each
            await asyncio.gather(*(self.redis.spublish(c, m) for c, m in batch))
            return
        # one script call publishes the whole batch: Redis answers once, not per emit
        await self._publish_all(args=[x for pair in batch for x in pair])

    async def flush(self) -> None:
        await self.outbox.flush()

    async def close(self) -> None:
        try:
            await self.outbox.close()
        finally:
            await self.state.close()
