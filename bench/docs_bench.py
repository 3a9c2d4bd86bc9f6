"""Benchmark collaborative documents (rtctl.docs) against the issue's goals, in one run.

  python bench/docs_bench.py [--quick] [--only e2e,load,compact,memory,amp] [--json FILE]

e2e      updates/s on ONE document with 100 observers and the writer-emit -> observer-receipt
         latency (bench/docs_load.js: writers and observers in one Node process, one clock);
         one embedded daemon, and two Redis-mode daemons with observers and writers split.
load     cold load of a ~1 MiB document: in-process (store.read + pycrdt Doc + get_update) on
         SQLite and Redis, and the first ydoc:document:join -> state on a fresh daemon vs warm.
compact  store.compact of a 40k-update log (SQLite, Redis), and yjs.merge alone, split.
memory   RSS growth of a fresh process holding K loaded pycrdt Docs, per Doc, vs its snapshot.
amp      write amplification of DocService's auto-compaction policy over long editing
         sessions on SQLite (logical, and bytes the SQLite thread wrote).

Every document is made by pycrdt clients typing ASCII text (pycrdt's local editing mis-encodes
non-ASCII text); each edit is sent as its transaction's update, as a Yjs client sends it.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import contextlib
import gc
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pycrdt
from run import json_lines
from targets import (
    BENCH,
    JWT_SECRET,
    base_env,
    code_state,
    cpu_seconds,
    free_port,
    kill_all,
    kill_group,
    rss_kib,
    spawn,
    wait_ready,
)

ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))
from rtctl.docs import compaction, yjs  # noqa: E402
from rtctl.docs.service import DocService  # noqa: E402
from rtctl.docs.sqlite import SqliteDocStore  # noqa: E402
from rtctl.docs.store import DocStore  # noqa: E402
from rtctl.server.lifecycle import tune_gc  # noqa: E402
from tests.redis_server import RedisServer  # noqa: E402

Result = dict[str, Any]
PY = sys.executable
LOAD_JS = str(BENCH / "docs_load.js")
ADMIN_TOKEN = "bench-admin-0123456789abcdef0123456789abcdef"
LIMITS_OFF = {
    "RTCTL_RATE_LIMIT": "0",
    "RTCTL_MAX_SESSIONS_PER_USER": "0",
    "RTCTL_CONNECT_RATE": "0",
}
MIB = 1 << 20
ANCHOR = "y-redis/yhub: ~1,000 updates/s, p99 4.4 ms (published figure, not run here)"
ANCHOR_RATE, ANCHOR_P99 = 1000.0, 4.4
SQLITE_THREAD = "rtctl-docs-sqlite"


def ms(seconds: float) -> float:
    return seconds * 1000


def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def note(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# documents: pycrdt clients typing ------------------------------------------------------------

WORDS = [
    "the",
    "of",
    "and",
    "to",
    "in",
    "is",
    "for",
    "on",
    "that",
    "with",
    "as",
    "by",
    "at",
    "from",
    "this",
    "be",
    "are",
    "or",
    "it",
    "an",
    "was",
    "we",
    "can",
]


class Typists:
    """pycrdt clients editing one shared Text "t", ASCII only. ``edit`` returns the update of
    the edit's transaction (what a Yjs client sends); clients build only on what they have
    (their own edits and what they synced), so a log in the order made always integrates."""

    def __init__(self, clients: int = 3, seed: int = 0, base: bytes | None = None) -> None:
        self.rng = random.Random(seed)
        # client ids (uint32, as Yjs makes them) from the seed: update sizes repeat exactly
        self.docs: list[pycrdt.Doc] = [
            pycrdt.Doc(client_id=self.rng.getrandbits(32)) for _ in range(clients)
        ]
        self.texts = [d.get("t", type=pycrdt.Text) for d in self.docs]
        self._remote = False
        self._last = b""
        self._subs = [d.observe(self._on_update) for d in self.docs]
        if base:
            self._remote = True
            for d in self.docs:
                d.apply_update(base)
            self._remote = False
        self.cursor = [self.rng.randint(0, len(t)) for t in self.texts]

    def _on_update(self, event: Any) -> None:
        if not self._remote:
            self._last = event.update

    def _chars(self, n: int) -> str:
        out = ""
        while len(out) < n:
            out += self.rng.choice(WORDS) + " "
        return out[:n]

    def edit(self, c: int, *, lines: bool = False) -> bytes:
        """Typing: 1-3 characters at the cursor, a backspace now and then, a jump elsewhere
        rarely; ``lines``: mostly whole lines (20-120 characters) instead."""
        t, rng = self.texts[c], self.rng
        n = len(t)
        pos = min(self.cursor[c], n)
        roll = rng.random()
        jump, delete = (0.10, 0.25) if lines else (0.05, 0.12)
        self._last = b""
        if roll < jump:
            self.cursor[c] = pos = rng.randint(0, n)
            roll = 0.5  # then type
        if n > 4 and jump <= roll < delete:
            k = rng.randint(1, 30) if lines else 1
            start = max(0, pos - k) if pos else 0
            end = pos if pos else min(n, k)
            del t[start:end]
            self.cursor[c] = start
        else:
            text = self._chars(rng.randint(20, 120) if lines and roll < 0.75 else rng.randint(1, 3))
            t.insert(pos, text)
            self.cursor[c] = pos + len(text)
        assert self._last, "an edit made no update"
        return self._last

    def sync_all(self) -> None:
        self._remote = True
        try:
            for i, dst in enumerate(self.docs):
                for j, src in enumerate(self.docs):
                    if i != j:
                        dst.apply_update(src.get_update(dst.get_state()))
        finally:
            self._remote = False
        for c, t in enumerate(self.texts):
            self.cursor[c] = min(self.cursor[c], len(t))

    def session(self, n: int, sync_every: int = 50) -> list[bytes]:
        """n typing edits by clients taking turns at random, syncing every ``sync_every``."""
        out = []
        for i in range(n):
            out.append(self.edit(self.rng.randrange(len(self.docs))))
            if i % sync_every == sync_every - 1:
                self.sync_all()
        self.sync_all()
        return out

    def text(self) -> str:
        return str(self.texts[0])


def build_document(target: int, seed: int = 0) -> tuple[bytes, int]:
    """A merged state of at least ``target`` bytes made by three clients typing lines and
    words, deleting and moving around; (state, characters of text)."""
    t = Typists(3, seed)
    check = max(20, min(1000, target // 1000))  # edits between looks at the size
    i = 0
    while True:
        t.edit(t.rng.randrange(3), lines=True)
        i += 1
        if i % 100 == 0 or i % check == 0:
            t.sync_all()
        if i % check == 0 and len(state := t.docs[0].get_update()) >= target:
            return state, len(t.texts[0])


def text_of(update: bytes) -> str:
    doc: pycrdt.Doc = pycrdt.Doc()
    doc.apply_update(update)
    return str(doc.get("t", type=pycrdt.Text))


# stores ----------------------------------------------------------------------------------------


def sqlite_store(path: Path) -> SqliteDocStore:
    return SqliteDocStore(path, max_doc_bytes=64 * MIB)


def redis_store(url: str, prefix: str) -> DocStore:
    from rtctl.docs.redis import RedisDocStore
    from rtctl.state.redis_url import open_client

    return RedisDocStore(open_client(url), prefix, max_doc_bytes=64 * MIB)


async def append_all(store: DocStore, doc_id: str, updates: list[bytes], group: int) -> None:
    """Append in groups of ``group`` concurrent appends (one SQLite commit per group)."""
    for i in range(0, len(updates), group):
        await asyncio.gather(*(store.append(doc_id, u) for u in updates[i : i + group]))


def thread_io(name: str) -> Callable[[], dict[str, int]]:
    """A reader of /proc/self/task/<tid>/io for the thread called ``name``."""
    tid = next(t.native_id for t in threading.enumerate() if t.name == name)

    def read() -> dict[str, int]:
        out = {}
        for line in Path(f"/proc/self/task/{tid}/io").read_text().splitlines():
            k, v = line.split(":")
            out[k] = int(v)
        return out

    return read


# daemons and the Node load generator -----------------------------------------------------------


@dataclass
class Daemon:
    name: str
    proc: subprocess.Popen[bytes]
    url: str
    log: Path

    @property
    def pid(self) -> int:
        return self.proc.pid


def start_daemons(
    scratch: Path, names: list[str], redis_url: str = "", prefix: str = "docbench"
) -> list[Daemon]:
    """`python -m rtctl.server` per name (data dir scratch/name), all ready, or none left."""
    started: list[Daemon] = []
    try:
        for name in names:
            port, data = free_port(), scratch / name
            data.mkdir(parents=True, exist_ok=True)
            env = {**base_env(), **LIMITS_OFF, "RTCTL_HOST": "127.0.0.1", "RTCTL_PORT": str(port),
                   "RTCTL_DATA_DIR": str(data), "RTCTL_JWT_SECRET": JWT_SECRET,
                   "RTCTL_ADMIN_TOKEN": ADMIN_TOKEN, "RTCTL_LOG_LEVEL": "warning"}  # fmt: skip
            if redis_url:
                env |= {"RTCTL_REDIS_URL": redis_url, "RTCTL_PREFIX": prefix, "RTCTL_NODE_ID": name}
            log = scratch / f"{name}-{port}.log"
            with log.open("wb") as out:
                proc = spawn([PY, "-m", "rtctl.server"], env=env, cwd=ROOT, stdout=out, stderr=out)
            started.append(Daemon(name, proc, f"http://127.0.0.1:{port}", log))
        for d in started:
            try:
                wait_ready(d.proc, d.url, 30)
            except RuntimeError as exc:
                tail = d.log.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{d.name}: {exc}\n{tail}") from None
    except BaseException:
        stop(started)
        raise
    return started


def stop(daemons: list[Daemon]) -> None:
    for d in daemons:
        kill_group(d.proc)


@contextlib.contextmanager
def daemons(
    scratch: Path, names: list[str], redis_url: str = "", prefix: str = "docbench"
) -> Iterator[list[Daemon]]:
    started = start_daemons(scratch, names, redis_url, prefix)
    try:
        yield started
    finally:
        stop(started)


def token() -> str:
    from rtctl.auth import issue_token

    return issue_token(JWT_SECRET, "bench", name="bench", docs=["*"], ttl=3600)


def node_load(
    mode: str, urls: list[str], opts: list[str], timeout: float = 180,
    on_phase: Callable[[str], None] | None = None,
) -> Result:  # fmt: skip
    """Run bench/docs_load.js to completion; its last JSON line is the result."""
    argv = ["node", LOAD_JS, mode, "--urls", ",".join(urls), "--token", token(), *opts]
    proc = spawn([*argv, "--timeout", str(int(timeout))], stdout=subprocess.PIPE)
    try:
        result: Result = {}
        for msg in json_lines(proc, time.monotonic() + timeout + 60):
            if "phase" in msg:
                if on_phase:
                    on_phase(msg["phase"])
            else:
                result = msg
        if "error" in result:
            raise RuntimeError(f"docs_load.js {mode}: {result['error']}")
        if not result:
            raise RuntimeError(f"docs_load.js {mode} exited with {proc.wait()} and no result")
        return result
    finally:
        kill_group(proc)


@contextlib.contextmanager
def redis_server(scratch: Path) -> Iterator[RedisServer]:
    server = RedisServer(scratch / f"redis-{free_port()}")
    server.workdir.mkdir(parents=True)
    server.start()
    try:
        yield server
    finally:
        server.kill()


# 1. end to end -------------------------------------------------------------------------------


@dataclass(frozen=True)
class E2E:
    label: str
    nodes: int  # 0: one embedded daemon; else Redis-mode daemons
    writers: int
    window: int
    observers: int = 100
    array: bool = False  # updates as JSON arrays of byte values instead of binary


E2E_CASES = [
    E2E("embedded, 1 writer x 1 in flight", 0, 1, 1),
    E2E("embedded, 4 writers x 4 in flight", 0, 4, 4),
    E2E("embedded, 4 writers x 4, updates as JSON arrays", 0, 4, 4, array=True),
    E2E("embedded, 1 writer x 1, 1 observer (no fan-out)", 0, 1, 1, observers=1),
    E2E("embedded, 4 writers x 4, 1 observer (no fan-out)", 0, 4, 4, observers=1),
    E2E("redis 2 daemons, 1 writer x 1 in flight", 2, 1, 1),
    E2E("redis 2 daemons, 4 writers x 4 in flight", 2, 4, 4),
]


def e2e_one(scratch: Path, case: E2E, redis: RedisServer | None, updates: int) -> Result:
    names = [f"e2e-{uuid.uuid4().hex[:6]}-{i}" for i in range(case.nodes or 1)]
    url = redis.url if case.nodes and redis else ""
    with daemons(scratch, names, url) as ds:
        pids = {d.name: d.pid for d in ds}
        if url and redis and redis.proc:
            pids["redis"] = redis.proc.pid
        marks: dict[str, dict[str, float]] = {}

        def on_phase(phase: str) -> None:
            marks[phase] = {k: sum(cpu_seconds(p)) for k, p in pids.items()}
            marks[phase]["wall"] = time.monotonic()

        opts = ["--doc", f"e2e-{uuid.uuid4().hex[:8]}", "--observers", str(case.observers),
                "--writers", str(case.writers), "--window", str(case.window),
                "--updates", str(updates), *(["--array"] if case.array else [])]  # fmt: skip
        res = node_load("e2e", [d.url for d in ds], opts, on_phase=on_phase)
    start, end = marks["start"], marks["end"]
    daemon_cpu = sum(end[d] - start[d] for d in names)
    res["daemon_cpu_s"] = daemon_cpu
    res["redis_cpu_s"] = end.get("redis", 0.0) - start.get("redis", 0.0)
    res["daemon_util"] = daemon_cpu / (end["wall"] - start["wall"])
    res["daemon_us_per_update"] = daemon_cpu / max(1, res["acked"]) * 1e6
    res["daemon_us_per_delivery"] = daemon_cpu / max(1, res["received"]) * 1e6
    return res


async def append_latency(store: DocStore, updates: list[bytes]) -> list[float]:
    await store.start()
    try:
        out = []
        for u in updates:
            t = time.perf_counter()
            await store.append("latency", u)
            out.append(ms(time.perf_counter() - t))
        return out
    finally:
        await store.close()


async def e2e_split(scratch: Path, redis_url: str, n: int) -> Result:
    """What one update costs before its relay, in this process: the checks and the apply
    into the copy (as DocService._store_update), and one append on its own (SQLite: a commit
    with its fsync; Redis: one script call)."""
    updates = Typists(1, seed=21).session(n)
    doc: pycrdt.Doc = pycrdt.Doc()
    t0 = time.perf_counter()
    for u in updates:
        shape = yjs.inspect_update(u)
        shape.integrates_into(yjs.doc_state(doc))
        yjs.apply_checked(doc, u, shape)
    check_us = (time.perf_counter() - t0) / n * 1e6
    sqlite = await append_latency(sqlite_store(scratch / "split" / "documents.sqlite3"), updates)
    redis = await append_latency(redis_store(redis_url, "docsplit"), updates)
    q = statistics.quantiles
    return {
        "check_apply_us": check_us,
        "sqlite_append_ms": [median(sqlite), q(sqlite, n=100)[98]],
        "redis_append_ms": [median(redis), q(redis, n=100)[98]],
    }


def scenario_e2e(scratch: Path, args: argparse.Namespace) -> Result:
    updates = 400 if args.quick else 2000
    out: Result = {"anchor": ANCHOR, "cases": {}}
    with redis_server(scratch) as redis:
        note("e2e / in-process split of one update's path ...")
        out["split"] = asyncio.run(e2e_split(scratch, redis.url, 300 if args.quick else 1000))
        for case in E2E_CASES:
            note(f"e2e / {case.label} ...")
            try:
                res = e2e_one(scratch, case, redis, updates)
            except Exception as exc:
                res = {"error": f"{type(exc).__name__}: {exc}"}
            out["cases"][case.label] = res | {"nodes": case.nodes}
            note("   " + (res.get("error") or f"{res['updates_per_s']:,.0f} updates/s, "
                 f"p50 {res['p50_ms']:.1f} / p99 {res['p99_ms']:.1f} ms"))  # fmt: skip
    return out


# 2. cold load ----------------------------------------------------------------------------------


async def load_in_process(make: Callable[[], DocStore], doc_id: str, reps: int) -> Result:
    """A fresh store each time: read (snapshot + log), build the Doc, get_update."""
    rows: list[dict[str, float]] = []
    warm: list[float] = []
    for _ in range(reps):
        store = make()
        await store.start()
        try:
            t0, c0 = time.perf_counter(), time.process_time()
            tail = await store.read(doc_id)
            t1 = time.perf_counter()
            assert tail is not None and tail.snapshot, "the document is not a snapshot"
            doc: pycrdt.Doc = pycrdt.Doc()
            doc.apply_update(tail.snapshot)
            for u in tail.updates:
                doc.apply_update(u)
            t2 = time.perf_counter()
            state = doc.get_update()
            t3, c3 = time.perf_counter(), time.process_time()
            row = {"read_ms": t1 - t0, "build_ms": t2 - t1, "get_update_ms": t3 - t2,
                   "cpu_ms": c3 - c0}  # fmt: skip
            rows.append({k: ms(v) for k, v in row.items()} | {"total_ms": ms(t3 - t0)})
            assert len(state) >= len(tail.snapshot) // 2
            t4 = time.perf_counter()
            await store.read(doc_id)
            warm.append(ms(time.perf_counter() - t4))
        finally:
            await store.close()
    res: Result = {k: median([r[k] for r in rows]) for k in rows[0]}
    res["total_ms_all"] = [r["total_ms"] for r in rows]
    res["second_read_ms"] = median(warm)
    return res


async def store_document(store: DocStore, doc_id: str, state: bytes) -> int:
    """The document as a snapshot: appended as one update, then compacted."""
    await store.start()
    try:
        await store.delete(doc_id)
        await store.append(doc_id, state)
        result = await store.compact(doc_id)
        info = await store.info(doc_id)
        assert result is not None and info is not None and info.updates == 0, info
        return info.snapshot_bytes
    finally:
        await store.close()


async def store_with_log(
    make: Callable[[], DocStore], doc_id: str, state: bytes, log: list[bytes]
) -> None:
    """The document as a snapshot plus a log of typing updates after it."""
    await store_document(make(), doc_id, state)
    store = make()
    await store.start()
    try:
        await append_all(store, doc_id, log, 50)
    finally:
        await store.close()


def daemon_joins(
    scratch: Path, name: str, doc_id: str, reps: int, redis_url: str = "",
    prefix: str = "docload", array: bool = False, prewarm: bool = False,
) -> Result:  # fmt: skip
    firsts, warm, cold, pre = [], [], [], []
    state_bytes = 0
    for _ in range(reps):
        with daemons(scratch, [name], redis_url, prefix) as (d,):
            opts = ["--doc", doc_id, "--repeat", "5", *(["--array"] if array else [])]
            opts += ["--prewarm", "empty-doc"] if prewarm else []
            r = node_load("join", [d.url], opts, timeout=120)
        if prewarm:
            pre.append(r["prewarm_ms"])
        firsts.append(r["first_ms"])
        warm += r["warm_ms"]
        cold += r["cold_again_ms"]
        state_bytes = r["state_bytes"]
    return {"first_ms": median(firsts), "first_ms_all": firsts, "warm_ms": median(warm),
            "cold_again_ms": median(cold), "state_bytes": state_bytes,
            "prewarm_ms": median(pre)}  # fmt: skip


def encode_split(state: bytes) -> Result:
    """What the daemon does to send a state as JSON array vs binary: list(), python-socketio's
    Packet.encode (with the daemon's JSON codec), and the JSON encoding alone."""
    from socketio import packet as sio_packet

    from rtctl.server import strictjson

    class Packet(sio_packet.Packet):
        json = strictjson

    def event(value: Any) -> list[Any]:
        return ["ydoc:document:state", {"document_id": "d", "state": value, "sessions": []}]

    t0 = time.perf_counter()
    array = list(state)
    t1 = time.perf_counter()
    Packet(sio_packet.EVENT, data=event(array)).encode()
    t2 = time.perf_counter()
    strictjson.dumps(event(array), separators=(",", ":"))
    t3 = time.perf_counter()
    Packet(sio_packet.EVENT, data=event(state)).encode()
    t4 = time.perf_counter()
    return {"list_ms": ms(t1 - t0), "array_encode_ms": ms(t2 - t1), "json_dumps_ms": ms(t3 - t2),
            "binary_encode_ms": ms(t4 - t3)}  # fmt: skip


FIRST_DOC = """
import asyncio, json, time
import rtctl.docs.service, pycrdt
async def main():
    t0 = time.perf_counter(); pycrdt.Doc(); t1 = time.perf_counter(); pycrdt.Doc()
    print(json.dumps([(t1 - t0) * 1000, (time.perf_counter() - t1) * 1000]))
asyncio.run(main())
"""


def first_doc_ms() -> list[float]:
    """In a fresh process with rtctl.docs.service imported: the first and the second
    pycrdt.Doc() made inside a running event loop (ms)."""
    proc = subprocess.run([PY, "-c", FIRST_DOC], capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-2000:])
    return [float(x) for x in json.loads(proc.stdout)]


