"""The state backends every contract test runs against, and their fixtures.

Each test receives ``open_state``: a coroutine that opens (and starts) a backend on
the same underlying storage every time it is called, so "a new daemon on the same
data" is just a second call. A backend or topology is one more entry in
``FACTORIES``; the contract tests (``test_contract.py``) stay as they are.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from rtctl.state.base import NodeRecord, StateBackend
from rtctl.state.memory import MemoryState
from rtctl.state.redis import RedisState
from rtctl.state.redis_url import open_client
from rtctl.state.resp import RespClient, open_fast_client

OpenState = Callable[[], Awaitable[StateBackend]]
Factory = Callable[[Path, pytest.FixtureRequest], Callable[[], StateBackend]]


def unique_prefix() -> str:
    return "t" + uuid.uuid4().hex[:12]


class LiveRedisState(RedisState):
    """Registers its node on start, as a daemon does, so its partition counts as live."""

    async def start(self) -> None:
        await super().start()
        now = time.time()
        await self.register_node(NodeRecord(self.node_id, "host", 1, "test", now, now))


def memory_factory(tmp_path: Path, request: pytest.FixtureRequest) -> Callable[[], StateBackend]:
    return lambda: MemoryState(tmp_path / "data")


def redis_factory(tmp_path: Path, request: pytest.FixtureRequest) -> Callable[[], StateBackend]:
    """``node-1`` on a private redis-server (the same one each call)."""
    server = request.getfixturevalue("redis_server")
    return lambda: LiveRedisState(open_client(server.url), "test", "node-1")


def sentinel_factory(tmp_path: Path, request: pytest.FixtureRequest) -> Callable[[], StateBackend]:
    """``node-1`` on a fresh Sentinel deployment, through its ``redis+sentinel://`` URL."""
    setup = request.getfixturevalue("redis_sentinel")
    return lambda: LiveRedisState(open_client(setup.url), "test", "node-1")


def resp_factory(tmp_path: Path, request: pytest.FixtureRequest) -> Callable[[], StateBackend]:
    """``node-1`` on a private redis-server, through the CLI's own client (``resp``)."""
    server = request.getfixturevalue("redis_server")
    return lambda: LiveRedisState(fast_client(server.url), "test", "node-1")


def resp_sentinel_factory(
    tmp_path: Path, request: pytest.FixtureRequest
) -> Callable[[], StateBackend]:
    """``node-1`` on a fresh Sentinel deployment, through the CLI's own client."""
    setup = request.getfixturevalue("redis_sentinel")
    return lambda: LiveRedisState(fast_client(setup.url), "test", "node-1")


def fast_client(url: str) -> RespClient:
    client = open_fast_client(url)
    assert client is not None, url
    return client


def cluster_factory(tmp_path: Path, request: pytest.FixtureRequest) -> Callable[[], StateBackend]:
    """``node-1`` on the shared Cluster, under a prefix of this test's own."""
    setup = request.getfixturevalue("redis_cluster")
    prefix = unique_prefix()
    return lambda: LiveRedisState(open_client(setup.url, cluster=True), prefix, "node-1")


FACTORIES: dict[str, Factory] = {
    "memory": memory_factory,
    "redis": redis_factory,
    "sentinel": sentinel_factory,
    "cluster": cluster_factory,
    "resp": resp_factory,
    "resp-sentinel": resp_sentinel_factory,
}


@pytest.fixture(params=sorted(FACTORIES))
async def open_state(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[OpenState]:
    make = FACTORIES[request.param](tmp_path, request)
    opened: list[StateBackend] = []

    async def open_one() -> StateBackend:
        backend = make()
        await backend.start()
        opened.append(backend)
        return backend

    yield open_one
    for backend in opened:
        await backend.close()


@pytest.fixture
async def state(open_state: OpenState) -> StateBackend:
    return await open_state()
