"""The document store contract, run against every store in ``tests/docs/conftest.py``
(SQLite; Redis standalone and Cluster). Tests about one store's own files and keys
come last.
"""

from __future__ import annotations

import asyncio
import sqlite3
import stat
import time
from pathlib import Path
from typing import Any, cast

import anyio
import pytest

from rtctl.docs import redis as redis_docs
from rtctl.docs import yjs
from rtctl.docs.redis import RedisDocStore
from rtctl.docs.service import DocService
from rtctl.docs.sqlite import SqliteDocStore
from rtctl.docs.store import (
    CompactionFailed,
    CompactPlan,
    DocStore,
    DocumentTooLarge,
    shape_clocks,
)
from rtctl.errors import BackendUnavailable, ConfigError, OperationFailed
from rtctl.state.redis_url import open_client
from tests.docs.conftest import Editors, OpenStore, expected, stored

pytestmark = pytest.mark.anyio


async def append_all(store: DocStore, doc_id: str, updates: list[bytes]) -> list[int]:
    return [await store.append(doc_id, u) for u in updates]


# reading -----------------------------------------------------------------------------------


async def test_absent(store: DocStore) -> None:
    assert await store.read("nope") is None
    assert await store.read("nope", 3, "abc") is None
    assert await store.info("nope") is None
    assert await store.compact("nope") is None
    assert await store.delete("nope") is False
    assert await store.list() == []


async def test_seq_epoch_base(store: DocStore) -> None:
    ed = Editors(2)
    u = [ed.edit(0), ed.edit(1), ed.edit(0)]
    before = time.time()
    assert await append_all(store, "doc-1", u) == [1, 2, 3]

    tail = await store.read("doc-1")
    assert tail is not None
    epoch = tail.epoch
    assert (tail.seq, tail.base, tail.snapshot, tail.updates) == (3, 0, b"", u)
    assert len(epoch) >= 16 and int(epoch, 16) >= 0

    tail = await store.read("doc-1", 2, epoch)
    assert tail is not None and (tail.snapshot, tail.updates, tail.seq) == (None, [u[2]], 3)
    tail = await store.read("doc-1", 3, epoch)
    assert tail is not None and (tail.snapshot, tail.updates) == (None, [])
    for other in (None, "0" * 16):  # an unknown or other epoch: everything, after ignored
        tail = await store.read("doc-1", 2, other)
        assert tail is not None and (tail.snapshot, tail.updates) == (b"", u)

    result = await store.compact("doc-1")
    assert result is not None
    assert (result.id, result.compacted, result.generation) == ("doc-1", 3, 1)
    u.append(ed.edit(1))
    assert await store.append("doc-1", u[3]) == 4

    info = await store.info("doc-1")
    assert info is not None
    assert (info.id, info.epoch, info.seq, info.base, info.updates, info.generation) == (
        "doc-1", epoch, 4, 3, 1, 1,
    )  # fmt: skip
    assert info.log_bytes == len(u[3]) and info.snapshot_bytes > 0
    assert result.after_bytes == info.snapshot_bytes
    assert result.before_bytes == sum(map(len, u[:3]))
    assert before <= info.created_at <= info.updated_at <= time.time()

    tail = await store.read("doc-1", 2, epoch)  # older than the snapshot: snapshot + log
    assert tail is not None and tail.snapshot and tail.updates == [u[3]]
    assert len(tail.snapshot) == info.snapshot_bytes
    assert stored(tail) == expected(u)
    tail = await store.read("doc-1", 3, epoch)  # has the snapshot: only the log after it
    assert tail is not None and (tail.snapshot, tail.updates, tail.base) == (None, [u[3]], 3)
    tail = await store.read("doc-1", 4, epoch)
    assert tail is not None and (tail.snapshot, tail.updates) == (None, [])
    assert stored(await store.read("doc-1")) == expected(u)


async def test_binary_updates_round_trip(store: DocStore) -> None:
    """The store never interprets an update: any bytes come back as they went in."""
    blobs = [bytes(range(256)), b"\x00", b"\xff\xfe\x00\x80", "é€".encode() + b"\x00\r\n"]
    await append_all(store, "bin", blobs)
    tail = await store.read("bin")
    assert tail is not None and tail.updates == blobs


