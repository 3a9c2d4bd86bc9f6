"""A burst of concurrent Redis requests queues for connections; none is refused."""

from __future__ import annotations

import asyncio

import pytest

from rtctl.state.redis import RedisState
from rtctl.state.redis_url import MAX_CONNECTIONS, open_client
from tests.redis_server import RedisServer

pytestmark = pytest.mark.anyio


async def test_more_concurrent_requests_than_connections(redis_server: RedisServer) -> None:
    state = RedisState(open_client(redis_server.url), "pool", "node-1")
    try:
        burst = [state.list_rooms() for _ in range(MAX_CONNECTIONS * 5)]
        results = await asyncio.gather(*burst, return_exceptions=True)
        assert [r for r in results if isinstance(r, BaseException)] == []
        clients = await state.redis.client_list()
        assert len(clients) <= MAX_CONNECTIONS + 1  # the pool's, plus the listing one
    finally:
        await state.close()
