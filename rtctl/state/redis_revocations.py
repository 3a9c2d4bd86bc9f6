"""Token revocations on Redis, for ``RedisState``: a key per revoked ``jti`` (expiring
with the token's horizon) indexed in a sorted set by expiry, so they can be listed
without a scan, and a hash of per-user cutoffs (every token of the user issued before
is refused)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from rtctl.state.base import RevocationRecord
from rtctl.state.keys import Keys


class RedisRevocations:
    """``RedisState``'s revocations: its client and keys, and its Lua script runner."""

    def __init__(self, redis: Any, keys: Keys, run: Callable[..., Awaitable[Any]]) -> None:
        self.redis, self.keys, self._run = redis, keys, run

    async def revoke_jti(self, jti: str, until: float) -> None:
        await self.redis.set(self.keys.revoked_jti(jti), "1", pxat=int(until * 1000))
        await self.redis.zadd(self.keys.revoked_jti_index, {jti: until})

    async def revoke_user(self, user_id: str, cutoff: float) -> None:
        await self._run("revoke_user", [self.keys.revoked_users], [user_id, repr(cutoff)])

    async def is_revoked(self, jti: str | None, user_id: str, issued_at: float | None) -> bool:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.exists(self.keys.revoked_jti(jti or ""))
            pipe.hget(self.keys.revoked_users, user_id)
            by_jti, cutoff = await pipe.execute()
        if jti is not None and by_jti:
            return True
        return cutoff is not None and (issued_at is None or issued_at < float(cutoff))

    async def list_revocations(self) -> list[RevocationRecord]:
        index = self.keys.revoked_jti_index
        now = time.time()
        await self.redis.zremrangebyscore(index, "-inf", now)  # expired: pruned here
        jtis = await self.redis.zrange(index, 0, -1, withscores=True)
        users = await self.redis.hgetall(self.keys.revoked_users)
        out = [RevocationRecord("jti", _text(j), until=float(s)) for j, s in jtis]
        out += [RevocationRecord("user", _text(u), before=float(c)) for u, c in users.items()]
        return sorted(out, key=lambda r: (r.kind, r.id))

    async def unrevoke_jti(self, jti: str) -> bool:
        gone = await self.redis.delete(self.keys.revoked_jti(jti))
        indexed = await self.redis.zrem(self.keys.revoked_jti_index, jti)
        return bool(gone or indexed)

    async def unrevoke_user(self, user_id: str) -> bool:
        return bool(await self.redis.hdel(self.keys.revoked_users, user_id))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