async def test_empty_log_compaction_writes_nothing(store: DocStore) -> None:
    ed = Editors(1)
    await store.append("d", ed.edit(0))
    first = await store.compact("d")
    assert first is not None and first.compacted == 1
    info = await store.info("d")
    again = await store.compact("d")
    assert again is not None
    assert (again.compacted, again.generation) == (0, 1)
    assert again.before_bytes == again.after_bytes == first.after_bytes
    assert await store.info("d") == info


async def test_list_and_info(store: DocStore) -> None:
    ed = Editors(1)
    for doc_id in ("b", "a:2", "c", "a"):
        await store.append(doc_id, ed.edit(0))
    await store.append("c", ed.edit(0))
    docs = await store.list()
    assert [d.id for d in docs] == ["a", "a:2", "b", "c"]
    assert [d.seq for d in docs] == [1, 1, 1, 2]
    assert docs == [await store.info(d.id) for d in docs]
    assert len({d.epoch for d in docs}) == 4
    assert docs[3].bytes == docs[3].log_bytes > 0
    assert await store.delete("b") is True
    assert [d.id for d in await store.list()] == ["a", "a:2", "c"]


async def test_delete_and_recreate_gets_a_new_epoch(store: DocStore) -> None:
    ed = Editors(1)
    await append_all(store, "d", [ed.edit(0), ed.edit(0)])
    await store.compact("d")
    await store.append("d", ed.edit(0))
    old = await store.info("d")
    assert old is not None
    assert await store.delete("d") is True
    assert await store.delete("d") is False
    assert await store.read("d") is None and await store.info("d") is None
    assert await store.list() == []

    fresh = Editors(1)
    update = fresh.edit(0, "new")
    assert await store.append("d", update) == 1
    info = await store.info("d")
    assert info is not None
    assert info.epoch != old.epoch
    assert (info.seq, info.base, info.generation, info.snapshot_bytes) == (1, 0, 0, 0)
    assert info.log_bytes == len(update)
    tail = await store.read("d", old.seq, old.epoch)  # a copy of the old life: start over
    assert tail is not None and (tail.snapshot, tail.updates) == (b"", [update])
    assert stored(tail) == expected([update])


# durability and bounds ---------------------------------------------------------------------


async def test_durable_across_reopen(open_store: OpenStore) -> None:
    ed = Editors(3)
    first = await open_store()
    updates = [ed.edit(i % 3) for i in range(30)]
    await asyncio.gather(*(first.append("d", u) for u in updates[:20]))
    await first.compact("d")
    await append_all(first, "d", updates[20:])
    await first.append("other", ed.edit(0))
    info = await first.info("d")
    await first.close()

    second = await open_store()  # the daemon restarted, or another node
    assert await second.info("d") == info
    assert [d.id for d in await second.list()] == ["d", "other"]
    assert stored(await second.read("d")) == expected(updates)
    assert await second.append("d", ed.edit(1)) == 31


async def test_too_large_changes_nothing(open_store: OpenStore) -> None:
    store = await open_store(max_doc_bytes=300)
    ed = Editors(1)
    with pytest.raises(DocumentTooLarge):
        await store.append("big", b"x" * 301)  # a first update over the bound: no document
    assert await store.info("big") is None and await store.read("big") is None
    assert await store.list() == []

    updates = [ed.edit(0, "a" * 40) for _ in range(4)]
    await append_all(store, "d", updates)
    before = await store.info("d")
    tail = await store.read("d")
    assert before is not None
    room = 300 - before.bytes
    with pytest.raises(DocumentTooLarge) as refused:
        await store.append("d", b"y" * (room + 1))
    assert refused.value.code == "document_too_large"
    assert await store.info("d") == before
    assert await store.read("d") == tail
    assert await store.append("d", b"z" * room) == 5  # exactly at the bound is allowed
    with pytest.raises(DocumentTooLarge):
        await store.append("d", b"!")
    assert await store.delete("d")

    # the snapshot counts too
    ed = Editors(1)  # (the old life's history is gone)
    updates = [ed.edit(0, "b" * 30) for _ in range(3)]
    await append_all(store, "d", updates)
    await store.compact("d")
    info = await store.info("d")
    assert info is not None and info.snapshot_bytes > 0 and info.log_bytes == 0
    with pytest.raises(DocumentTooLarge):
        await store.append("d", b"y" * (300 - info.snapshot_bytes + 1))
    assert await store.info("d") == info