def scenario_load(scratch: Path, args: argparse.Namespace) -> Result:
    note("load / building a ~1 MiB document ...")
    t0 = time.perf_counter()
    state, chars = build_document(MIB)
    out: Result = {"state_bytes": len(state), "text_chars": chars,
                   "build_s": time.perf_counter() - t0, "stores": {}}  # fmt: skip
    out["encode"] = encode_split(state)
    out["first_doc_ms"] = median([first_doc_ms()[0] for _ in range(3)])
    reps, daemon_reps = (3, 1) if args.quick else (7, 3)
    log = Typists(3, seed=9, base=state).session(10_000)  # a log the hard cap would fold
    doc_id = "big-1mib"
    data = scratch / "load-embedded"
    db = data / "documents.sqlite3"
    with redis_server(scratch) as redis:
        makers: dict[str, Callable[[], DocStore]] = {
            "sqlite": lambda: sqlite_store(db),
            "redis": lambda: redis_store(redis.url, "docload"),
        }
        for name, make in makers.items():
            note(f"load / {name} ...")
            res: Result = {"snapshot_bytes": asyncio.run(store_document(make(), doc_id, state))}
            res["in_process"] = asyncio.run(load_in_process(make, doc_id, reps))
            asyncio.run(store_with_log(make, f"{doc_id}-log", state, log))
            res["with_log"] = asyncio.run(load_in_process(make, f"{doc_id}-log", reps))
            url = redis.url if name == "redis" else ""
            daemon = "load-embedded" if name == "sqlite" else "load-redis"
            res["daemon"] = daemon_joins(scratch, daemon, doc_id, daemon_reps, url)
            res["daemon_prewarmed"] = daemon_joins(
                scratch, daemon, doc_id, daemon_reps, url, prewarm=True
            )
            res["daemon_array"] = daemon_joins(scratch, daemon, doc_id, 1, url, array=True)
            out["stores"][name] = res
    return out


