"""The embedded document store: one SQLite file (WAL, ``synchronous=FULL``) in the data dir.

Every SQLite call runs on one dedicated thread, so the event loop never waits on the
disk. Callers queue requests to it; appends that queue up while a transaction
commits are committed together in the next one (group commit: one fsync for the
batch), and each caller's future resolves only after that commit, so an append is
durable when it returns.

Tables: ``docs`` (one row of counters per document), ``snapshots`` (the snapshot
blob, apart from ``docs`` so that an append, which rewrites its ``docs`` row, never
rewrites the snapshot), ``updates`` (the log, keyed by document and seq) and
``clocks`` (the clock summary: per document and Yjs client the highest clock + 1,
raised in the append's transaction; trusted while ``docs.clocks_seq`` is ``seq``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rtctl.docs.store import (
    MAX_DOC_BYTES,
    Clocks,
    CompactionFailed,
    CompactPlan,
    CompactResult,
    DocInfo,
    DocTail,
    DocumentTooLarge,
    compact_in_steps,
    update_clocks,
)
from rtctl.errors import BackendUnavailable

MAX_BATCH = 1024  # requests taken off the queue per turn of the worker
SCHEMA_VERSION = 2  # 2: the clock summary (docs.clocks_seq, clocks)
SCHEMA = """
CREATE TABLE IF NOT EXISTS docs (
    id TEXT PRIMARY KEY,
    epoch TEXT NOT NULL,
    seq INTEGER NOT NULL,
    base INTEGER NOT NULL,
    generation INTEGER NOT NULL,
    snapshot_bytes INTEGER NOT NULL,
    log_bytes INTEGER NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    clocks_seq INTEGER
);
CREATE TABLE IF NOT EXISTS snapshots (
    doc_id TEXT PRIMARY KEY,
    data BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS updates (
    doc_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (doc_id, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS clocks (
    doc_id TEXT NOT NULL,
    client INTEGER NOT NULL,
    upto INTEGER NOT NULL,
    PRIMARY KEY (doc_id, client)
) WITHOUT ROWID;
"""
RAISE_CLOCK = (
    "INSERT INTO clocks VALUES (?, ?, ?) ON CONFLICT (doc_id, client)"
    " DO UPDATE SET upto = excluded.upto WHERE excluded.upto > clocks.upto"
)
INFO_COLUMNS = "id, epoch, seq, base, generation, snapshot_bytes, log_bytes, created_at, updated_at"


def new_epoch() -> str:
    return secrets.token_hex(8)


def _info(row: tuple[Any, ...]) -> DocInfo:
    doc_id, epoch, seq, base, generation, snapshot_bytes, log_bytes, created, updated = row
    return DocInfo(
        doc_id, epoch, seq, base, seq - base, log_bytes, snapshot_bytes, generation,
        created, updated,
    )  # fmt: skip


def _error(exc: BaseException) -> BaseException:
    if isinstance(exc, sqlite3.Error):
        return BackendUnavailable(f"SQLite: {type(exc).__name__}: {exc}")
    return exc


@dataclass(slots=True)
class _Request:
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop
    append: bool


_Outcome = tuple[asyncio.Future[Any], Any, BaseException | None]


def _settle(outcomes: list[_Outcome]) -> None:
    for future, value, exc in outcomes:
        if future.done():  # the caller gave up (cancelled); the work is done regardless
            continue
        if exc is not None:
            future.set_exception(exc)
        else:
            future.set_result(value)


def _deliver(outcomes: list[tuple[_Request, Any, BaseException | None]]) -> None:
    by_loop: dict[asyncio.AbstractEventLoop, list[_Outcome]] = {}
    for req, value, exc in outcomes:
        by_loop.setdefault(req.loop, []).append((req.future, value, exc))
    for loop, items in by_loop.items():
        with contextlib.suppress(RuntimeError):  # that loop is closed: nobody waits
            loop.call_soon_threadsafe(_settle, items)


class SqliteDocStore:
    name = "sqlite"

    def __init__(self, path: Path, *, max_doc_bytes: int = MAX_DOC_BYTES) -> None:
        self.path = Path(path)
        self.max_doc_bytes = max_doc_bytes
        self._queue: queue.SimpleQueue[_Request | None] = queue.SimpleQueue()
        self._lock = threading.Lock()  # orders "still open?" + put against the stop marker
        self._thread: threading.Thread | None = None
        self._stopping = False

    # lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        if self._thread is not None:
            return
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()
        self._stopping = False
        thread = threading.Thread(
            target=self._run, args=(loop, ready), name="rtctl-docs-sqlite", daemon=True
        )
        self._thread = thread
        thread.start()
        try:
            await ready
        except BaseException:
            await asyncio.to_thread(thread.join)
            self._thread = None
            raise

    async def close(self) -> None:
        """Finish every queued request, close the database, stop the thread."""
        thread = self._thread
        if thread is None:
            return
        with self._lock:
            if not self._stopping:
                self._stopping = True
                self._queue.put(None)
        await asyncio.to_thread(thread.join)
        self._thread = None

    async def _call(self, fn: Callable[..., Any], *args: Any, append: bool = False) -> Any:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        with self._lock:
            if self._thread is None or self._stopping:
                raise BackendUnavailable("the document store is not running")
            self._queue.put(_Request(fn, args, future, loop, append))
        return await future

    # the worker thread ---------------------------------------------------------------------

    def _open(self) -> sqlite3.Connection:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)  # SQLite gives -wal, -shm its mode
        try:
            if os.fstat(fd).st_mode & 0o077:
                with contextlib.suppress(OSError):
                    os.fchmod(fd, 0o600)
        finally:
            os.close(fd)
        conn = sqlite3.connect(self.path, isolation_level=None, timeout=5.0)
        try:
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise BackendUnavailable(f"SQLite: {self.path} cannot use WAL (mode {mode})")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=OFF")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise BackendUnavailable(
                    f"SQLite: {self.path} has schema version {version}, newer than this rtctl"
                )
            conn.executescript(SCHEMA)
            columns = {r[1] for r in conn.execute("PRAGMA table_info(docs)")}
            if "clocks_seq" not in columns:  # version 1: documents without a summary
                conn.execute("ALTER TABLE docs ADD COLUMN clocks_seq INTEGER")
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except BaseException:
            conn.close()
            raise
        return conn

    def _run(self, loop: asyncio.AbstractEventLoop, ready: asyncio.Future[None]) -> None:
        try:
            conn = self._open()
        except BaseException as exc:
            failed: list[_Outcome] = [(ready, None, _error(exc))]
            loop.call_soon_threadsafe(_settle, failed)
            return
        opened: list[_Outcome] = [(ready, None, None)]
        loop.call_soon_threadsafe(_settle, opened)
        try:
            stop = False
            while not stop:
                batch = [self._queue.get()]
                while len(batch) < MAX_BATCH:
                    try:
                        batch.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                appends: list[_Request] = []
                for req in batch:
                    if req is None:
                        stop = True  # nothing is queued after the marker (the lock)
                    elif req.append:
                        appends.append(req)
                    else:
                        if appends:
                            _deliver(self._commit_appends(conn, appends))
                            appends = []
                        _deliver([self._execute(conn, req)])
                if appends:
                    _deliver(self._commit_appends(conn, appends))
        finally:
            with self._lock:  # (after an unexpected end too: nobody waits forever)
                self._stopping = True
            left: list[tuple[_Request, Any, BaseException | None]] = []
            while True:
                try:
                    req = self._queue.get_nowait()
                except queue.Empty:
                    break
                if req is not None:
                    left.append((req, None, BackendUnavailable("the document store stopped")))
            _deliver(left)
            with contextlib.suppress(sqlite3.Error):
                conn.execute("PRAGMA optimize")
            conn.close()

    def _execute(
        self, conn: sqlite3.Connection, req: _Request
    ) -> tuple[_Request, Any, BaseException | None]:
        try:
            return req, req.fn(conn, *req.args), None
        except Exception as exc:
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            return req, None, _error(exc)

    def _commit_appends(
        self, conn: sqlite3.Connection, reqs: list[_Request]
    ) -> list[tuple[_Request, Any, BaseException | None]]:
        """One transaction for the whole group; each append in a savepoint of its own,
        so a refused one leaves no trace and the others still commit."""
        outcomes: list[tuple[_Request, Any, BaseException | None]] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for req in reqs:
                conn.execute("SAVEPOINT append")
                try:
                    seq = req.fn(conn, *req.args)
                except Exception as exc:
                    conn.execute("ROLLBACK TO append")
                    conn.execute("RELEASE append")
                    outcomes.append((req, None, _error(exc)))
                else:
                    conn.execute("RELEASE append")
                    outcomes.append((req, seq, None))
            conn.execute("COMMIT")
        except Exception as exc:
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            err = _error(exc)
            own = {id(r): e for r, _, e in outcomes if e is not None}
            return [(r, None, own.get(id(r), err)) for r in reqs]
        return outcomes

    def _append_one(
        self, conn: sqlite3.Connection, doc_id: str, update: bytes, given: Clocks | None
    ) -> int:
        now = time.time()
        size = len(update)
        row = conn.execute(
            "SELECT seq, snapshot_bytes, log_bytes, clocks_seq FROM docs WHERE id = ?", (doc_id,)
        ).fetchone()
        stored = 0 if row is None else row[1] + row[2]
        if stored + size > self.max_doc_bytes:
            raise DocumentTooLarge(
                f"document {doc_id} would grow past {self.max_doc_bytes} bytes"
                f" ({stored} stored, update of {size})"
            )
        # the summary goes on while it covers every seq so far; inspected here, off the loop
        kept = row is None or row[3] == row[0]
        clocks = update_clocks(update, given) if kept else None
        summary = clocks is not None
        if row is None:
            seq = 1
            conn.execute(
                f"INSERT INTO docs ({INFO_COLUMNS}, clocks_seq)"
                " VALUES (?, ?, 1, 0, 0, 0, ?, ?, ?, ?)",
                (doc_id, new_epoch(), size, now, now, 1 if summary else None),
            )
            conn.execute("DELETE FROM clocks WHERE doc_id = ?", (doc_id,))  # (none should be)
        else:
            seq = row[0] + 1
            conn.execute(
                "UPDATE docs SET seq = ?, log_bytes = log_bytes + ?, updated_at = ?,"
                " clocks_seq = ? WHERE id = ?",
                (seq, size, now, seq if summary else None, doc_id),
            )
        conn.execute("INSERT INTO updates VALUES (?, ?, ?)", (doc_id, seq, update))
        if summary and clocks:
            conn.executemany(RAISE_CLOCK, [(doc_id, c, end) for c, end in clocks.items()])
        return seq

    # the store -----------------------------------------------------------------------------

    async def append(
        self,
        doc_id: str,
        update: bytes,
        clocks: Mapping[int, int] | None = None,
        key: bytes | None = None,  # (a failed call stored nothing: no key is needed)
    ) -> int:
        update = bytes(update)
        if len(update) > self.max_doc_bytes:  # refused without a trip to the thread
            raise DocumentTooLarge(
                f"an update of {len(update)} bytes exceeds the document bound"
                f" of {self.max_doc_bytes} bytes"
            )
        given = None if clocks is None else dict(clocks)
        seq: int = await self._call(self._append_one, doc_id, update, given, append=True)
        return seq

    async def read(self, doc_id: str, after: int = 0, epoch: str | None = None) -> DocTail | None:
        tail: DocTail | None = await self._call(_read, doc_id, after, epoch)
        return tail

    async def info(self, doc_id: str) -> DocInfo | None:
        info: DocInfo | None = await self._call(_get_info, doc_id)
        return info

    async def list(self) -> list[DocInfo]:
        infos: list[DocInfo] = await self._call(_list)
        return infos

    async def delete(self, doc_id: str) -> bool:
        deleted: bool = await self._call(_delete, doc_id)
        return deleted

    async def compact(self, doc_id: str) -> CompactResult | None:
        return await compact_in_steps(doc_id, self._compact_read, self._compact_commit)

    async def probe(self) -> None:
        await self._call(_probe)

    async def _compact_read(self, doc_id: str) -> CompactPlan | None:
        plan: CompactPlan | None = await self._call(_compact_read, doc_id)
        return plan

    async def _compact_commit(
        self, doc_id: str, plan: CompactPlan, snapshot: bytes
    ) -> CompactResult | None:
        """Store ``snapshot`` in place of the plan's snapshot and log, if the document is
        still in the plan's epoch and generation; None (and nothing written) if not."""
        result: CompactResult | None = await self._call(_compact_commit, doc_id, plan, snapshot)
        return result


# work done on the thread (each function takes the connection first) ------------------------


def _probe(conn: sqlite3.Connection) -> None:
    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")  # one page written, nothing changed


def _snapshot(conn: sqlite3.Connection, doc_id: str) -> bytes:
    row = conn.execute("SELECT data FROM snapshots WHERE doc_id = ?", (doc_id,)).fetchone()
    return bytes(row[0]) if row else b""


def _log(conn: sqlite3.Connection, doc_id: str, after: int) -> list[bytes]:
    rows = conn.execute(
        "SELECT data FROM updates WHERE doc_id = ? AND seq > ? ORDER BY seq", (doc_id, after)
    )
    return [bytes(r[0]) for r in rows]


def _clocks(conn: sqlite3.Connection, doc_id: str) -> Clocks:
    rows = conn.execute("SELECT client, upto FROM clocks WHERE doc_id = ?", (doc_id,))
    return {client: upto for client, upto in rows}


def _read(conn: sqlite3.Connection, doc_id: str, after: int, epoch: str | None) -> DocTail | None:
    conn.execute("BEGIN")
    try:
        row = conn.execute("SELECT epoch, seq, base FROM docs WHERE id = ?", (doc_id,)).fetchone()
        if row is None:
            return None
        stored_epoch, seq, base = row
        if epoch is None or epoch != stored_epoch or after < base:
            return DocTail(
                stored_epoch, seq, base, _snapshot(conn, doc_id), _log(conn, doc_id, base)
            )
        return DocTail(stored_epoch, seq, base, None, _log(conn, doc_id, after))
    finally:
        conn.execute("COMMIT")


def _get_info(conn: sqlite3.Connection, doc_id: str) -> DocInfo | None:
    row = conn.execute(f"SELECT {INFO_COLUMNS} FROM docs WHERE id = ?", (doc_id,)).fetchone()
    return _info(row) if row else None


def _list(conn: sqlite3.Connection) -> list[DocInfo]:
    return [_info(r) for r in conn.execute(f"SELECT {INFO_COLUMNS} FROM docs ORDER BY id")]


def _delete(conn: sqlite3.Connection, doc_id: str) -> bool:
    conn.execute("BEGIN IMMEDIATE")
    deleted = conn.execute("DELETE FROM docs WHERE id = ?", (doc_id,)).rowcount > 0
    conn.execute("DELETE FROM updates WHERE doc_id = ?", (doc_id,))
    conn.execute("DELETE FROM snapshots WHERE doc_id = ?", (doc_id,))
    conn.execute("DELETE FROM clocks WHERE doc_id = ?", (doc_id,))
    conn.execute("COMMIT")
    return deleted


def _compact_read(conn: sqlite3.Connection, doc_id: str) -> CompactPlan | None:
    conn.execute("BEGIN")
    try:
        row = conn.execute(
            "SELECT epoch, generation, base, seq, snapshot_bytes, log_bytes, clocks_seq"
            " FROM docs WHERE id = ?",
            (doc_id,),
        ).fetchone()
        if row is None:
            return None
        epoch, generation, base, seq, snapshot_bytes, log_bytes, clocks_seq = row
        updates = _log(conn, doc_id, base)
        snapshot = _snapshot(conn, doc_id) if base else None
        clocks = _clocks(conn, doc_id) if clocks_seq == seq else None
    finally:
        conn.execute("COMMIT")
    if len(updates) != seq - base:
        raise CompactionFailed(
            f"document {doc_id}: the log holds {len(updates)} updates where"
            f" {seq - base} were expected; not compacted"
        )
    return CompactPlan(
        epoch, generation, base, seq, snapshot, updates, snapshot_bytes, log_bytes, clocks
    )


def _compact_commit(
    conn: sqlite3.Connection, doc_id: str, plan: CompactPlan, snapshot: bytes
) -> CompactResult | None:
    conn.execute("BEGIN IMMEDIATE")
    row = conn.execute(
        "SELECT epoch, generation, log_bytes, snapshot_bytes FROM docs WHERE id = ?", (doc_id,)
    ).fetchone()
    if row is None or row[0] != plan.epoch or row[1] != plan.generation:
        conn.execute("ROLLBACK")
        return None
    if plan.seq == plan.base:  # nothing to compact: nothing written
        conn.execute("ROLLBACK")
        return CompactResult(doc_id, 0, plan.bytes, row[2] + row[3], plan.generation)
    log_bytes = row[2] - plan.updates_bytes
    conn.execute("DELETE FROM updates WHERE doc_id = ? AND seq <= ?", (doc_id, plan.seq))
    conn.execute("INSERT OR REPLACE INTO snapshots VALUES (?, ?)", (doc_id, snapshot))
    conn.execute(
        "UPDATE docs SET base = ?, generation = generation + 1, snapshot_bytes = ?,"
        " log_bytes = ?, updated_at = ? WHERE id = ?",
        (plan.seq, len(snapshot), log_bytes, time.time(), doc_id),
    )
    conn.execute("COMMIT")
    return CompactResult(
        doc_id, plan.seq - plan.base, plan.bytes, len(snapshot) + log_bytes, plan.generation + 1
    )