# compaction --------------------------------------------------------------------------------


async def test_compaction_races_appends(store: DocStore) -> None:
    ed = Editors(4, seed=7)
    initial = [ed.edit(i % 4) for i in range(400)]
    await asyncio.gather(*(store.append("d", u) for u in initial))  # group commits
    ed.sync_all()

    async def client(i: int) -> None:
        for _ in range(40):
            await store.append("d", ed.edit(i))

    compaction = asyncio.ensure_future(store.compact("d"))
    await asyncio.gather(*(client(i) for i in range(4)))
    result = await compaction
    assert result is not None and result.compacted >= 400 and result.generation == 1

    info = await store.info("d")
    assert info is not None
    stored_count = 560
    assert info.seq == stored_count and info.base == result.compacted
    assert info.updates == stored_count - result.compacted
    assert stored(await store.read("d")) == expected(ed.updates)
    tail = await store.read("d", info.base, info.epoch)  # a reader at the snapshot
    assert tail is not None and tail.snapshot is None and len(tail.updates) == info.updates

    second = await store.compact("d")
    assert second is not None and second.compacted == info.updates
    assert stored(await store.read("d")) == expected(ed.updates)
    final = await store.info("d")
    assert final is not None and (final.base, final.updates, final.log_bytes) == (
        stored_count,
        0,
        0,
    )


async def test_two_compactors_race(open_store: OpenStore) -> None:
    a, b = await open_store(), await open_store()  # two nodes
    ed = Editors(3, seed=3)
    await asyncio.gather(*(a.append("d", ed.edit(i % 3)) for i in range(300)))
    results = await asyncio.gather(a.compact("d"), b.compact("d"), a.compact("d"))
    assert sorted(r.compacted for r in results if r) == [0, 0, 300]
    info = await b.info("d")
    assert info is not None and (info.generation, info.base, info.updates) == (1, 300, 0)
    assert stored(await a.read("d")) == expected(ed.updates)


async def test_a_stale_compaction_commits_nothing(store: DocStore) -> None:
    """The steps: two compactors read generation 0; the first commit wins, the second is
    refused even though only appends happened in between, and so is one of an old epoch."""
    assert isinstance(store, SqliteDocStore | RedisDocStore)
    ed = Editors(2, seed=5)
    await append_all(store, "d", [ed.edit(i % 2) for i in range(10)])
    p1, p2 = await store._compact_read("d"), await store._compact_read("d")
    assert p1 is not None and p2 is not None and p1 == p2
    assert (p1.base, p1.seq, p1.generation, p1.snapshot, len(p1.updates)) == (0, 10, 0, None, 10)
    await store.append("d", ed.edit(0))
    merged = yjs.merge(p1.snapshot, p1.updates)
    done = await store._compact_commit("d", p1, merged)
    assert done is not None and (done.compacted, done.generation) == (10, 1)
    info = await store.info("d")
    assert await store._compact_commit("d", p2, merged) is None
    assert await store.info("d") == info
    assert stored(await store.read("d")) == expected(ed.updates)

    p3 = await store._compact_read("d")
    assert p3 is not None and (p3.base, p3.seq, p3.generation, len(p3.updates)) == (10, 11, 1, 1)
    await store.delete("d")
    await append_all(store, "d", [Editors(1).edit(0)])  # a new life, generation 1 again
    await store.compact("d")
    info = await store.info("d")
    assert info is not None and info.generation == 1
    assert await store._compact_commit("d", p3, merged) is None
    assert await store.info("d") == info