# 3. compaction ---------------------------------------------------------------------------------


def merge_split(updates: list[bytes], reps: int) -> Result:
    """yjs.merge as is, and its parts: inspect_update of every update (pure Python), applying
    them all to one Doc plus get_update (pycrdt), and pycrdt.get_state of each update."""
    keys = ("merge", "inspect", "apply_get", "get_state_each")
    rows: dict[str, list[float]] = {f"{k}_{u}": [] for k in keys for u in ("ms", "cpu_ms")}
    clocks = (time.perf_counter, time.thread_time)
    for _ in range(reps):
        t0 = [c() for c in clocks]
        merged = yjs.merge(None, updates)
        t1 = [c() for c in clocks]
        for u in updates:
            yjs.inspect_update(u)
        t2 = [c() for c in clocks]
        doc: pycrdt.Doc = pycrdt.Doc()
        for u in updates:
            doc.apply_update(u)
        doc.get_update()
        t3 = [c() for c in clocks]
        for u in updates:
            pycrdt.get_state(u)
        t4 = [c() for c in clocks]
        for key, a, b in zip(keys, (t0, t1, t2, t3), (t1, t2, t3, t4), strict=True):
            rows[f"{key}_ms"].append(ms(b[0] - a[0]))
            rows[f"{key}_cpu_ms"].append(ms(b[1] - a[1]))
    res: Result = {k: median(v) for k, v in rows.items()}
    res["merge_ms_all"] = rows["merge_ms"]
    res["snapshot_bytes"] = len(merged)
    return res


