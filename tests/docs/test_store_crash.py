"""Random interleavings of appends, compactions taken apart into their steps, crashed
compactors, deletes and restarts: the stored document is always exactly what the
acknowledged updates make.

A compaction is three steps (``_compact_read``, the merge, ``_compact_commit``); a
compactor may stop after any of them (a crash: its work is simply abandoned), run
late after other compactions, appends, a delete or a restart of the store, or
commit twice. Each step is a rule of a hypothesis state machine, so hypothesis
explores the orders. After every step, a full read merges to the document all
acknowledged updates make (text and state vector), the counters agree with what
is stored, and a reader that only asks for what it lacks holds the same document.
"""

from __future__ import annotations

import asyncio
import itertools
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pycrdt
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from rtctl.docs import yjs
from rtctl.docs.redis import RedisDocStore
from rtctl.docs.sqlite import SqliteDocStore
from rtctl.docs.store import CompactPlan, shape_clocks
from rtctl.state.redis_url import open_client
from tests.docs.conftest import Editors, document, expected, unique_prefix

Store = SqliteDocStore | RedisDocStore
Opener = Callable[[], Callable[[], Awaitable[Store]]]  # per example: a way to (re)open
DOC = "doc"
CLIENTS = 3

SETTINGS = settings(
    max_examples=50,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


def summary(updates: list[bytes]) -> dict[int, int]:
    """The clock summary of a document that these updates made."""
    out: dict[int, int] = {}
    for update in updates:
        clocks = shape_clocks(yjs.inspect_update(update))
        assert clocks is not None
        for c, end in clocks.items():
            out[c] = max(out.get(c, 0), end)
    return out


class StoreMachine(RuleBasedStateMachine):
    opener: Opener  # set on a subclass per store

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.open = self.opener()
        self.store: Store = self.run(self.open())
        self.editors = Editors(CLIENTS)
        self.acked: list[bytes] = []
        self.read_plans: list[CompactPlan] = []  # compactors that read, not yet merged
        self.merged: list[tuple[CompactPlan, bytes]] = []  # merged, not yet committed
        self.reader = pycrdt.Doc()
        self.reader_epoch: str | None = None
        self.reader_seq = 0

    def run(self, coro: Awaitable[Any]) -> Any:
        return self.loop.run_until_complete(coro)

    def teardown(self) -> None:
        try:
            self.run(self.store.close())
        finally:
            self.loop.close()

    # writers --------------------------------------------------------------------------------

    @rule(client=st.integers(0, CLIENTS - 1), edits=st.integers(1, 4), given=st.booleans())
    def append(self, client: int, edits: int, given: bool) -> None:
        """``given``: the caller inspected the update (as DocService does), else the store."""
        for _ in range(edits):
            update = self.editors.edit(client)
            clocks = shape_clocks(yjs.inspect_update(update)) if given else None
            seq = self.run(self.store.append(DOC, update, clocks=clocks))
            self.acked.append(update)
            assert seq == len(self.acked)

    @rule(edits=st.lists(st.integers(0, CLIENTS - 1), min_size=2, max_size=12))
    def append_concurrently(self, edits: list[int]) -> None:
        """Several clients at once, nobody waiting for an acknowledgement in between."""
        updates = [self.editors.edit(c) for c in edits]

        async def all_of_them() -> list[int]:
            return list(await asyncio.gather(*(self.store.append(DOC, u) for u in updates)))

        seqs = self.run(all_of_them())
        assert seqs == list(range(len(self.acked) + 1, len(self.acked) + len(updates) + 1))
        self.acked += updates

    @rule(into=st.integers(0, CLIENTS - 1), source=st.integers(0, CLIENTS - 1))
    def sync(self, into: int, source: int) -> None:
        """A client receives another's edits (all acknowledged), so its next ones build on them."""
        if into != source:
            self.editors.sync(into, source)

    @rule()
    def delete(self) -> None:
        """The document goes; writing again starts a new life with fresh clients."""
        existed = self.run(self.store.delete(DOC))
        assert existed == bool(self.acked)
        self.acked = []
        self.editors = Editors(CLIENTS)

    # compactors, one step at a time ------------------------------------------------------------

    @rule()
    def compact_read(self) -> None:
        plan = self.run(self.store._compact_read(DOC))
        if plan is not None:
            assert plan.seq == len(self.acked) and len(plan.updates) == plan.seq - plan.base
            assert plan.clocks == summary(self.acked), "the summary of this life, as of seq"
            self.read_plans.append(plan)

    @precondition(lambda self: self.read_plans)
    @rule(data=st.data())
    def compact_merge(self, data: st.DataObject) -> None:
        plan = self.read_plans.pop(data.draw(st.integers(0, len(self.read_plans) - 1)))
        merged = yjs.merge(plan.snapshot, plan.updates, plan.clocks)
        assert merged == yjs.merge(plan.snapshot, plan.updates)  # the same as inspecting it all
        self.merged.append((plan, merged))

    @precondition(lambda self: self.merged)
    @rule(data=st.data(), again=st.booleans())
    def compact_commit(self, data: st.DataObject, again: bool) -> None:
        i = data.draw(st.integers(0, len(self.merged) - 1))
        plan, snapshot = self.merged[i] if again else self.merged.pop(i)
        before = self.run(self.store.info(DOC))
        result = self.run(self.store._compact_commit(DOC, plan, snapshot))
        current = before is not None and (before.epoch, before.generation) == (
            plan.epoch, plan.generation,
        )  # fmt: skip
        assert (result is not None) == current, "a commit succeeds exactly when nothing changed"
        if result is not None:
            assert result.compacted == plan.seq - plan.base
            assert result.generation == plan.generation + (1 if plan.updates else 0)

    @precondition(lambda self: self.read_plans or self.merged)
    @rule(data=st.data())
    def compactor_crashes(self, data: st.DataObject) -> None:
        pending: list[Any] = [*self.read_plans, *self.merged]
        gone = pending[data.draw(st.integers(0, len(pending) - 1))]
        if gone in self.read_plans:
            self.read_plans.remove(gone)
        else:
            self.merged.remove(gone)

    @rule()
    def compact(self) -> None:
        result = self.run(self.store.compact(DOC))
        assert (result is None) == (not self.acked)

    @rule()
    def restart(self) -> None:
        """The store closes and opens again (a daemon restart; another node on Redis);
        compactors in flight live on (they ran elsewhere)."""
        self.run(self.store.close())
        self.store = self.run(self.open())

    # readers -------------------------------------------------------------------------------

    @rule()
    def reader_catches_up(self) -> None:
        tail = self.run(self.store.read(DOC, self.reader_seq, self.reader_epoch))
        if tail is None:
            self.reader, self.reader_epoch, self.reader_seq = pycrdt.Doc(), None, 0
            return
        if tail.epoch != self.reader_epoch:
            assert tail.snapshot is not None, "a reader of another epoch gets the snapshot"
            self.reader = pycrdt.Doc()
        if tail.snapshot:
            self.reader.apply_update(tail.snapshot)
        for update in tail.updates:
            self.reader.apply_update(update)
        self.reader_epoch, self.reader_seq = tail.epoch, tail.seq
        if self.reader_seq == len(self.acked):
            got = str(self.reader.get("t", type=pycrdt.Text)), yjs.doc_state(self.reader)
            assert got == expected(self.acked)

    # what always holds -------------------------------------------------------------------------

    @invariant()
    def stored_document_is_what_was_acknowledged(self) -> None:
        tail = self.run(self.store.read(DOC))
        info = self.run(self.store.info(DOC))
        if not self.acked:
            assert tail is None and info is None
            return
        assert tail is not None and info is not None and tail.snapshot is not None
        assert document(tail.snapshot, tail.updates) == expected(self.acked)
        assert (tail.seq, tail.base, tail.epoch) == (info.seq, info.base, info.epoch)
        assert info.seq == len(self.acked) and info.updates == len(tail.updates)
        assert info.log_bytes == sum(map(len, tail.updates))
        assert info.snapshot_bytes == len(tail.snapshot)
        assert info.generation > 0 or (info.base == 0 and not tail.snapshot)


def sqlite_opener(root: Path) -> Opener:
    counter = itertools.count()

    def per_example() -> Callable[[], Awaitable[Store]]:
        path = Path(tempfile.mkdtemp(dir=root)) / f"docs-{next(counter)}.sqlite3"

        async def open_store() -> Store:
            store = SqliteDocStore(path)
            await store.start()
            return store

        return open_store

    return per_example


def redis_opener(url: str) -> Opener:
    def per_example() -> Callable[[], Awaitable[Store]]:
        prefix = unique_prefix()

        async def open_store() -> Store:
            return RedisDocStore(open_client(url), prefix)

        return open_store

    return per_example


def test_sqlite_store_survives_anything(tmp_path: Path) -> None:
    machine = type(
        "SqliteMachine", (StoreMachine,), {"opener": staticmethod(sqlite_opener(tmp_path))}
    )
    run_state_machine_as_test(machine, settings=SETTINGS)


def test_redis_store_survives_anything(redis_server: Any) -> None:
    machine = type(
        "RedisMachine", (StoreMachine,), {"opener": staticmethod(redis_opener(redis_server.url))}
    )
    run_state_machine_as_test(machine, settings=SETTINGS)


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_machine_smoke(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """One fixed run through every rule, so a broken rule fails plainly, not as a shrunk example."""
    if kind == "sqlite":
        opener = sqlite_opener(tmp_path)
    else:
        opener = redis_opener(request.getfixturevalue("redis_server").url)
    machine_class = type("Smoke", (StoreMachine,), {"opener": staticmethod(opener)})
    m = machine_class()
    try:
        m.append(0, 3, False)
        m.append_concurrently([0, 1, 2, 1])
        m.compact_read()
        m.compact_read()
        m.read_plans, first = m.read_plans[:1], m.read_plans[1]
        m.merged.append((first, yjs.merge(first.snapshot, first.updates)))
        m.append(1, 2, True)
        m.stored_document_is_what_was_acknowledged()

        class Draw:
            def draw(self, strategy: Any) -> int:
                return 0

        m.compact_commit(Draw(), again=True)  # type: ignore[arg-type]
        m.compact_commit(Draw(), again=False)  # type: ignore[arg-type]  # refused: stale
        m.compact_merge(Draw())  # type: ignore[arg-type]
        m.compact_commit(Draw(), again=False)  # type: ignore[arg-type]
        m.reader_catches_up()
        m.restart()
        m.sync(0, 1)
        m.append(0, 2, True)
        m.compact()
        m.reader_catches_up()
        m.compact_read()
        m.delete()
        m.stored_document_is_what_was_acknowledged()
        m.append(2, 1, False)
        m.compact_merge(Draw())  # type: ignore[arg-type]
        m.compact_commit(Draw(), again=False)  # type: ignore[arg-type]  # old epoch: refused
        m.reader_catches_up()
        m.stored_document_is_what_was_acknowledged()
    finally:
        m.teardown()