async def test_committing_an_empty_plan_writes_nothing(store: DocStore) -> None:
    assert isinstance(store, SqliteDocStore | RedisDocStore)
    ed = Editors(1)
    await store.append("d", ed.edit(0))
    await store.compact("d")
    plan = await store._compact_read("d")
    assert plan is not None and plan.updates == [] and plan.base == plan.seq == 1
    info = await store.info("d")
    result = await store._compact_commit("d", plan, yjs.merge(plan.snapshot, []))
    assert result is not None and (result.compacted, result.generation) == (0, 1)
    assert await store.info("d") == info


async def test_pending_history_is_not_compacted(store: DocStore) -> None:
    ed = Editors(2, seed=11)
    e = [ed.edit(0), ed.edit(0), ed.edit(0), ed.edit(1)]
    await append_all(store, "d", [e[0], e[2], e[3]])  # e[2] builds on e[1], not stored
    info = await store.info("d")
    tail = await store.read("d")
    with pytest.raises(CompactionFailed) as failed:
        await store.compact("d")
    assert isinstance(failed.value, OperationFailed) and failed.value.code == "failed"
    assert "history" in failed.value.message and "unchanged" in failed.value.message
    assert await store.info("d") == info
    assert await store.read("d") == tail

    await store.append("d", e[1])  # the missing piece arrives: now it integrates
    result = await store.compact("d")
    assert result is not None and result.compacted == 4
    assert stored(await store.read("d")) == expected(e)


# the clock summary ---------------------------------------------------------------------------


def summary_of(updates: list[bytes]) -> dict[int, int]:
    """What a document's clock summary must be after these updates."""
    summary: dict[int, int] = {}
    for update in updates:
        clocks = shape_clocks(yjs.inspect_update(update))
        assert clocks is not None
        for c, end in clocks.items():
            summary[c] = max(summary.get(c, 0), end)
    return summary


async def plan_of(store: DocStore, doc_id: str) -> CompactPlan:
    assert isinstance(store, SqliteDocStore | RedisDocStore)
    plan = await store._compact_read(doc_id)
    assert plan is not None
    return plan


async def test_clock_summary_is_kept_with_every_append(open_store: OpenStore) -> None:
    """Cumulative over the document's life (compactions do not shrink it), as of the
    plan's seq, the same whether the caller gives the clocks or the store finds them;
    a refused update adds nothing; a delete starts it over."""
    store = await open_store(max_doc_bytes=4000)
    ed = Editors(3, seed=2)
    first = [ed.edit(i % 3) for i in range(12)]
    await asyncio.gather(*(store.append("d", u) for u in first[:6]))  # the store inspects
    for u in first[6:]:  # the caller inspected (as DocService does)
        await store.append("d", u, clocks=shape_clocks(yjs.inspect_update(u)))
    plan = await plan_of(store, "d")
    assert plan.clocks == summary_of(first) and len(plan.clocks) == 3
    await store.compact("d")
    with pytest.raises(DocumentTooLarge):
        await store.append("d", b"\x00\x00" + b"\x00" * 4000, clocks={12345: 99})
    second = [ed.edit(0), ed.edit(1)]
    await append_all(store, "d", second)
    plan = await plan_of(store, "d")
    assert plan.clocks == summary_of(first + second) and len(plan.updates) == 2
    await store.append("d", ed.edit(2))  # after the plan's seq: not in the plan
    assert plan.clocks == summary_of(first + second)
    assert (await plan_of(store, "d")).clocks == summary_of(ed.updates)

    again = await open_store()  # another node, or after a restart
    assert (await plan_of(again, "d")).clocks == summary_of(ed.updates)
    await again.delete("d")
    fresh = Editors(1)
    await store.append("d", fresh.edit(0))
    assert (await plan_of(store, "d")).clocks == summary_of(fresh.updates)
    await store.append("e", yjs.EMPTY_UPDATE)
    assert (await plan_of(store, "e")).clocks == {}


async def test_compaction_checks_the_summary(store: DocStore) -> None:
    """The merge is held to the summary: clocks a caller claims that the log does not
    hold stop compaction, as history that is missing would."""
    ed = Editors(2, seed=4)
    updates = [ed.edit(i % 2) for i in range(6)]
    await append_all(store, "d", updates)
    client = next(iter(summary_of(updates)))
    extra = ed.edit(0)
    claimed = {client: summary_of([*updates, extra])[client] + 1}
    await store.append("d", extra, clocks=claimed)
    info = await store.info("d")
    with pytest.raises(CompactionFailed, match="history"):
        await store.compact("d")
    assert await store.info("d") == info