def profile_merge(updates: list[bytes], top: int = 6) -> list[str]:
    import cProfile
    import pstats

    prof = cProfile.Profile()
    prof.runcall(yjs.merge, None, updates)
    stats = pstats.Stats(prof)
    total = stats.total_tt  # type: ignore[attr-defined]
    rows = sorted(stats.stats.items(), key=lambda kv: -kv[1][2])[:top]  # type: ignore[attr-defined]
    out = []
    for (file, line, func), (_, calls, tottime, cumtime, _) in rows:
        where = f"{Path(file).name}:{line}({func})" if line else func
        out.append(
            f"{tottime / total:6.1%} self, {cumtime / total:6.1%} incl.  {calls:>9,}  {where}"
        )
    return out


async def timed_compact(store: DocStore, doc_id: str) -> Result:
    """store.compact, with the time of its read and commit steps (the rest is the merge)."""
    spent = {"read": 0.0, "commit": 0.0}
    s = cast(Any, store)
    orig_read, orig_commit = s._compact_read, s._compact_commit

    async def read(doc: str) -> Any:
        t = time.perf_counter()
        try:
            return await orig_read(doc)
        finally:
            spent["read"] += time.perf_counter() - t

    async def commit(doc: str, plan: Any, snapshot: bytes) -> Any:
        t = time.perf_counter()
        try:
            return await orig_commit(doc, plan, snapshot)
        finally:
            spent["commit"] += time.perf_counter() - t

    s._compact_read, s._compact_commit = read, commit
    try:
        t0, c0 = time.perf_counter(), time.process_time()
        result = await store.compact(doc_id)
        total, cpu = time.perf_counter() - t0, time.process_time() - c0
    finally:
        del s._compact_read, s._compact_commit
    assert result is not None and result.compacted, result
    read_s, commit_s = spent["read"], spent["commit"]
    return {
        "total_ms": ms(total),
        "cpu_ms": ms(cpu),
        "read_ms": ms(read_s),
        "commit_ms": ms(commit_s),
        "merge_ms": ms(total - read_s - commit_s),
        "compacted": result.compacted,
        "after_bytes": result.after_bytes,
    }


