"""``RedisRemote.follow``: the events delivered to a room, read straight off its Redis
channel (every node publishes a room's events there, already encoded), with no daemon.

It runs an event loop of its own between the records it yields, so the caller may run
other commands (``asyncio.run``) while it follows.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from typing import Any

from rtctl.config import Settings
from rtctl.errors import BackendUnavailable
from rtctl.state import wire
from rtctl.state.base import iso
from rtctl.state.keys import Keys
from rtctl.state.redis_faults import redis_errors
from rtctl.state.redis_url import open_client

Record = dict[str, Any]
WAIT = 1.0  # seconds per read, so an interrupt is noticed
IDLE = 5.0  # seconds without an event before an idle record


def follow(settings: Settings, where: str, room: str) -> Iterator[Record]:
    channel = Keys(settings.prefix).room_channel(room)
    sharded = settings.redis_cluster
    loop = asyncio.new_event_loop()
    client = open_client(settings.redis_url, cluster=sharded)
    pubsub = client.pubsub()
    try:
        try:
            loop.run_until_complete(_subscribe(pubsub, channel, sharded, settings.request_timeout))
        except redis_errors() as exc:  # TimeoutError among them
            raise BackendUnavailable(f"{where}: cannot subscribe: {exc}") from exc
        yield {"at": iso(time.time()), "room": room, "watching": True}
        quiet_since = time.monotonic()
        while True:
            try:
                message = loop.run_until_complete(_next(pubsub, sharded))
            except redis_errors() as exc:
                raise BackendUnavailable(f"{where}: lost the subscription: {exc}") from exc
            record = _record(room, message)
            if record is not None:
                quiet_since = time.monotonic()
                yield record
            elif time.monotonic() - quiet_since >= IDLE:  # as the admin API's idle lines
                quiet_since = time.monotonic()
                yield {"at": iso(time.time()), "room": room, "idle": True}
    finally:
        loop.run_until_complete(_close(pubsub, client))
        loop.close()


async def _subscribe(pubsub: Any, channel: str, sharded: bool, timeout: float) -> None:
    """Subscribed once Redis confirms: nothing published after that is missed."""
    async with asyncio.timeout(timeout):
        if sharded:
            await pubsub.ssubscribe(channel)
        else:
            await pubsub.subscribe(channel)
        while True:
            message = await _next(pubsub, sharded, confirmations=True)
            if message is not None and message.get("type") in ("subscribe", "ssubscribe"):
                return


async def _next(pubsub: Any, sharded: bool, confirmations: bool = False) -> Any:
    ignore = not confirmations
    if sharded:
        return await pubsub.get_sharded_message(ignore_subscribe_messages=ignore, timeout=WAIT)
    return await pubsub.get_message(ignore_subscribe_messages=ignore, timeout=WAIT)


def _record(room: str, message: Any) -> Record | None:
    if not message or message.get("type") not in ("message", "smessage"):
        return None
    try:
        packets = wire.decode_room(message["data"]).packets
    except wire.WireError:
        return None
    found = wire.event_of(str(packets[0].data)) if packets else None
    if found is None:
        return None
    event, args = found
    return {"at": iso(time.time()), "room": room, "event": event,
            "data": args[0] if len(args) == 1 else args}  # fmt: skip


async def _close(pubsub: Any, client: Any) -> None:
    for thing in (pubsub, client):
        with contextlib.suppress(Exception):  # closing after a fault: nothing more to say
            await thing.aclose()