async def test_pending_history_is_refused_with_the_summary(open_store: OpenStore) -> None:
    """A hole in the log: refused whether the clocks came from the caller or the store,
    in one compaction or after earlier ones; compacted once the hole is filled."""
    store = await open_store()
    ed = Editors(3, seed=13)
    e = [ed.edit(i % 3) for i in range(4)] + [ed.edit(1, "ab"), ed.edit(1, "c")]
    e += [ed.edit(i % 3) for i in range(3)]
    await append_all(store, "d", e[:3])
    await store.compact("d")
    for u in [e[3], e[5], e[6], e[7], e[8]]:  # e[5] builds on e[4], not stored
        await store.append("d", u, clocks=shape_clocks(yjs.inspect_update(u)))
    plan = await plan_of(store, "d")
    assert plan.clocks == summary_of(e)  # the hole is in the log, not in its clocks
    info = await store.info("d")
    with pytest.raises(CompactionFailed, match="history"):
        await store.compact("d")
    assert await store.info("d") == info
    await store.append("d", e[4])  # the log is now out of causal order: several passes
    result = await store.compact("d")
    assert result is not None and result.compacted == 6
    assert stored(await store.read("d")) == expected(e)


async def test_unknown_clocks_end_the_summary(store: DocStore) -> None:
    """An update the store cannot inspect (or clocks past 2**53): the document has no
    summary for the rest of its life, and compacts by inspecting everything."""
    ed = Editors(1)
    await append_all(store, "ok", [ed.edit(0), ed.edit(0)])
    await store.append("ok", ed.edit(0), clocks={(1 << 53) - 1: 3})  # the largest kept
    plan = await plan_of(store, "ok")
    assert plan.clocks == {**summary_of(ed.updates[:2]), (1 << 53) - 1: 3}  # as given

    ed = Editors(1)
    await append_all(store, "big", [ed.edit(0), ed.edit(0)])
    await store.append("big", ed.edit(0), clocks={1 << 53: 1})
    await store.append("big", ed.edit(0))
    assert (await plan_of(store, "big")).clocks is None
    result = await store.compact("big")
    assert result is not None and result.compacted == 4
    await store.append("big", ed.edit(0))
    assert (await plan_of(store, "big")).clocks is None
    assert stored(await store.read("big")) == expected(ed.updates)

    ed = Editors(1)
    await store.append("bad", ed.edit(0))
    await store.append("bad", b"\x01\x02")  # does not decode: stored all the same
    await store.append("bad", ed.edit(0))
    assert (await plan_of(store, "bad")).clocks is None
    with pytest.raises(CompactionFailed):
        await store.compact("bad")
    await store.delete("bad")
    await store.append("bad", Editors(1).edit(0))  # a new life: a new summary
    assert (await plan_of(store, "bad")).clocks is not None


