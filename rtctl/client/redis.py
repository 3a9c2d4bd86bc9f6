"""The Python client straight on Redis, no daemon needed: emits to a user or room are
published where the nodes hosting it listen, as a daemon would publish them, and
pipelined (every emit made in one turn of the event loop goes in one round trip).
Everything else runs the same ``Operator`` code as a daemon's admin API."""

from __future__ import annotations

import asyncio
import os
import socket
from typing import Any

from rtctl.errors import BackendUnavailable
from rtctl.hooks.cache import RedisHookCache
from rtctl.hub import payload as p
from rtctl.hub.operator import Operator
from rtctl.state.redis import RedisState
from rtctl.state.redis_peers import RedisPeers, RoomPublisher, room_message
from rtctl.state.redis_url import open_client

MAX_PIPELINE = 2000


class RedisWay:
    def __init__(self, url: str, *, prefix: str, cluster: bool, timeout: float) -> None:
        self.origin = f"client-{socket.gethostname()}-{os.getpid()}-{os.urandom(3).hex()}"
        self.cluster = cluster
        self.redis = open_client(url, cluster=cluster)
        self.state = RedisState(self.redis, prefix, self.origin)
        self.keys = self.state.keys
        self.peers = RedisPeers(self.redis, self.keys, self.state.live_node_ids, sharded=cluster)
        self.operator = Operator(self.state, self.peers, RoomPublisher(self.peers, self.keys,
                                 self.origin), call_timeout=timeout,
                                 hook_cache=RedisHookCache(self.redis, self.keys))  # fmt: skip
        self._pending: list[tuple[str, bytes, asyncio.Future[None]]] = []
        self._scheduled = False
        self._sending: set[asyncio.Task[None]] = set()

    async def emit_to_room(self, event: str, data: Any, room: str) -> None:
        p.event_name(event)
        message = room_message(self.origin, room, event, data)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((self.keys.room_channel(room), message, future))
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)
        await future

    def _flush(self) -> None:
        self._scheduled = False
        while self._pending:
            batch, self._pending = self._pending[:MAX_PIPELINE], self._pending[MAX_PIPELINE:]
            task = asyncio.ensure_future(self._publish(batch))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)

    async def _publish(self, batch: list[tuple[str, bytes, asyncio.Future[None]]]) -> None:
        try:
            if self.cluster:  # shard channels live on different nodes: one call each
                await asyncio.gather(*(self.redis.spublish(c, m) for c, m, _ in batch))
            else:
                pipe = self.redis.pipeline(transaction=False)
                for channel, message, _ in batch:
                    pipe.publish(channel, message)
                await pipe.execute()
        except Exception as exc:
            failure = BackendUnavailable(f"Redis: {type(exc).__name__}: {exc}")
            for *_, future in batch:
                if not future.done():
                    future.set_exception(failure)
            return
        for *_, future in batch:
            if not future.done():
                future.set_result(None)

    async def close(self) -> None:
        if self._sending:
            await asyncio.gather(*self._sending, return_exceptions=True)
        await self.state.close()