async def compact_store(
    make: Callable[[], DocStore], updates: list[bytes], reps: int, group: int, want: str
) -> Result:
    store = make()
    await store.start()
    rows = []
    try:
        for r in range(reps):
            doc_id = f"compact-{r}-{uuid.uuid4().hex[:6]}"
            t0 = time.perf_counter()
            await append_all(store, doc_id, updates, group)
            appended = time.perf_counter() - t0
            rows.append(await timed_compact(store, doc_id) | {"append_s": appended})
            tail = await store.read(doc_id)
            assert tail is not None and tail.snapshot is not None
            assert text_of(yjs.merge(tail.snapshot, tail.updates)) == want, "compaction lost text"
            await store.delete(doc_id)
    finally:
        await store.close()
    res: Result = {k: median([r[k] for r in rows]) for k in rows[0]}
    res["total_ms_all"] = [r["total_ms"] for r in rows]
    return res


def scenario_compact(scratch: Path, args: argparse.Namespace) -> Result:
    n = 40_000
    reps = 1 if args.quick else 3
    note(f"compact / {n:,} typing updates from 3 pycrdt clients ...")
    typists = Typists(3, seed=7)
    updates = typists.session(n)
    want = typists.text()
    out: Result = {"updates": n, "log_bytes": sum(map(len, updates)), "text_chars": len(want)}
    note("compact / yjs.merge alone ...")
    out["merge"] = merge_split(updates, reps)
    out["profile"] = profile_merge(updates)
    with redis_server(scratch) as redis:
        stores: dict[str, tuple[Callable[[], DocStore], int]] = {
            "sqlite": (lambda: sqlite_store(scratch / "compact" / "documents.sqlite3"), 1000),
            "redis": (lambda: redis_store(redis.url, "doccompact"), 50),
        }
        for name, (make, group) in stores.items():
            note(f"compact / {name} ...")
            out[name] = asyncio.run(compact_store(make, updates, reps, group, want))
    return out


# 4. memory -------------------------------------------------------------------------------------


def memory_worker(path: Path, count: int) -> None:
    """In a fresh process: RSS before and after holding ``count`` Docs loaded from the
    snapshot at ``path`` as the service holds them (Doc + apply_update; get_update once)."""
    snapshot = path.read_bytes()
    warm: pycrdt.Doc = pycrdt.Doc()
    warm.apply_update(snapshot)
    warm.get_update()
    del warm
    gc.collect()
    rss0 = rss_kib(os.getpid())
    docs = []
    for _ in range(count):
        doc: pycrdt.Doc = pycrdt.Doc()
        doc.apply_update(snapshot)
        doc.get_update()
        docs.append(doc)
    gc.collect()
    rss1 = rss_kib(os.getpid())
    print(json.dumps({"rss0_kib": rss0, "rss1_kib": rss1, "count": len(docs)}))