async def test_service_hands_the_store_the_clocks_it_inspected(
    store: DocStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DocService inspects every update before it appends it: the store need not again;
    a copy catching up from a snapshot and a log holds what the store does."""
    given: list[dict[int, int] | None] = []
    real = store.append

    async def append(
        doc_id: str, update: bytes, clocks: dict[int, int] | None = None, key: Any = None
    ) -> int:
        given.append(clocks)
        return await real(doc_id, update, clocks, key)

    monkeypatch.setattr(store, "append", append)
    svc = DocService(store, cast(Any, None), cast(Any, None), cast(Any, None))
    doc = svc.copies.load("d")
    ed = Editors(2, seed=6)
    for i in range(20):
        await svc._store_update(doc, ed.edit(i % 2))
    assert given == [shape_clocks(yjs.inspect_update(u)) for u in ed.updates]
    assert (await plan_of(store, "d")).clocks == summary_of(ed.updates)
    await store.compact("d")
    await append_all(store, "d", [ed.edit(i % 2) for i in range(5)])  # another node's
    other = svc.copies.load("other")
    await svc.copies.catch_up(doc)
    tail = await store.read("d")
    assert tail is not None
    svc.copies._apply_tail(other, tail)  # snapshot + log in one transaction
    assert (
        doc.ydoc.get_update() == other.ydoc.get_update() == yjs.merge(tail.snapshot, tail.updates)
    )
    assert yjs.doc_state(doc.ydoc) == yjs.doc_state(other.ydoc) == expected(ed.updates)[1]


# SQLite ------------------------------------------------------------------------------------


async def test_sqlite_file_modes_and_wal(tmp_path: Path) -> None:
    path = tmp_path / "new" / "documents.sqlite3"
    store = SqliteDocStore(path)
    await store.start()
    try:
        await store.append("d", b"\x00\x00")
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        for p in path.parent.iterdir():
            assert stat.S_IMODE(p.stat().st_mode) == 0o600, p
    finally:
        await store.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT seq FROM docs WHERE id = 'd'").fetchone()[0] == 1
    with pytest.raises(BackendUnavailable):
        await store.append("d", b"\x00\x00")


async def test_sqlite_group_commit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = SqliteDocStore(tmp_path / "documents.sqlite3")
    commits: list[int] = []
    real = store._commit_appends

    def counting(conn: sqlite3.Connection, reqs: list) -> list:  # type: ignore[type-arg]
        commits.append(len(reqs))
        return real(conn, reqs)

    monkeypatch.setattr(store, "_commit_appends", counting)
    await store.start()
    try:
        seqs = await asyncio.gather(*(store.append(f"d{i % 5}", b"u%d" % i) for i in range(500)))
        assert sorted(seqs) == sorted(s for _ in range(5) for s in range(1, 101))
        assert sum(commits) == 500 and len(commits) < 50
        # a refused append in a batch leaves the others alone
        store.max_doc_bytes = 1000
        results = await asyncio.gather(
            store.append("d0", b"x" * 10), store.append("d0", b"y" * 900),
            store.append("d1", b"z" * 10), return_exceptions=True,
        )  # fmt: skip
        assert results[0] == 101 and results[2] == 101
        assert isinstance(results[1], DocumentTooLarge)
    finally:
        await store.close()


SCHEMA_V1 = """
CREATE TABLE docs (
    id TEXT PRIMARY KEY, epoch TEXT NOT NULL, seq INTEGER NOT NULL, base INTEGER NOT NULL,
    generation INTEGER NOT NULL, snapshot_bytes INTEGER NOT NULL, log_bytes INTEGER NOT NULL,
    created_at REAL NOT NULL, updated_at REAL NOT NULL
);
CREATE TABLE snapshots (doc_id TEXT PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE updates (
    doc_id TEXT NOT NULL, seq INTEGER NOT NULL, data BLOB NOT NULL, PRIMARY KEY (doc_id, seq)
) WITHOUT ROWID;
PRAGMA user_version=1;
"""


async def test_sqlite_documents_from_before_the_summary(tmp_path: Path) -> None:
    """A file of schema 1 gains the summary table; its documents have no summary, so
    they compact by inspecting everything (a hole still refused); new ones have one."""
    path = tmp_path / "documents.sqlite3"
    ed = Editors(2, seed=8)
    e = [ed.edit(i % 2) for i in range(8)]
    with sqlite3.connect(path) as conn:
        conn.executescript(SCHEMA_V1)
        for doc_id, log in (("whole", e[:4]), ("holed", [e[0], e[2], e[3]])):
            conn.execute(
                "INSERT INTO docs VALUES (?, 'e1', ?, 0, 0, 0, ?, 1.0, 1.0)",
                (doc_id, len(log), sum(map(len, log))),
            )
            conn.executemany(
                "INSERT INTO updates VALUES (?, ?, ?)",
                [(doc_id, i + 1, u) for i, u in enumerate(log)],
            )
    conn.close()
    store = SqliteDocStore(path)
    await store.start()
    try:
        await store.append("whole", e[4])
        assert (await plan_of(store, "whole")).clocks is None
        result = await store.compact("whole")
        assert result is not None and result.compacted == 5
        assert stored(await store.read("whole")) == expected(e[:5])
        with pytest.raises(CompactionFailed, match="history"):
            await store.compact("holed")
        await store.append("new", e[0])
        assert (await plan_of(store, "new")).clocks == summary_of(e[:1])
    finally:
        await store.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 2
        assert conn.execute("SELECT clocks_seq FROM docs WHERE id = 'whole'").fetchone() == (None,)
        rows = conn.execute("SELECT count(*) FROM clocks WHERE doc_id = 'new'").fetchone()
        assert rows == (1,)
    conn.close()
    store = SqliteDocStore(path)  # opened again: nothing to migrate
    await store.start()
    try:
        assert await store.delete("new")
    finally:
        await store.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM clocks").fetchone() == (0,)
    conn.close()


async def test_sqlite_loop_stays_free(tmp_path: Path) -> None:
    """The event loop keeps turning while the store commits and compacts."""
    store = SqliteDocStore(tmp_path / "documents.sqlite3")
    await store.start()
    ed = Editors(2)
    gaps: list[float] = []
    stop = False

    async def ticker() -> None:
        last = time.perf_counter()
        while not stop:
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    task = asyncio.ensure_future(ticker())
    try:
        await asyncio.gather(*(store.append("d", ed.edit(i % 2)) for i in range(2000)))
        await store.compact("d")
    finally:
        stop = True
        await task
        await store.close()
    assert max(gaps) < 0.1


# Redis -------------------------------------------------------------------------------------


async def test_redis_refuses_decoding_client(redis_server: object) -> None:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(redis_server.url, decode_responses=True)  # type: ignore[attr-defined]
    with pytest.raises(ConfigError):
        RedisDocStore(client, "test")
    await client.aclose()


async def test_redis_index_is_a_superset_cleaned_lazily(
    redis_server: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = redis_server.url  # type: ignore[attr-defined]
    store = RedisDocStore(open_client(url), "ix", max_doc_bytes=100)
    raw = open_client(url)
    try:
        await store.append("kept", b"\x00\x00")
        await store.append("refused", b"\x00" * 60)
        with pytest.raises(DocumentTooLarge):  # only the script can tell
            await store.append("refused", b"\x00" * 50)
        await raw.zadd("ix:docs", {"ghost": 1})  # indexed long ago, never created
        index = {m.decode() for m in await raw.zrange("ix:docs", 0, -1)}
        assert {"kept", "ghost"} <= index
        assert [d.id for d in await store.list()] == ["kept", "refused"]
        await store.delete("refused")

        monkeypatch.setattr(redis_docs, "INDEX_GRACE", 3600.0)
        await raw.zadd("ix:docs", {"young": time.time() * 1_000_000})  # being created now
        assert [d.id for d in await store.list()] == ["kept"]
        index = {m.decode() for m in await raw.zrange("ix:docs", 0, -1)}
        assert index == {"kept", "young"}  # the ghost went; a young entry waits
        assert await raw.type("{ix:d:kept}:meta") == b"hash"
        assert await raw.llen("{ix:d:kept}:log") == 1
    finally:
        await store.close()
        await raw.aclose()


async def test_redis_summary_keys_and_older_writers(redis_server: object) -> None:
    """The summary is one hash beside the document (client ids as decimal strings),
    gone with it; a document whose summary does not cover every seq (written by an
    older rtctl, or a summary from before a torn delete) compacts by inspecting."""
    url = redis_server.url  # type: ignore[attr-defined]
    store = RedisDocStore(open_client(url), "sum")
    raw = open_client(url)
    meta, clocks = "{sum:d:d}:meta", "{sum:d:d}:clocks"
    try:
        ed = Editors(2, seed=9)
        e = [ed.edit(i % 2) for i in range(4)]
        await append_all(store, "d", e[:3])
        want = summary_of(e[:3])
        assert await raw.hgetall(clocks) == {
            str(c).encode(): str(end).encode() for c, end in want.items()
        }
        assert await raw.hget(meta, "clocks_seq") == b"3"
        await raw.hset(meta, "clocks_seq", "2")  # an older rtctl appended the last one
        await store.append("d", e[3])
        assert await raw.hget(meta, "clocks_seq") is None and not await raw.exists(clocks)
        assert (await plan_of(store, "d")).clocks is None
        result = await store.compact("d")
        assert result is not None and result.compacted == 4
        ed.edit(0, "lost")  # never stored
        await store.append("d", ed.edit(0, "x"))  # builds on the one not stored
        with pytest.raises(CompactionFailed, match="history"):
            await store.compact("d")

        assert await store.delete("d")
        assert not await raw.exists(meta, clocks)
        await raw.hset(clocks, "7", "100")  # left behind by a torn delete
        fresh = Editors(1)
        await store.append("d", fresh.edit(0))
        assert (await plan_of(store, "d")).clocks == summary_of(fresh.updates)
        await store.compact("d")
    finally:
        await store.close()
        await raw.aclose()


async def test_redis_index_healed_after_racing_removal(redis_server: object) -> None:
    """A delete that removes the id between a creator's index write and its append:
    the creator indexes the id again after creating the document."""
    url = redis_server.url  # type: ignore[attr-defined]
    store = RedisDocStore(open_client(url), "race")
    raw = open_client(url)
    real_run = store._run

    async def racing(script: str, keys: list[str], args: list[object]) -> object:
        if script == "doc_append" and args[1] == 1:
            assert await store.delete("d") is False  # removes the fresh index entry
            assert await raw.zscore("race:docs", "d") is None
        return await real_run(script, keys, args)

    store._run = racing  # type: ignore[method-assign]
    try:
        assert await store.append("d", b"\x00\x00") == 1
        assert [d.id for d in await store.list()] == ["d"]
        assert await raw.zscore("race:docs", "d") is not None
    finally:
        await store.close()
        await raw.aclose()


async def test_close_then_use_is_refused(open_store: OpenStore) -> None:
    store = await open_store()
    await store.close()
    if isinstance(store, SqliteDocStore):
        with pytest.raises(BackendUnavailable):
            await store.read("d")
    await store.close()  # twice is fine


async def test_appends_keep_call_order(store: DocStore) -> None:
    """Appends one store makes to one document land in the order they were called,
    even when nobody waits in between (so a causally ordered stream stays ordered)."""
    blobs = [b"\x00\x00" + i.to_bytes(2, "big") for i in range(600)]
    seqs = await asyncio.gather(*(store.append("d", b) for b in blobs))
    assert seqs == list(range(1, 601))
    tail = await store.read("d")
    assert tail is not None and tail.updates == blobs


async def test_appends_from_many_tasks_get_distinct_seqs(store: DocStore) -> None:
    async with anyio.create_task_group() as tg:
        for i in range(100):
            tg.start_soon(store.append, "d", b"\x00\x00" + bytes([i]))
    tail = await store.read("d")
    assert tail is not None and tail.seq == 100 and len(tail.updates) == 100
    assert sorted(u[2] for u in tail.updates) == list(range(100))


async def test_redis_append_that_timed_out_but_ran_is_stored_once(redis_server: object) -> None:
    """Redis stopped (SIGSTOP) while an append is on the wire: the caller times out, the
    script runs once Redis resumes, and the same update tried again gets the same seq
    instead of a second place in the log."""
    import os
    import signal

    import redis.asyncio as aioredis

    server = redis_server  # type: ignore[assignment]
    impatient = aioredis.Redis.from_url(server.url, socket_timeout=0.3)  # type: ignore[attr-defined]
    store = RedisDocStore(impatient, "idem")
    ed = Editors(1, seed=4)
    first, second = ed.edit(0), ed.edit(0)
    try:
        assert await store.append("d", first, key=b"k1") == 1
        os.kill(server.proc.pid, signal.SIGSTOP)  # type: ignore[attr-defined]
        try:
            with pytest.raises(BackendUnavailable):
                await store.append("d", second, key=b"k2")
        finally:
            os.kill(server.proc.pid, signal.SIGCONT)  # type: ignore[attr-defined]
        assert await store.append("d", second, key=b"k2") == 2  # it ran after all
        info = await store.info("d")
        assert info is not None and info.seq == 2 and info.updates == 2
        tail = await store.read("d")
        assert tail is not None and tail.updates == [first, second]
        assert await store.append("d", ed.edit(0)) == 3
    finally:
        await store.close()
