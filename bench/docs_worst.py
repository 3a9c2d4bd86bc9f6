"""Benchmark the worst shapes of Yjs updates and documents for the server's event loop: the
old path with its bounds lifted beside what the server does now at its default limits.

  python bench/docs_worst.py [--quick] [--only items,items-random,clients,deletes,big,keystroke]
                             [--json FILE|-] [--cap SECONDS]

Loop time: the wall time, in ms, of the synchronous work the server does on its event loop for
one request, two ways, on separate copies of the same document:

BEFORE  the old write path, bounds lifted: the state vector (yjs.doc_state) for the count of new
        client ids, yjs.inspect_update and that count ("inspect"), integrates_into(doc_state),
        apply_checked (pycrdt's apply, doc_state before and after) and shape_clocks: four
        decodes of the state vector per write, "vectors" the two outside apply_checked.
AFTER   DocService._write and Copies.commit now, at DocLimits(): limits.inspect with the copy's
        cached vector (LoadedDoc.state_vector, warm as after its last write), integrates_into,
        apply_with_state with it (one doc_state, after the apply), shape_clocks. Past a bound:
        the time until TooComplex, "refused". "cold vector": the copy changed since its last
        write (a catch-up), one more doc_state before. "doc over bound": accepted on a document
        the defaults never build (its K-client update is refused), as if stored before.
A state answer as a JSON array: BEFORE is what this bench measured, list(state) + json.dumps;
"list+Packet" the whole of it as FanoutManager.encode does it (python-socketio's Packet walks
the list for binary parts, then encodes); AFTER check_array_answer, then list+Packet.

Medians of up to 3 runs (fewer once they took 1.5 s; the JSON steps and loads of "big" once),
keystrokes of all. RSS: growth (/proc/self/statm) from the first BEFORE run, held, in a fresh
process per case and size; inputs are built in another process.

items         one update of N unmergeable one-character items (each typed at 0 in its own
              transaction) on an empty document; its cold load, get_update(). N = 1k-62k.
items-random  the same typed at random positions (both origins per item; made by Node yjs).
clients       one update of K client ids (K one-character documents merged) on an empty
              document; then keystrokes of one of those K on it (a new client would be the
              K+1th: refused at 8,000); yjs.doc_state and Doc.get_state alone. K = 100-74k.
deletes       one update that is only a delete set of N ranges (every other character of a
              2N-character item the document holds): pycrdt splits the item in 2N. N = 1k-200k.
big           states of 128 KiB (max_array_state), 256 KiB, 1 and 16 MiB typed in 1-16 KiB
              inserts: the answer as a JSON array, a cold load, get_update(), and an update
              arriving as an array (json.loads + bytes; engine.io refuses packets past
              max_payload, 1 MB).
keystroke     the baseline: 30 one-character updates of a typing client on 1 and 16 MiB.

--quick: N and K up to 12k and 8k, 128 KiB (~15 s; the full run ~1 min). Updates larger
than DocService's max_update (512 KiB) are marked: the server refuses them first. The run ends
with the worst AFTER loop time per shape among accepted requests.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import os
import pickle
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pycrdt
from socketio import packet as sio_packet
from targets import BENCH, code_state

ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))
from rtctl.docs import yjs  # noqa: E402
from rtctl.docs.copies import LoadedDoc  # noqa: E402
from rtctl.docs.limits import DocLimits  # noqa: E402
from rtctl.docs.store import shape_clocks  # noqa: E402
from rtctl.docs.yjs import TooComplex  # noqa: E402
from rtctl.server.lifecycle import tune_gc  # noqa: E402

Result = dict[str, Any]
Runs = list[dict[str, float]]
PY = sys.executable
KIB, MIB = 1 << 10, 1 << 20
PAGE = os.sysconf("SC_PAGE_SIZE")
LOOP_BUDGET_MS = 50.0
MAX_UPDATE = 512 * KIB  # DocService's default max_update: larger updates never reach these steps
LIMITS = DocLimits()  # the server's defaults
REPS = 3
STROKES = 9  # keystrokes per path on a K-client document
WORDS = ("the", "of", "and", "to", "in", "is", "for", "on", "that", "with", "as", "by", "at")

# Each character typed at a random position of one Y.Text, each in its own transaction.
RANDOM_ITEMS_JS = r"""
const Y = require('yjs');
const n = Number(process.argv[1]);
let s = Number(process.argv[2]) >>> 0;
const rand = () => {  // mulberry32
  s = (s + 0x6d2b79f5) >>> 0;
  let t = Math.imul(s ^ (s >>> 15), s | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
};
const doc = new Y.Doc();
doc.clientID = 2654435761;
const text = doc.getText('t');
for (let i = 0; i < n; i++) text.insert(Math.floor(rand() * (i + 1)), 'abcdefghij'[i % 10]);
process.stdout.write(Buffer.from(Y.encodeStateAsUpdate(doc)));
"""


def ms(seconds: float) -> float:
    return seconds * 1000


def rss_mb() -> float:
    """Resident set of this process, after a full collection."""
    gc.collect()
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE / MIB


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return ms(time.perf_counter() - t0), out


def repeat(fn: Callable[[], Any], reps: int = REPS, budget_ms: float = 1500.0) -> float:
    """Median ms of ``fn`` over ``reps`` runs, fewer once they have taken ``budget_ms``."""
    runs: list[float] = []
    while len(runs) < reps and (not runs or sum(runs) < budget_ms):
        runs.append(timed(fn)[0])
    return statistics.median(runs)


def runs_of(fn: Callable[[], dict[str, float]], runs: Runs | None = None) -> Runs:
    """``runs`` and more of ``fn()``, up to REPS, fewer once their totals reach 1.5 s."""
    runs = runs or [fn()]
    while len(runs) < REPS and sum(r["total"] for r in runs) < 1500:
        runs.append(fn())
    return runs


def summary(runs: Runs, prefix: str = "") -> Result:
    """The median of each step (keys prefixed), and an AFTER path's verdict."""
    out: Result = {prefix + k: statistics.median(r[k] for r in runs) for k in runs[0]}
    if "refused" in runs[0]:
        out[prefix + "verdict"] = "refused" if out.pop(prefix + "refused") else "ok"
    return out


# the two paths --------------------------------------------------------------------------------


def write_before(doc: pycrdt.Doc, update: bytes) -> dict[str, float]:
    """The loop time of one update on the old path, step by step in its order (DocService._write,
    then _commit; the store's append runs off the loop), its bounds lifted."""
    t0 = time.perf_counter()
    state = yjs.doc_state(doc)  # _write: self.limits.inspect(update, yjs.doc_state(doc.ydoc))
    t1 = time.perf_counter()
    shape = yjs.inspect_update(update)  # DocLimits.inspect, its bounds lifted ...
    _new = sum(1 for c in shape.structs if c not in state)  # ... and its count of new ids
    t2 = time.perf_counter()
    if not shape.integrates_into(yjs.doc_state(doc)):  # _write
        raise RuntimeError("a bench update does not integrate")
    t3 = time.perf_counter()
    yjs.apply_checked(doc, update, shape)  # _commit: doc_state before and after
    t4 = time.perf_counter()
    shape_clocks(shape)  # _commit, for the append
    t5 = time.perf_counter()
    return {"inspect": ms(t2 - t1), "vectors": ms(t1 - t0 + t3 - t2), "apply": ms(t4 - t3),
            "total": ms(t5 - t0)}  # fmt: skip


def write_after(doc: LoadedDoc, update: bytes) -> dict[str, float]:
    """The loop time of the same update now, at the default limits: DocService._write, then
    Copies.commit up to its append; a refusal ends it."""
    t0 = time.perf_counter()
    try:
        shape = LIMITS.inspect(update, doc.state_vector())
    except TooComplex:
        took = ms(time.perf_counter() - t0)
        return {"inspect": took, "total": took, "refused": 1}
    t1 = time.perf_counter()
    if doc.stale or not shape.integrates_into(doc.state_vector()):
        raise RuntimeError("a bench update does not integrate")
    changed, after = yjs.apply_with_state(doc.ydoc, update, shape, doc.state_vector())
    if changed:
        doc.version += 1
        doc.vector = (doc.version, after)
    t2 = time.perf_counter()
    shape_clocks(shape)
    t3 = time.perf_counter()
    return {"inspect": ms(t1 - t0), "apply": ms(t2 - t1), "total": ms(t3 - t0), "refused": 0}


def warm(ydoc: pycrdt.Doc) -> LoadedDoc:
    """A node's copy holding ``ydoc``, its state vector decoded (as after a write)."""
    copy = LoadedDoc("bench", ydoc=ydoc)
    copy.state_vector()
    return copy


def first_write(
    make_doc: Callable[[], pycrdt.Doc], update: bytes
) -> tuple[pycrdt.Doc, LoadedDoc, Result]:
    """The update written to documents from ``make_doc`` by both paths (RSS growth measured on
    the first BEFORE run): the document of the first BEFORE run, the copy of the last AFTER
    run, and the median of each step."""
    doc = make_doc()
    rss0 = rss_mb()
    before = [write_before(doc, update)]
    out: Result = {"rss": rss_mb() - rss0}
    before = runs_of(lambda: write_before(make_doc(), update), before)
    copies: list[LoadedDoc] = []

    def after() -> dict[str, float]:
        copies[:] = [warm(make_doc())]
        return write_after(copies[0], update)

    after_runs = runs_of(after)
    return doc, copies[0], {**out, **summary(before), **summary(after_runs, "a_")}


def sio_answer(state: bytes) -> dict[str, float]:
    """A state answer to a client that asked for an array, as the server encodes it:
    in_kind's list, python-socketio's Packet (its constructor walks the data for binary
    parts), encoded to JSON text (FanoutManager.encode)."""
    t0 = time.perf_counter()
    data = {"document_id": "bench", "state": yjs.in_kind(state, False), "sessions": ["bench"]}
    t1 = time.perf_counter()
    packet = sio_packet.Packet(sio_packet.EVENT, namespace="/", data=["ydoc:document:state", data])
    t2 = time.perf_counter()
    packet.encode()
    t3 = time.perf_counter()
    return {"list": ms(t1 - t0), "walk": ms(t2 - t1), "encode": ms(t3 - t2), "total": ms(t3 - t0)}


def answer_after(state: bytes) -> dict[str, float]:
    """DocService._send_state now, for a client asking for an array (binary: false)."""
    t0 = time.perf_counter()
    try:
        LIMITS.check_array_answer(len(state))
    except TooComplex:
        return {"total": ms(time.perf_counter() - t0), "refused": 1}
    steps = sio_answer(state)
    return {**steps, "total": ms(time.perf_counter() - t0), "refused": 0}


# inputs (built in their own process) ----------------------------------------------------------


def keystrokes(state: bytes, count: int, seed: int, client: int | None = None) -> list[bytes]:
    """``count`` one-character updates of ``client`` (else a new one) typing at one place in
    text "t", each its own transaction."""
    rng = random.Random(seed)
    doc = pycrdt.Doc(client_id=rng.getrandbits(32) if client is None else client)
    doc.apply_update(state)
    text = doc.get("t", type=pycrdt.Text)
    cursor = rng.randint(0, len(text))
    out: list[bytes] = []
    subscription = doc.observe(lambda event: out.append(event.update))
    for i in range(count):
        text.insert(cursor + i, rng.choice("etaoinshrdlu"))
    doc.unobserve(subscription)
    return out


def text_doc(size: int, seed: int = 7) -> bytes:
    """A text typed in 1-16 KiB inserts at random places, then at its end until its state is
    ``size`` bytes or one less: the state, as one update."""
    rng = random.Random(seed)
    corpus = " ".join(rng.choice(WORDS) for _ in range(50_000))
    doc = pycrdt.Doc(client_id=rng.getrandbits(32))
    text = doc.get("t", type=pycrdt.Text)
    typed = 0
    while typed < 0.97 * size - 16 * KIB:
        n = rng.randint(1024, 16 * KIB)
        at = rng.randrange(len(corpus) - n)
        text.insert(rng.randint(0, typed), corpus[at : at + n])
        typed += n
    while (gap := size - len(state := doc.get_update())) > 1:
        text.insert(len(text), corpus[: min(gap // 2, len(corpus))])  # extends one item
    if gap < 0:
        raise RuntimeError(f"text_doc({size}) overshot by {-gap} bytes")
    return state


def build_items(n: int) -> Result:
    doc = pycrdt.Doc(client_id=123456789)
    text = doc.get("t", type=pycrdt.Text)
    for i in range(n):  # each its own transaction: to the left of the last, so no squashing
        text.insert(0, "abcdefghij"[i % 10])
    return {"update": doc.get_update()}


def build_items_random(n: int) -> Result:
    made = subprocess.run(
        ["node", "-e", RANDOM_ITEMS_JS, str(n), "11"], cwd=ROOT, capture_output=True, check=True
    )
    return {"update": made.stdout}


def build_clients(k: int) -> Result:
    rng = random.Random(k)
    clients: set[int] = set()
    while len(clients) < k:
        clients.add(rng.getrandbits(32))
    updates = []
    for client in clients:
        doc = pycrdt.Doc(client_id=client)
        doc.get("t", type=pycrdt.Text).insert(0, "x")
        updates.append(doc.get_update())
    while len(updates) > 1:  # merge_updates is quadratic in its count: merge in groups
        updates = [pycrdt.merge_updates(*updates[i : i + 256]) for i in range(0, len(updates), 256)]
    typist = rng.choice(sorted(clients))
    return {"update": updates[0], "strokes": keystrokes(updates[0], 2 * STROKES, k, typist)}


def build_deletes(n: int) -> Result:
    client = 111
    doc = pycrdt.Doc(client_id=client)
    doc.get("t", type=pycrdt.Text).insert(0, "ab" * n)
    # No structs, one client's delete set: every "b". Byte for byte what pycrdt makes for the
    # same deletions in one transaction (which takes it minutes at 200k).
    out = bytearray(b"\x00")
    yjs.write_uint(out, 1)
    yjs.write_uint(out, client)
    yjs.write_uint(out, n)
    for i in range(n):
        yjs.write_uint(out, 2 * i + 1)
        yjs.write_uint(out, 1)
    return {"base": doc.get_update(), "update": bytes(out)}


def build_big(kib: int) -> Result:
    return {"state": text_doc(kib * KIB)}


def build_keystroke(mb: int) -> Result:
    state = text_doc(mb * MIB)
    return {"state": state, "strokes": keystrokes(state, 30, seed=mb)}


# measurements (each in a fresh process) -------------------------------------------------------


def measure_items(inputs: Result, n: int) -> Result:
    update = inputs["update"]
    _, _, out = first_write(pycrdt.Doc, update)
    loaded = yjs.load(update)
    structs = yjs.inspect_update(update).struct_count
    load = repeat(lambda: yjs.load(update))
    return {"size": len(update), "structs": structs, **out, "load": load,
            "get_update": repeat(loaded.get_update)}  # fmt: skip


def measure_clients(inputs: Result, k: int) -> Result:
    update, strokes = inputs["update"], inputs["strokes"]
    doc, copy, out = first_write(pycrdt.Doc, update)
    if out["a_verdict"] == "refused":  # never built at the defaults: as if stored before
        copy = warm(yjs.load(update))
    before = [write_before(doc, s) for s in strokes[:STROKES]]
    after = [write_after(copy, s) for s in strokes[:STROKES]]
    cold = []
    for s in strokes[STROKES:]:
        copy.vector = None  # the copy changed since its last write (a catch-up)
        cold.append(write_after(copy, s))
    ks = {**summary(before, "ks_"), **summary(after, "ks_a_"), **summary(cold, "ks_c_")}
    if out["a_verdict"] == "refused" and ks["ks_a_verdict"] == "ok":
        ks["ks_a_verdict"] = "doc over bound"
    return {"size": len(update), **out, **ks, "sv_size": len(doc.get_state()),
            "doc_state": repeat(lambda: yjs.doc_state(doc), reps=5),
            "get_state": repeat(doc.get_state, reps=5)}  # fmt: skip


def measure_deletes(inputs: Result, n: int) -> Result:
    base, update = inputs["base"], inputs["update"]
    doc, _, out = first_write(lambda: yjs.load(base), update)
    state = doc.get_update()
    return {"size": len(update), "ranges": yjs.inspect_update(update).struct_count, **out,
            "get_update": repeat(doc.get_update), "state_size": len(state),
            "load": repeat(lambda: yjs.load(state))}  # fmt: skip


def measure_big(inputs: Result, kib: int) -> Result:
    state = inputs["state"]
    rss0 = rss_mb()
    load, doc = timed(lambda: yjs.load(state))
    doc_rss = rss_mb() - rss0
    encoded = doc.get_update()  # what LoadedDoc.state_update answers
    rss1 = rss_mb()
    t0 = time.perf_counter()
    values = list(encoded)
    t1 = time.perf_counter()
    text = json.dumps(values, separators=(",", ":"))  # as python-socketio encodes a packet
    t2 = time.perf_counter()
    json_rss = rss_mb() - rss1  # the list and the JSON text, held at once
    del values
    t3 = time.perf_counter()
    bytes(json.loads(text))  # an update arriving as an array
    t4 = time.perf_counter()
    json_size = len(text)
    del text
    return {"size": len(encoded), "load": load, "doc_rss": doc_rss,
            "get_update": repeat(doc.get_update), "list": ms(t1 - t0), "dumps": ms(t2 - t1),
            "total": repeat(lambda: json.dumps(list(encoded), separators=(",", ":"))),
            "packet": summary(runs_of(lambda: sio_answer(encoded)))["total"],
            **summary(runs_of(lambda: answer_after(encoded)), "a_"),
            "json_size": json_size, "json_rss": json_rss, "array_in": ms(t4 - t3)}  # fmt: skip


def measure_keystroke(inputs: Result, mb: int) -> Result:
    state, strokes = inputs["state"], inputs["strokes"]
    doc, copy = yjs.load(state), warm(yjs.load(state))
    before = [write_before(doc, s) for s in strokes]
    after = [write_after(copy, s) for s in strokes]
    return {"size": statistics.median(len(s) for s in strokes), "doc_size": len(state),
            **summary(before), "max_total": max(r["total"] for r in before),
            **summary(after, "a_"), "a_max_total": max(r["total"] for r in after)}  # fmt: skip


# cases ----------------------------------------------------------------------------------------

Column = tuple[str, str, str]  # result key, header, kind: bytes, int, ms, mb, str
Table = tuple[str, tuple[Column, ...]]  # title, columns


def before_cols(p: str = "") -> tuple[Column, ...]:
    return ((p + "inspect", "inspect", "ms"), (p + "vectors", "vectors", "ms"),
            (p + "apply", "apply_checked", "ms"), (p + "total", "BEFORE", "ms"))  # fmt: skip


def after_cols(p: str = "a_") -> tuple[Column, ...]:
    return ((p + "inspect", "limits.inspect", "ms"), (p + "apply", "apply_with_state", "ms"),
            (p + "total", "AFTER", "ms"), (p + "verdict", "at defaults", "str"))  # fmt: skip


@dataclass(frozen=True)
class Case:
    build: Callable[[int], Result]
    measure: Callable[[Result, int], Result]
    params: tuple[int, ...]
    quick: tuple[int, ...]
    unit: str  # what the parameter counts
    tables: tuple[Table, ...]
    worst: tuple[tuple[str, str], ...]  # (shape, prefix of its AFTER keys) for the last lines


ITEMS: tuple[Column, ...] = (
    ("size", "size", "bytes"), ("structs", "structs", "int"), *before_cols(), *after_cols(),
    ("rss", "RSS MB", "mb"), ("load", "cold load", "ms"), ("get_update", "get_update", "ms"),
)  # fmt: skip
ITEMS_N = (1000, 10_000, 12_000, 62_000)
CASES: dict[str, Case] = {
    "items": Case(
        build_items, measure_items, ITEMS_N, (1000, 12_000), "N",
        (("one update of N unmergeable one-character items (typed at 0), on an empty document",
          ITEMS),), (("items", "a_"),),
    ),
    "items-random": Case(
        build_items_random, measure_items, ITEMS_N, (1000, 12_000), "N",
        (("one update of N one-character items typed at random places, on an empty document",
          ITEMS),), (("items-random", "a_"),),
    ),
    "clients": Case(
        build_clients, measure_clients, (100, 1000, 8000, 10_000, 74_000), (1000, 8000), "K",
        (("one update of K client ids (one character each) on an empty document",
          (("size", "size", "bytes"), *before_cols(), *after_cols(), ("rss", "RSS MB", "mb"))),
         (f"keystrokes of one of the K clients on that document (median of {STROKES} per path)",
          (*before_cols("ks_"), *after_cols("ks_a_"), ("ks_c_total", "AFTER, cold vector", "ms"),
           ("doc_state", "doc_state", "ms"), ("get_state", "get_state", "ms"),
           ("sv_size", "state vector", "bytes")))),
        (("clients", "a_"), ("clients keystroke", "ks_a_")),
    ),
    "deletes": Case(
        build_deletes, measure_deletes, (1000, 10_000, 12_000, 62_000, 200_000), (1000, 12_000),
        "N",
        (("one update holding only a delete set of N ranges, on a document of one 2N-character"
          " item",
          (("size", "size", "bytes"), ("ranges", "ranges", "int"), *before_cols(), *after_cols(),
           ("rss", "RSS MB", "mb"), ("get_update", "get_update", "ms"),
           ("state_size", "state after", "bytes"), ("load", "cold load after", "ms"))),),
        (("deletes", "a_"),),
    ),
    "big": Case(
        build_big, measure_big, (128, 256, 1024, 16 * 1024), (128,), "KiB",
        (("a text document's state answered as a JSON array (BEFORE: list(state) + json.dumps)",
          (("size", "state", "bytes"), ("list", "list(state)", "ms"), ("dumps", "json.dumps", "ms"),
           ("total", "BEFORE", "ms"), ("packet", "list+Packet", "ms"),
           ("a_walk", "Packet walk", "ms"), ("a_encode", "Packet.encode", "ms"),
           ("a_total", "AFTER", "ms"), ("a_verdict", "at defaults", "str"),
           ("json_size", "JSON", "bytes"), ("json_rss", "list+JSON RSS MB", "mb"),
           ("get_update", "get_update", "ms"),
           ("load", "cold load", "ms"), ("doc_rss", "doc RSS MB", "mb"),
           ("array_in", "loads+bytes()", "ms"))),),
        (("big (array answer)", "a_"),),
    ),
    "keystroke": Case(
        build_keystroke, measure_keystroke, (1, 16), (1,), "MB",
        (("one-character updates of a typing client on a document of MB MiB (30 keystrokes)",
          (("size", "update", "bytes"), ("doc_size", "document", "bytes"), *before_cols(),
           ("max_total", "max BEFORE", "ms"), *after_cols(), ("a_max_total", "max AFTER", "ms"))),),
        (("keystroke", "a_"),),
    ),
}  # fmt: skip


# running --------------------------------------------------------------------------------------


def child(args: argparse.Namespace) -> None:
    """One stage of one case and parameter, in this (fresh) process."""
    case = CASES[args.case]
    if args.stage == "build":
        args.file.write_bytes(pickle.dumps(case.build(args.param)))
        return
    inputs = pickle.loads(args.file.read_bytes())
    tune_gc()  # the daemon's GC settings
    result = case.measure(inputs, args.param)
    print(json.dumps(result))


def run_one(name: str, param: int, scratch: Path, cap: float) -> Result:
    """Build the inputs in one process and measure them in another; ``error`` when a stage
    fails or takes longer than ``cap`` seconds."""
    file = scratch / f"{name}-{param}.pickle"
    base = [PY, __file__, "--case", name, "--param", str(param), "--file", str(file)]
    out: Result = {"param": param}
    for stage in ("build", "measure"):
        started = time.monotonic()
        try:
            done = subprocess.run(
                [*base, "--stage", stage], capture_output=True, text=True, timeout=cap
            )
        except subprocess.TimeoutExpired:
            return {**out, "error": f"{stage} took longer than {cap:g} s"}
        out[f"{stage}_s"] = round(time.monotonic() - started, 1)
        if done.returncode != 0:
            lines = done.stderr.strip().splitlines() or [f"exit status {done.returncode}"]
            return {**out, "error": f"{stage}: {lines[-1]}"}
    file.unlink(missing_ok=True)
    return {**out, **json.loads(done.stdout)}


def cell(value: Any, kind: str) -> str:
    if value is None:
        return ""
    if kind == "str":
        return str(value)
    if kind == "bytes":
        if value < 1024:
            return f"{value:.0f} B"
        return f"{value / MIB:.1f} MB" if value >= 1000 * KIB else f"{value / KIB:.1f} KB"
    if kind == "int":
        return f"{value:,}"
    if kind == "mb":
        return f"{value:.1f}"
    return f"{value:.2f}" if value < 10 else f"{value:.1f}" if value < 100 else f"{value:,.0f}"


def table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    line = lambda r: " | ".join(  # noqa: E731
        c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))
    )
    return "\n".join([line(header), "-|-".join("-" * w for w in widths), *map(line, rows)])


def report(name: str, case: Case, rows: list[Result]) -> str:
    sized = case.unit in ("N", "K")  # an update, not a document: max_update applies
    texts = []
    for title, columns in case.tables:
        body = []
        for r in rows:
            mark = "*" if sized and r.get("size", 0) > MAX_UPDATE else ""
            if "error" in r:
                body.append([f"{r['param']:,}", r["error"], *[""] * (len(columns) - 1)])
            else:
                body.append(
                    [f"{r['param']:,}{mark}", *(cell(r.get(k), kd) for k, _, kd in columns)]
                )
        header = [case.unit, *(h for _, h, _ in columns)]
        texts.append(f"## {name}: {title} (ms; RSS MB)\n{table(header, body)}")
    if sized and any(r.get("size", 0) > MAX_UPDATE for r in rows):
        texts[-1] += f"\n* larger than DocService's max_update ({MAX_UPDATE // KIB} KiB)"
    return "\n\n".join(texts)


def worst(results: dict[str, list[Result]]) -> str:
    """Per shape: the worst AFTER loop time among accepted requests, and the slowest refusal."""
    lines = [f"## worst AFTER loop time per shape at the defaults (budget {LOOP_BUDGET_MS:g} ms)"]
    for name, rows in results.items():
        case = CASES[name]
        for shape, p in case.worst:
            found = {v: max(((r[p + "total"], r["param"]) for r in rows
                             if r.get(p + "verdict") == v), default=None)
                     for v in ("ok", "refused")}  # fmt: skip
            text = f"{shape:<19} accepted: "
            if found["ok"]:
                t, at = found["ok"]
                verdict = "under" if t < LOOP_BUDGET_MS else "OVER"
                text += (
                    f"{cell(t, 'ms')} ms at {case.unit} = {at:,}, {verdict} {LOOP_BUDGET_MS:g} ms"
                )
            else:
                text += "none measured"
            if found["refused"]:
                t, at = found["refused"]
                text += f"; slowest refusal {cell(t, 'ms')} ms ({case.unit} = {at:,})"
            if p == "ks_a_" and (
                cold := [r["ks_c_total"] for r in rows if r.get(p + "verdict") == "ok"]
            ):
                text += f"; with a cold vector {cell(max(cold), 'ms')} ms"
            lines.append(text)
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", default=",".join(CASES), help="comma-separated: %(default)s")
    p.add_argument("--quick", action="store_true", help="smaller N and K, 128 KiB")
    p.add_argument("--json", help="also write all results to this file ('-': only JSON, stdout)")
    p.add_argument("--cap", type=float, default=240.0, help="seconds per build or measurement")
    p.add_argument("--case", choices=CASES, help=argparse.SUPPRESS)
    p.add_argument("--param", type=int, help=argparse.SUPPRESS)
    p.add_argument("--stage", choices=("build", "measure"), help=argparse.SUPPRESS)
    p.add_argument("--file", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.only = [n.strip() for n in args.only.split(",") if n.strip()]
    if unknown := set(args.only) - set(CASES):
        p.error(f"unknown cases: {', '.join(sorted(unknown))}")
    return args


def main() -> None:
    args = parse_args()
    if args.case:
        child(args)
        return
    started, load0, code0 = time.monotonic(), os.getloadavg()[0], code_state()
    results: dict[str, list[Result]] = {}
    with tempfile.TemporaryDirectory(prefix="rtctl-docs-worst-") as tmp:
        for name in args.only:
            case = CASES[name]
            results[name] = []
            for param in case.quick if args.quick else case.params:
                print(f"{name} {param:,} ...", file=sys.stderr, flush=True)
                results[name].append(run_one(name, param, Path(tmp), args.cap))
    seconds, load1 = time.monotonic() - started, os.getloadavg()[0]
    meta = {"seconds": round(seconds), "load_1min": [load0, load1], "rtctl_code": code0,
            "limits": dataclasses.asdict(LIMITS), "pycrdt": getattr(pycrdt, "__version__", None),
            "quick": args.quick, "python": sys.version.split()[0]}  # fmt: skip
    if args.json == "-":
        print(json.dumps({"meta": meta, "results": results}, indent=2))
        return
    print(f"BEFORE: the old path, bounds lifted, 4 state-vector decodes per write. AFTER: {LIMITS}"
          ", the copy's state vector cached (one decode, after the apply).\n")  # fmt: skip
    print("\n\n".join(report(name, CASES[name], rows) for name, rows in results.items()))
    print("\n" + worst(results))
    print(f"\n{seconds:.0f} s; {os.cpu_count()} CPUs; load average {load0:.2f} at start, "
          f"{load1:.2f} at end.\nrtctl code: {code0}")  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps({"meta": meta, "results": results}, indent=2))


if __name__ == "__main__":
    main()
