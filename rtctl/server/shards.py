"""Reading a Redis Cluster's sharded pub/sub: a reader per shard connection.

redis-py's ``ClusterPubSub.get_sharded_message(timeout=t)`` waits on one shard
connection at a time, round robin: a message on one shard waits while the timeouts
of the others run out, up to (shards - 1) times t. Here each shard connection gets a
reader of its own (``target_node``), so a message is handled as it arrives. A
supervisor starts a reader for every shard the subscriptions reach, and fails (for
the bus to reconnect) as soon as a reader does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

DISCOVER_EVERY = 0.05  # seconds between looks for shards newly subscribed
READ_TIMEOUT = 1.0

OnMessage = Callable[[dict[str, Any]], Awaitable[None]]


async def pump_shards(pubsub: Any, cluster: Any, on_message: OnMessage) -> None:
    """Read every shard of ``pubsub`` until a reader fails (then raise its error)."""
    readers: dict[str, asyncio.Task[None]] = {}
    try:
        while True:
            for name in list(pubsub.node_pubsub_mapping):
                task = readers.get(name)
                if task is not None and task.done():
                    task.result()  # a reader's fault is the listener's: raise it
                if task is None or task.done():
                    node = cluster.get_node(node_name=name)
                    if node is not None:
                        readers[name] = asyncio.create_task(_read(pubsub, node, on_message))
            await asyncio.sleep(DISCOVER_EVERY)
    finally:
        for task in readers.values():
            task.cancel()
        await asyncio.gather(*readers.values(), return_exceptions=True)


async def _read(pubsub: Any, node: Any, on_message: OnMessage) -> None:
    while node.name in pubsub.node_pubsub_mapping:  # gone: every channel there unsubscribed
        message = await pubsub.get_sharded_message(
            ignore_subscribe_messages=True, timeout=READ_TIMEOUT, target_node=node
        )
        if message is not None:
            await on_message(message)
