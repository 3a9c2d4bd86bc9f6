"""A store's probe, and ``WatchedStore``: what /readyz knows of the document store."""

from __future__ import annotations

import asyncio

import pytest

from rtctl.docs.health import PROBE_INTERVAL, WatchedStore
from rtctl.docs.redis import RedisDocStore
from rtctl.docs.store import DocStore
from rtctl.errors import BackendUnavailable
from rtctl.state.redis_url import open_client
from tests.docs.conftest import Editors
from tests.redis_server import RedisServer

pytestmark = pytest.mark.anyio


async def test_a_probe_writes_nothing_a_reader_sees(store: DocStore) -> None:
    await store.probe()
    assert await store.list() == []
    assert await store.append("doc-1", Editors(1).edit(0)) == 1
    before = await store.info("doc-1")
    await store.probe()
    assert await store.info("doc-1") == before
    assert [d.id for d in await store.list()] == ["doc-1"]


async def test_a_failing_store_is_marked_until_it_writes_again(
    redis_server: RedisServer,
) -> None:
    """Marked by the failure of any call; cleared by the probe once the store answers,
    with no other call made."""
    watched = WatchedStore(RedisDocStore(open_client(redis_server.url), "health"))
    await watched.start()
    try:
        editors = Editors(1)
        assert await watched.append("doc-1", editors.edit(0)) == 1
        assert await watched.read("doc-1") is not None and watched.failure is None
        redis_server.kill()
        with pytest.raises(BackendUnavailable):
            await watched.read("doc-1")
        assert watched.failure is not None and "Redis" in watched.failure
        await asyncio.sleep(PROBE_INTERVAL * 2)
        assert watched.failure is not None  # still down: the probes fail too
        await asyncio.to_thread(redis_server.start)
        deadline = asyncio.get_running_loop().time() + PROBE_INTERVAL * 5
        while watched.failure is not None:
            assert asyncio.get_running_loop().time() < deadline, watched.failure
            await asyncio.sleep(0.05)
        assert await watched.append("doc-2", editors.edit(0)) == 1
    finally:
        await watched.close()
