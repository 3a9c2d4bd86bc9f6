"""Where auth hook answers are cached: this process (embedded) or Redis (shared by
every node, so a client reconnecting to another node finds its answer there)."""

from __future__ import annotations

import json
import time
from typing import Any

from rtctl.state.keys import Keys
from rtctl.state.redis_faults import backend_call

MAX_ENTRIES = 100_000  # embedded: answers kept at most; the oldest go first
# How long a user's generation is kept after it changed: longer than any answer is
# cached (answers cached before it are stale, and have expired once it is forgotten).
GENERATION_TTL = 86_400.0


class MemoryHookCache:
    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self._entries: dict[str, tuple[float, dict[str, Any]]] = {}
        self._generations: dict[str, tuple[float, int]] = {}
        self._max = max_entries

    async def get(self, digest: str) -> dict[str, Any] | None:
        hit = self._entries.get(digest)
        if hit is None or hit[0] < time.monotonic():
            return None
        return dict(hit[1])

    async def put(self, digest: str, entry: dict[str, Any], ttl: float) -> None:
        now = time.monotonic()
        self._entries.pop(digest, None)
        while len(self._entries) >= self._max:
            del self._entries[next(iter(self._entries))]
        self._entries[digest] = (now + ttl, dict(entry))
        for user in [u for u, (until, _) in self._generations.items() if until < now][:64]:
            del self._generations[user]

    async def generation(self, user_id: str) -> int:
        hit = self._generations.get(user_id)
        return 0 if hit is None or hit[0] < time.monotonic() else hit[1]

    async def bump(self, user_id: str) -> None:
        # kept past every answer cached before it, then forgotten: those have expired too
        until = time.monotonic() + GENERATION_TTL
        self._generations[user_id] = (until, await self.generation(user_id) + 1)


class RedisHookCache:
    def __init__(self, redis: Any, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys

    @backend_call
    async def get(self, digest: str) -> dict[str, Any] | None:
        raw = await self.redis.get(self.keys.hook_answer(digest))
        if raw is None:
            return None
        try:
            entry = json.loads(raw)
        except ValueError:
            return None
        return entry if isinstance(entry, dict) else None

    @backend_call
    async def put(self, digest: str, entry: dict[str, Any], ttl: float) -> None:
        ms = max(1, int(ttl * 1000))
        await self.redis.set(self.keys.hook_answer(digest), json.dumps(entry), px=ms)

    @backend_call
    async def generation(self, user_id: str) -> int:
        raw = await self.redis.get(self.keys.hook_generation(user_id))
        return int(raw) if raw is not None else 0

    @backend_call
    async def bump(self, user_id: str) -> None:
        key = self.keys.hook_generation(user_id)
        async with self.redis.pipeline(transaction=False) as pipe:  # one round trip
            pipe.incr(key)
            pipe.expire(key, int(GENERATION_TTL))
            await pipe.execute()
