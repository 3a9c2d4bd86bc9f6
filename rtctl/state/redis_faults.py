"""Redis faults, whichever client met them: ``redis_errors()`` names what a client
raises for one, and ``backend_call`` turns any of them into ``BackendUnavailable``."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

from rtctl.errors import BackendUnavailable

P = ParamSpec("P")
T = TypeVar("T")


def redis_errors() -> tuple[type[BaseException], ...]:
    """What a Redis client raises for a fault: redis-py's, only if redis-py is loaded (a
    CLI process may talk to Redis through ``rtctl.state.resp`` alone)."""
    from rtctl.state.resp import RespError

    if "redis" not in sys.modules:
        return (RespError, OSError, TimeoutError)
    from redis.exceptions import RedisClusterException, RedisError

    # RedisClusterException is no RedisError: "no reachable node", "slot not covered"
    return (RedisError, RedisClusterException, RespError, OSError, TimeoutError)


def backend_call(fn: Callable[P, Coroutine[Any, Any, T]]) -> Callable[P, Coroutine[Any, Any, T]]:
    """Turn any Redis or socket fault into ``BackendUnavailable`` with one clear line."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await fn(*args, **kwargs)
        except redis_errors() as exc:
            raise BackendUnavailable(f"Redis: {type(exc).__name__}: {exc}") from exc

    return wrapper
