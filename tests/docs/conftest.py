"""The document stores every contract test runs against, and Yjs helpers.

Each test receives ``open_store``: a coroutine that opens (and starts) a store on
the same underlying storage every time it is called, so "the daemon restarted" or
"another node" is just a second call. A store or topology is one more entry in
``FACTORIES``.
"""

from __future__ import annotations

import itertools
import random
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol

import pycrdt
import pytest

from rtctl.docs import yjs
from rtctl.docs.redis import RedisDocStore
from rtctl.docs.sqlite import SqliteDocStore
from rtctl.docs.store import DocStore, DocTail
from rtctl.state.redis_url import open_client


class OpenStore(Protocol):
    def __call__(self, **options: Any) -> Awaitable[DocStore]: ...


Factory = Callable[[Path, pytest.FixtureRequest], Callable[..., DocStore]]


def unique_prefix() -> str:
    return "t" + uuid.uuid4().hex[:12]


def sqlite_factory(tmp_path: Path, request: pytest.FixtureRequest) -> Callable[..., DocStore]:
    path = tmp_path / "data" / "documents.sqlite3"
    return lambda **options: SqliteDocStore(path, **options)


def redis_factory(tmp_path: Path, request: pytest.FixtureRequest) -> Callable[..., DocStore]:
    """A new client on a private redis-server each call (the same server)."""
    server = request.getfixturevalue("redis_server")
    return lambda **options: RedisDocStore(open_client(server.url), "test", **options)


def cluster_factory(tmp_path: Path, request: pytest.FixtureRequest) -> Callable[..., DocStore]:
    """A new Cluster client each call, on the shared Cluster, under this test's prefix."""
    setup = request.getfixturevalue("redis_cluster")
    prefix = unique_prefix()
    return lambda **options: RedisDocStore(open_client(setup.url, cluster=True), prefix, **options)


FACTORIES: dict[str, Factory] = {
    "sqlite": sqlite_factory,
    "redis": redis_factory,
    "cluster": cluster_factory,
}


@pytest.fixture(params=sorted(FACTORIES))
async def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[OpenStore]:
    make = FACTORIES[request.param](tmp_path, request)
    opened: list[DocStore] = []

    async def open_one(**options: Any) -> DocStore:
        store = make(**options)
        await store.start()
        opened.append(store)
        return store

    yield open_one
    for store in opened:
        await store.close()


@pytest.fixture
async def store(open_store: OpenStore) -> DocStore:
    return await open_store()


# Yjs --------------------------------------------------------------------------------------

_client_ids = itertools.count(random.randrange(1, 1 << 30))


class Editors:
    """Simulated clients editing one shared Text ("t"); each edit returns its update.

    Every client only builds on what it has: its own edits and whatever it synced,
    so appending each client's updates in its own order always integrates."""

    def __init__(self, clients: int = 3, seed: int = 0) -> None:
        self.rng = random.Random(seed)
        self.docs = [pycrdt.Doc(client_id=next(_client_ids)) for _ in range(clients)]
        self.texts = [d.get("t", type=pycrdt.Text) for d in self.docs]
        self.updates: list[bytes] = []  # every update made, in the order made
        self._emitted: list[list[bytes]] = [[] for _ in self.docs]
        self._subscriptions = [
            d.observe(lambda event, out=out: out.append(event.update))
            for d, out in zip(self.docs, self._emitted, strict=True)
        ]

    def edit(self, client: int, text: str | None = None) -> bytes:
        """One transaction's update, as a Yjs client sends it (its own deletions only)."""
        t, emitted = self.texts[client], self._emitted[client]
        emitted.clear()
        n = len(str(t))
        if text is None and n > 4 and self.rng.random() < 0.3:
            start = self.rng.randrange(n)
            del t[start : min(n, start + self.rng.randint(1, 3))]
        else:
            chars = text or "".join(
                self.rng.choice("abcdefghij") for _ in range(self.rng.randint(1, 4))
            )
            t.insert(self.rng.randint(0, n), chars)
        (update,) = emitted
        self.updates.append(update)
        return update

    def sync(self, into: int, source: int) -> None:
        """``into`` receives everything ``source`` has."""
        dst, src = self.docs[into], self.docs[source]
        dst.apply_update(src.get_update(dst.get_state()))

    def sync_all(self) -> None:
        for i in range(len(self.docs)):
            for j in range(len(self.docs)):
                if i != j:
                    self.sync(i, j)


def document(snapshot: bytes | None, updates: list[bytes]) -> tuple[str, dict[int, int]]:
    """What a snapshot plus a log amount to: the text and the state vector."""
    doc = pycrdt.Doc()
    doc.apply_update(yjs.merge(snapshot, updates))
    return str(doc.get("t", type=pycrdt.Text)), yjs.doc_state(doc)


def expected(updates: list[bytes]) -> tuple[str, dict[int, int]]:
    """Every update applied to a fresh document (any order: pycrdt sorts it out)."""
    doc = pycrdt.Doc()
    for u in updates:
        doc.apply_update(u)
    return str(doc.get("t", type=pycrdt.Text)), yjs.doc_state(doc)


def stored(tail: DocTail | None) -> tuple[str, dict[int, int]]:
    assert tail is not None
    assert tail.snapshot is not None, "a full read carries the snapshot (b'' when none)"
    return document(tail.snapshot, tail.updates)