def memory_one(scratch: Path, kind: str, state: bytes, chars: int, budget: int) -> Result:
    path = scratch / f"snapshot-{len(state)}.bin"
    path.write_bytes(state)
    count = max(8, min(1000, budget // len(state)))
    argv = [PY, __file__, "--memory-worker", str(path), "--count", str(count)]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=600, cwd=ROOT)
    if proc.returncode != 0:
        raise RuntimeError(f"memory worker failed: {proc.stderr[-2000:]}")
    r = json.loads(proc.stdout)
    per_doc = (r["rss1_kib"] - r["rss0_kib"]) * 1024 / r["count"]
    return r | {
        "kind": kind,
        "snapshot_bytes": len(state),
        "text_chars": chars,
        "per_doc_bytes": per_doc,
        "ratio": per_doc / len(state),
    }


def scenario_memory(scratch: Path, args: argparse.Namespace) -> Result:
    sizes = [100 * 1024, MIB] if args.quick else [10 * 1024, 100 * 1024, MIB]
    budget = (16 if args.quick else 48) * MIB  # snapshot bytes held per size
    out: Result = {"sizes": []}
    for size in sizes:
        note(f"memory / {size // 1024} KiB snapshots ...")
        state, chars = build_document(size, seed=size)
        out["sizes"].append(memory_one(scratch, "lines and words", state, chars, budget))
    n = 10_000 if args.quick else 40_000
    note(f"memory / a document typed in {n:,} keystroke updates ...")
    typists = Typists(3, seed=3)
    state = yjs.merge(None, typists.session(n))
    out["sizes"].append(memory_one(scratch, "keystrokes", state, len(typists.text()), budget))
    return out


# 5. write amplification ------------------------------------------------------------------------


@dataclass
class Ledger:
    appended: int = 0
    snapshots: int = 0
    compactions: int = 0
    folded: int = 0
    info_calls: int = 0
    compact_ms: list[float] = field(default_factory=list)


def instrument(store: SqliteDocStore, ledger: Ledger) -> None:
    s = cast(Any, store)
    orig_commit, orig_info, orig_compact = s._compact_commit, s.info, s.compact

    async def commit(doc_id: str, plan: Any, snapshot: bytes) -> Any:
        result = await orig_commit(doc_id, plan, snapshot)
        if result is not None:
            ledger.snapshots += len(snapshot)
            ledger.compactions += 1
            ledger.folded += plan.seq - plan.base
        return result

    async def info(doc_id: str) -> Any:
        ledger.info_calls += 1
        return await orig_info(doc_id)

    async def compact(doc_id: str) -> Any:
        t = time.perf_counter()
        try:
            return await orig_compact(doc_id)
        finally:
            ledger.compact_ms.append(ms(time.perf_counter() - t))

    s._compact_commit, s.info, s.compact = commit, info, compact


async def amp_session(
    path: Path, updates: list[bytes], group: int, base: bytes | None, threshold: int
) -> Result:
    """DocService._store_update for every update (validation, copy, append, the auto-compaction
    policy), ``group`` at a time; bytes the SQLite thread wrote meanwhile."""
    store = sqlite_store(path)
    await store.start()
    svc = DocService(store, cast(Any, None), cast(Any, None), cast(Any, None),
                     compact_updates=threshold)  # fmt: skip
    doc_id = "amp"
    try:
        if base is not None:  # an existing document: one snapshot, outside the ledger
            await store.append(doc_id, base)
            await store.compact(doc_id)
        ledger = Ledger()
        instrument(store, ledger)
        io = thread_io(SQLITE_THREAD)
        doc = svc.copies.load(doc_id)
        io0, t0 = io(), time.perf_counter()
        for i in range(0, len(updates), group):
            chunk = updates[i : i + group]
            await asyncio.gather(*(svc._store_update(doc, u) for u in chunk))
            ledger.appended += sum(map(len, chunk))
        while svc._tasks:  # a compaction still running
            await asyncio.gather(*list(svc._tasks))
        seconds, io1 = time.perf_counter() - t0, io()
        info = await store.info(doc_id)
        assert info is not None
        since_base = b""
        if base is not None:  # what the copy holds beyond the original snapshot
            since_base = doc.ydoc.get_update(yjs.load(base).get_state())
    finally:
        await store.close()
    return {
        "since_base_bytes": len(since_base),
        "full_state_bytes": len(doc.ydoc.get_update()),
        "updates": len(updates), "group": group, "seconds": seconds,
        "appended_bytes": ledger.appended, "snapshot_bytes_written": ledger.snapshots,
        "compactions": ledger.compactions, "folded": ledger.folded,
        "info_calls": ledger.info_calls, "compact_ms_max": max(ledger.compact_ms, default=0.0),
        "amplification": (ledger.appended + ledger.snapshots) / ledger.appended,
        "thread_write_bytes": io1["write_bytes"] - io0["write_bytes"],
        "thread_wchar": io1["wchar"] - io0["wchar"],
        "final_snapshot_bytes": info.snapshot_bytes, "final_log_updates": info.updates,
        "final_log_bytes": info.log_bytes,
    }  # fmt: skip


def scenario_amp(scratch: Path, args: argparse.Namespace) -> Result:
    import rtctl.docs.compaction as service

    threshold = int(os.environ.get("RTCTL_DOC_COMPACT_UPDATES", "500"))
    if args.compact_ratio is not None:  # what-if, in this process only
        service.COMPACT_LOG_RATIO = args.compact_ratio
    if args.compact_hard is not None:
        service.COMPACT_HARD_FACTOR = args.compact_hard
    n_new, n_big, n_seq = (6_000, 11_000, 1_500) if args.quick else (30_000, 21_000, 3_000)
    out: Result = {"threshold": threshold, "ratio": service.COMPACT_LOG_RATIO,
                   "hard": service.COMPACT_HARD_FACTOR, "sessions": {}}  # fmt: skip
    big, _ = build_document(MIB, seed=5)
    sessions = [
        ("new document, 3 typists", Typists(3, seed=11).session(n_new), None, 8),
        ("1 MiB document, 3 typists", Typists(3, seed=12, base=big).session(n_big), big, 8),
        ("1 MiB document, lone typist", Typists(3, seed=13, base=big).session(n_seq), big, 1),
    ]
    for i, (label, updates, base, group) in enumerate(sessions):
        note(f"amp / {label}, {len(updates):,} typing updates, {group} at a time ...")
        path = scratch / f"amp-{i}" / "documents.sqlite3"
        out["sessions"][label] = asyncio.run(amp_session(path, updates, group, base, threshold))
    return out


# report ----------------------------------------------------------------------------------------


def table(header: list[str], rows: list[list[str]], align: str = "") -> str:
    """Columns aligned per ``align`` ('l' or 'r' each; default: the first left, others right)."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    align = align or "l" + "r" * (len(header) - 1)
    fmt = " | ".join(
        f"{{:{'<' if a == 'l' else '>'}{w}}}" for a, w in zip(align, widths, strict=True)
    )
    rule = "-|-".join("-" * w for w in widths)
    return "\n".join([fmt.format(*header), rule, *(fmt.format(*r) for r in rows)])


def verdict(value: float, goal: float) -> str:
    """For 'less is better' goals: met, or missed by how much."""
    if value != value:  # NaN
        return "n/a"
    if value <= goal:
        return "met"
    return f"missed by {value / goal - 1:.0%}"


def runs(xs: list[float], fmt: str = ".0f") -> str:
    return ", ".join(format(x, fmt) for x in xs)


def report_e2e(res: Result) -> tuple[str, list[list[str]]]:
    rows, summary = [], []
    for label, r in res["cases"].items():
        if "error" in r:
            rows.append([label, r["error"][:80], *[""] * 10])
            continue
        rate, p99 = r["updates_per_s"], r["p99_ms"]
        acks = f"{r['ack_p50_ms']:.1f} / {r['ack_p99_ms']:.1f}"
        rtt = f"{r['rtt_p50_ms']:.2f} / {r['rtt_p99_ms']:.2f}"
        anchor = f"{rate / ANCHOR_RATE:.2f}x / {p99 / ANCHOR_P99:.1f}x"
        rows.append(
            [
                label,
                f"{rate:,.0f}",
                f"{r['deliveries_per_s']:,.0f}",
                f"{r['p50_ms']:.1f}",
                f"{p99:.1f}",
                acks,
                rtt,
                f"{r['daemon_us_per_update']:,.0f}",
                f"{max(1, r['nodes']) * 1e6 / r['daemon_us_per_update']:,.0f}",
                f"{r['daemon_util']:.0%} / {r['client_util']:.0%}",
                anchor,
                f"{r['received']}/{r['expected']}",
            ]
        )
        if r["observers"] == 100:
            x_rate, x_p99 = f"{rate / ANCHOR_RATE:.2f}x anchor", f"{p99 / ANCHOR_P99:.1f}x anchor"
            summary.append([f"1. updates/s, {label}", "anchor ~1,000/s", f"{rate:,.0f}/s", x_rate])
            summary.append(
                [f"1. p99 propagation, {label}", "anchor 4.4 ms", f"{p99:.1f} ms", x_p99]
            )
    header = [
        "one document",
        "updates/s",
        "deliveries/s",
        "p50 ms",
        "p99 ms",
        "ack p50/p99 ms",
        "bare RTT p50/p99 ms",
        "daemon CPU µs/update",
        "ceiling/s, 1 core per daemon",
        "daemon / client util",
        "vs anchor rate / p99",
        "received/expected",
    ]
    foot = [f"anchor: {ANCHOR}"]
    if sp := res.get("split"):
        foot.append(
            f"one update in process: checks + apply into the copy {sp['check_apply_us']:.0f} µs;"
            f" one append alone, p50 / p99: SQLite {sp['sqlite_append_ms'][0]:.2f} /"
            f" {sp['sqlite_append_ms'][1]:.2f} ms, Redis {sp['redis_append_ms'][0]:.2f} /"
            f" {sp['redis_append_ms'][1]:.2f} ms"
        )
    cases = res["cases"]
    many, one = (
        cases.get(f"embedded, 4 writers x 4{x}", {})
        for x in (" in flight", ", 1 observer (no fan-out)")
    )
    if "by_url" in (r := cases.get("redis 2 daemons, 1 writer x 1 in flight", {})):
        (a, b) = r["by_url"]
        foot.append(
            f"redis 1x1: observers on the writer's daemon p50 {a['p50_ms']:.1f} / p99"
            f" {a['p99_ms']:.1f} ms, on the other daemon p50 {b['p50_ms']:.1f} / p99"
            f" {b['p99_ms']:.1f} ms"
        )
    if "daemon_us_per_update" in many and "daemon_us_per_update" in one:
        extra = (many["daemon_us_per_update"] - one["daemon_us_per_update"]) / 99
        foot.append(f"embedded 4x4: daemon CPU per extra observer ~{extra:.0f} µs per update")
    return table(header, rows) + "\n" + "\n".join(foot), summary


def report_load(res: Result) -> tuple[str, list[list[str]]]:
    rows, summary = [], []
    for name, r in res["stores"].items():
        ip, d, a, wl = r["in_process"], r["daemon"], r["daemon_array"], r["with_log"]
        pw = r["daemon_prewarmed"]
        pre = f"the empty document's join took {pw['prewarm_ms']:.1f}; {runs(pw['first_ms_all'])}"
        split = (
            f"read {ip['read_ms']:.1f}, Doc {ip['build_ms']:.1f}, get_update"
            f" {ip['get_update_ms']:.1f}; CPU {ip['cpu_ms']:.1f}; second read"
            f" {ip['second_read_ms']:.1f}"
        )
        array = f"warm {a['warm_ms']:.1f}, unloaded {a['cold_again_ms']:.1f}"
        log_split = f"read {wl['read_ms']:.1f}, Doc {wl['build_ms']:.1f}; CPU {wl['cpu_ms']:.1f}"
        rows += [
            [f"{name}: in process, fresh store", f"{ip['total_ms']:.1f}", split],
            [f"{name}: same + 10k-update log, in process", f"{wl['total_ms']:.1f}", log_split],
            [f"{name}: first join, fresh daemon", f"{d['first_ms']:.1f}", runs(d["first_ms_all"])],
            [f"{name}: first join, fresh daemon, after an empty doc", f"{pw['first_ms']:.1f}", pre],
            [f"{name}: join, already loaded (warm)", f"{d['warm_ms']:.1f}", "B joins while A in"],
            [f"{name}: join, unloaded, warm daemon", f"{d['cold_again_ms']:.1f}", "A rejoins"],
            [f"{name}: first join, JSON array state", f"{a['first_ms']:.1f}", array],
        ]
        total, first = ip["total_ms"], d["first_ms"]
        summary += [
            [
                f"2. cold load 1 MiB in process ({name})",
                "< 50 ms",
                f"{total:.1f} ms (CPU {ip['cpu_ms']:.1f})",
            ],
            [f"2. first join -> state, fresh daemon ({name})", "< 50 ms", f"{first:.1f} ms"],
        ]
        summary[-2].append(verdict(total, 50))
        summary[-1].append(verdict(first, 50))
    head = (
        f"document: {res['state_bytes']:,} bytes of merged state, {res['text_chars']:,}"
        f" characters (built in {res['build_s']:.1f} s)"
    )
    e = res["encode"]
    foot = (
        f"sending the state in process: as a JSON array, list() {e['list_ms']:.0f} ms +"
        f" python-socketio Packet.encode {e['array_encode_ms']:.0f} ms (of which the JSON"
        f" encoding alone {e['json_dumps_ms']:.0f} ms); as binary, Packet.encode"
        f" {e['binary_encode_ms']:.2f} ms. In a fresh process, the first pycrdt.Doc() made in a"
        f" running event loop takes {res['first_doc_ms']:.1f} ms (anyio imports its asyncio"
        " backend for the Doc's anyio.Lock), later ones ~0.01 ms"
    )
    return head + "\n" + table(
        ["cold load", "ms", "split / notes"], rows, "lrl"
    ) + "\n" + foot, summary


def report_compact(res: Result) -> tuple[str, list[list[str]]]:
    m = res["merge"]

    def both(key: str) -> list[str]:
        return [f"{m[key + '_ms']:.0f}", f"{m[key + '_cpu_ms']:.0f}"]

    rows = [
        ["yjs.merge(None, log) alone", *both("merge"), runs(m["merge_ms_all"])],
        ["  inspect_update of each (pure Python)", *both("inspect"), ""],
        ["  apply all to one Doc + get_update", *both("apply_get"), ""],
        ["  (pycrdt.get_state of each, to compare)", *both("get_state_each"), ""],
    ]
    summary = []
    for name in ("sqlite", "redis"):
        if not (r := res.get(name)):
            continue
        split = f"read {r['read_ms']:.0f}, merge {r['merge_ms']:.0f}, commit {r['commit_ms']:.0f}"
        total, cpu = r["total_ms"], r["cpu_ms"]
        cells = [f"{total:.0f}", f"{cpu:.0f}", f"{split}; {runs(r['total_ms_all'])}"]
        rows.append([f"{name}: store.compact", *cells])
        goal = [
            f"3. compact 40k-update log ({name})",
            "< 200 ms",
            f"{total:.0f} ms (CPU {cpu:.0f})",
        ]
        summary.append([*goal, verdict(total, 200)])
    head = (
        f"log: {res['updates']:,} updates, {res['log_bytes']:,} bytes; snapshot"
        f" {m['snapshot_bytes']:,} bytes; text {res['text_chars']:,} characters"
    )
    prof = "\n  ".join(["cProfile of yjs.merge (shares of its profiled time):", *res["profile"]])
    text = table(["compaction", "wall ms", "CPU ms", "split (wall) / runs"], rows, "lrrl")
    return f"{head}\n{text}\n{prof}", summary


def report_memory(res: Result) -> tuple[str, list[list[str]]]:
    rows, summary = [], []
    for r in res["sizes"]:
        ratio = r["ratio"]
        rows.append(
            [
                r["kind"],
                f"{r['snapshot_bytes']:,}",
                f"{r['text_chars']:,}",
                str(r["count"]),
                f"{r['per_doc_bytes'] / 1024:,.0f}",
                f"{ratio:.1f}x",
            ]
        )
        what = f"4. RSS per loaded doc, {r['snapshot_bytes'] // 1024:,} KiB ({r['kind']})"
        summary.append([what, "<= 10x snapshot", f"{ratio:.1f}x", verdict(ratio, 10)])
    header = [
        "typed as",
        "snapshot bytes",
        "text chars",
        "docs held",
        "RSS KiB/doc",
        "RSS/snapshot",
    ]
    return table(header, rows), summary


def report_amp(res: Result) -> tuple[str, list[list[str]]]:
    rows, summary = [], []
    for label, r in res["sessions"].items():
        amp, appended = r["amplification"], r["appended_bytes"]
        rows.append(
            [
                f"{label}, {r['group']} at a time",
                f"{r['updates']:,}",
                f"{appended:,}",
                f"{r['snapshot_bytes_written']:,}",
                str(r["compactions"]),
                f"{amp:.2f}x",
                f"{r['thread_write_bytes']:,}",
                f"{r['thread_write_bytes'] / appended:.0f}x",
                f"{r['info_calls']:,}",
                f"{r['compact_ms_max']:.0f}",
            ]
        )
        if r["compactions"]:
            goal = [f"5. write amplification, {label}", "<= 1.5x", f"{amp:.2f}x"]
            summary.append([*goal, verdict(amp, 1.5)])
    header = [
        "session",
        "updates",
        "appended B",
        "snapshots B",
        "compactions",
        "amplification",
        "SQLite thread wrote B",
        "wrote/appended",
        "store.info calls",
        "slowest compact ms",
    ]
    foot = (
        f"policy: compact once the log holds >= {res['threshold']} updates and >="
        f" {res['ratio']:g}x the snapshot's bytes, or >= {res['threshold'] * res['hard']:,}"
        f" updates and >= {compaction.COMPACT_HARD_RATIO:g}x the snapshot's bytes"
    )
    if (r := res["sessions"].get("1 MiB document, 3 typists")) and r["since_base_bytes"]:
        foot += (
            f"\n1 MiB document after its {r['updates']:,} updates: the update from the original"
            f" snapshot's state vector is {r['since_base_bytes']:,} bytes, the whole state"
            f" {r['full_state_bytes']:,}"
        )
    return table(header, rows) + "\n" + foot, summary


SCENARIOS: dict[str, tuple[Callable[[Path, argparse.Namespace], Result],
                           Callable[[Result], tuple[str, list[list[str]]]]]] = {
    "e2e": (scenario_e2e, report_e2e),
    "load": (scenario_load, report_load),
    "compact": (scenario_compact, report_compact),
    "memory": (scenario_memory, report_memory),
    "amp": (scenario_amp, report_amp),
}  # fmt: skip


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", default=",".join(SCENARIOS), help="comma-separated: %(default)s")
    p.add_argument("--quick", action="store_true", help="fewer repetitions and updates")
    p.add_argument("--json", type=Path, help="also write all raw results here")
    p.add_argument("--compact-ratio", type=float, help="amp what-if: COMPACT_LOG_RATIO")
    p.add_argument("--compact-hard", type=int, help="amp what-if: COMPACT_HARD_FACTOR")
    p.add_argument("--memory-worker", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--count", type=int, default=1, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.only = [s for s in args.only.split(",") if s]
    for bad in set(args.only) - set(SCENARIOS):
        p.error(f"unknown scenario: {bad}")
    return args


def main() -> None:
    args = parse_args()
    if args.memory_worker:
        memory_worker(args.memory_worker, args.count)
        return
    atexit.register(kill_all)
    tune_gc()  # in-process measurements run with the daemon's GC settings
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwind: finally blocks kill
    started, load0, code0 = time.monotonic(), os.getloadavg()[0], code_state()
    results: dict[str, Result] = {}
    texts, summary = [], []
    with tempfile.TemporaryDirectory(prefix="rtctl-docs-bench-") as tmp:
        for name in args.only:
            run, report = SCENARIOS[name]
            scratch = Path(tmp) / name
            scratch.mkdir()
            try:
                results[name] = run(scratch, args)
                text, rows = report(results[name])
            except KeyboardInterrupt:
                sys.exit("interrupted; every daemon, redis-server and load generator was stopped")
            except Exception as exc:
                results[name] = {"error": f"{type(exc).__name__}: {exc}"}
                text, rows = f"{name}: {results[name]['error']}", []
            texts.append(f"## {name}\n{text}")
            summary += rows
    seconds, load1 = time.monotonic() - started, os.getloadavg()[0]
    print("\n\n".join(texts))
    print("\n## goals\n" + table(["goal", "target", "measured", "verdict"], summary, "lrrl"))
    print(f"\n{seconds:.0f} s; {os.cpu_count()} CPUs; load average {load0:.2f} at start, "
          f"{load1:.2f} at end.\nrtctl code: {code0}")  # fmt: skip
    if (code1 := code_state()) != code0:
        print(f"warning: rtctl/ changed on disk during the run; now {code1}")
    if args.json:
        meta = {"seconds": round(seconds), "load_1min": [load0, load1], "rtctl_code": code0}
        args.json.write_text(json.dumps({"meta": meta, **results}, indent=2))


if __name__ == "__main__":
    main()
