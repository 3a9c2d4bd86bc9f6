"""Benchmark the worst shapes of Yjs updates and documents for the server's event loop.

  python bench/docs_worst.py [--quick] [--only items,items-random,clients,deletes,big,keystroke]
                             [--json FILE|-] [--cap SECONDS]

Loop time: the wall time of the synchronous work the server does on its event loop for one
request. For an update, step by step in DocService's order: the state vector (yjs.doc_state,
decoded for DocLimits.inspect), yjs.inspect_update (our pure-Python walk of the bytes, and
DocLimits' count of new client ids; its bounds lifted here), integrates_into(doc_state(doc)),
apply_checked (pycrdt's apply with an observer, doc_state before and after) and shape_clocks.
"vectors" is the two doc_state decodes outside apply_checked. Memory: RSS growth
(/proc/self/statm) in a fresh process per case and size; inputs are built by another process,
so building leaves nothing behind. Times are medians of up to 3 runs (fewer once they have
taken 1.5 s; the JSON steps and loads of "big" run once), keystrokes the median of all; RSS is
the growth from the first run, held.

items         one update of N one-character items that cannot squash (each typed at position 0
              in its own transaction) on an empty document: each step, RSS, a cold load of the
              same update into a fresh Doc, get_update() after. N = 1k, 10k, 62k.
items-random  the same, each character typed at a random position (both origins per item; made
              by Node yjs: pycrdt takes a minute to build 62k).
clients       one update carrying K client ids (K one-character documents merged with
              pycrdt.merge_updates) on an empty document, then keystrokes by another client on
              it: each step of their path, and yjs.doc_state and Doc.get_state alone.
              K = 100, 1k, 10k, 74k.
deletes       one update that is only a delete set of N ranges (every other character of a
              2N-character text the document holds as one item): no structs, so nothing in it
              counts against DocLimits.max_items, yet pycrdt splits the item in 2N. N = 1k-200k.
big           ~1 MB and ~16 MB text documents built in 1-16 KiB inserts: cold load, get_update(),
              a state answer as a JSON array (list(state) + json.dumps as python-socketio encodes)
              and an update arriving as one (json.loads + bytes(list)); RSS of the list and JSON.
keystroke     the baseline: one-character updates of a typing client on those documents.

--quick: N and K up to 10k and 1k, the 1 MB document only (~10 s; the full run ~30 s).
Inputs larger than DocService's max_update (512 KiB) are marked: the server refuses them first.
The run ends with the N, K or size at which each step crosses 50 ms of loop time.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import pickle
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pycrdt
from targets import BENCH, code_state

ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))
from rtctl.docs import yjs  # noqa: E402
from rtctl.docs.store import shape_clocks  # noqa: E402
from rtctl.server.lifecycle import tune_gc  # noqa: E402

Result = dict[str, Any]
PY = sys.executable
MIB = 1 << 20
PAGE = os.sysconf("SC_PAGE_SIZE")
LOOP_BUDGET_MS = 50.0
MAX_UPDATE = 512 * 1024  # DocService's default max_update: larger updates never reach these steps
REPS = 3
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


def note(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


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


# the server's path ----------------------------------------------------------------------------


def write_path(doc: pycrdt.Doc, update: bytes) -> dict[str, float]:
    """The loop time of one update that DocService stores, step by step in its order
    (DocService._write, then _commit); the store's append runs off the loop (SQLite)."""
    t0 = time.perf_counter()
    state = yjs.doc_state(doc)  # _write: self.limits.inspect(update, yjs.doc_state(doc.ydoc))
    t1 = time.perf_counter()
    shape = yjs.inspect_update(update)  # DocLimits.inspect, its bounds lifted ...
    _new = sum(1 for c in shape.structs if c not in state)  # ... and its count of new ids
    t2 = time.perf_counter()
    if not shape.integrates_into(yjs.doc_state(doc)):  # _write
        raise RuntimeError("a bench update does not integrate")
    t3 = time.perf_counter()
    yjs.apply_checked(doc, update, shape)  # _commit
    t4 = time.perf_counter()
    shape_clocks(shape)  # _commit, for the append
    t5 = time.perf_counter()
    return {
        "inspect": ms(t2 - t1),
        "vectors": ms(t1 - t0 + t3 - t2),
        "apply": ms(t4 - t3),
        "clocks": ms(t5 - t4),
        "total": ms(t5 - t0),
    }


def medians(runs: list[dict[str, float]], prefix: str = "") -> Result:
    return {prefix + k: statistics.median(r[k] for r in runs) for k in runs[0]}


def first_write(make_doc: Callable[[], pycrdt.Doc], update: bytes) -> tuple[pycrdt.Doc, Result]:
    """The update written to a document from ``make_doc`` (RSS growth measured on the first),
    then to fresh ones again while the runs are short: the document of the first run, and the
    median of each step."""
    doc = make_doc()
    rss0 = rss_mb()
    runs = [write_path(doc, update)]
    out: Result = {"rss": rss_mb() - rss0}
    while len(runs) < REPS and sum(r["total"] for r in runs) < 1500:
        runs.append(write_path(make_doc(), update))
    return doc, {**out, **medians(runs)}


# inputs (built in their own process) ----------------------------------------------------------


def observed(doc: pycrdt.Doc, edit: Callable[[], None]) -> list[bytes]:
    """The updates of the transactions ``edit`` makes on ``doc``."""
    out: list[bytes] = []
    subscription = doc.observe(lambda event: out.append(event.update))
    try:
        edit()
    finally:
        doc.unobserve(subscription)
    return out


def keystrokes(state: bytes, count: int, seed: int, *, taken: Collection[int] = ()) -> list[bytes]:
    """``count`` one-character updates of a new client typing at one place in text "t"."""
    rng = random.Random(seed)
    client = rng.getrandbits(32)
    while client in taken:
        client = rng.getrandbits(32)
    doc = pycrdt.Doc(client_id=client)
    doc.apply_update(state)
    text = doc.get("t", type=pycrdt.Text)
    cursor = rng.randint(0, len(text))

    def type_() -> None:
        for i in range(count):
            text.insert(cursor + i, rng.choice("etaoinshrdlu"))

    return observed(doc, type_)


def text_doc(mb: int, seed: int = 7) -> bytes:
    """A text of ``mb`` MiB typed in 1-16 KiB inserts at random places, as one update."""
    rng = random.Random(seed)
    corpus = " ".join(rng.choice(WORDS) for _ in range(50_000))
    doc = pycrdt.Doc(client_id=rng.getrandbits(32))
    text = doc.get("t", type=pycrdt.Text)
    size = 0
    while size < mb * MIB:
        n = rng.randint(1024, 16 * 1024)
        at = rng.randrange(len(corpus) - n)
        text.insert(rng.randint(0, size), corpus[at : at + n])
        size += n
    return doc.get_update()


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
    update = updates[0]
    return {"update": update, "strokes": keystrokes(update, 9, seed=k, taken=clients)}


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


def build_big(mb: int) -> Result:
    return {"state": text_doc(mb)}


def build_keystroke(mb: int) -> Result:
    state = text_doc(mb)
    return {"state": state, "strokes": keystrokes(state, 30, seed=mb)}


# measurements (each in a fresh process) -------------------------------------------------------


def measure_items(inputs: Result, n: int) -> Result:
    update = inputs["update"]
    shape = yjs.inspect_update(update)
    _, out = first_write(pycrdt.Doc, update)
    loaded = yjs.load(update)
    return {
        "size": len(update),
        "structs": shape.struct_count,
        **out,
        "load": repeat(lambda: yjs.load(update)),
        "get_update": repeat(loaded.get_update),
    }


def measure_clients(inputs: Result, k: int) -> Result:
    update, strokes = inputs["update"], inputs["strokes"]
    doc, out = first_write(pycrdt.Doc, update)
    later = medians([write_path(doc, s) for s in strokes], prefix="ks_")
    return {
        "size": len(update),
        "clients": len(yjs.inspect_update(update).structs),
        **out,
        **later,
        "doc_state": repeat(lambda: yjs.doc_state(doc), reps=5),
        "get_state": repeat(doc.get_state, reps=5),
        "sv_size": len(doc.get_state()),
        "get_update": repeat(doc.get_update),
    }


def measure_deletes(inputs: Result, n: int) -> Result:
    base, update = inputs["base"], inputs["update"]
    shape = yjs.inspect_update(update)
    doc, out = first_write(lambda: yjs.load(base), update)
    state = doc.get_update()
    return {
        "size": len(update),
        "structs": shape.struct_count,
        **out,
        "get_update": repeat(doc.get_update),
        "state_size": len(state),
        "load": repeat(lambda: yjs.load(state)),
    }


def measure_big(inputs: Result, mb: int) -> Result:
    state = inputs["state"]
    rss0 = rss_mb()
    load, doc = timed(lambda: yjs.load(state))
    doc_rss = rss_mb() - rss0
    encoded = doc.get_update()
    rss1 = rss_mb()
    t0 = time.perf_counter()
    values = list(encoded)
    t1 = time.perf_counter()
    text = json.dumps(values, separators=(",", ":"))  # as python-socketio encodes a packet
    t2 = time.perf_counter()
    json_rss = rss_mb() - rss1  # the list and the JSON text, held at once
    t_list, t_dumps = ms(t1 - t0), ms(t2 - t1)
    del values
    t_loads, back = timed(lambda: json.loads(text))
    t_bytes, _ = timed(lambda: bytes(back))
    return {
        "size": len(encoded),
        "load": load,
        "doc_rss": doc_rss,
        "get_update": repeat(doc.get_update),
        "list": t_list,
        "dumps": t_dumps,
        "array_out": t_list + t_dumps,
        "json_size": len(text),
        "json_rss": json_rss,
        "loads": t_loads,
        "array_in": t_loads + t_bytes,
    }


def measure_keystroke(inputs: Result, mb: int) -> Result:
    state, strokes = inputs["state"], inputs["strokes"]
    doc = yjs.load(state)
    runs = [write_path(doc, s) for s in strokes]
    return {
        "size": statistics.median(len(s) for s in strokes),
        "doc_size": len(state),
        **medians(runs),
        "max_total": max(r["total"] for r in runs),
    }


# cases ----------------------------------------------------------------------------------------

Column = tuple[str, str, str]  # result key, header, kind: bytes, int, ms, mb


@dataclass(frozen=True)
class Case:
    title: str
    build: Callable[[int], Result]
    measure: Callable[[Result, int], Result]
    params: tuple[int, ...]
    quick: tuple[int, ...]
    unit: str  # what the parameter counts
    columns: tuple[Column, ...]
    steps: tuple[str, ...]  # keys whose 50 ms crossing is reported


PATH: tuple[Column, ...] = (
    ("inspect", "inspect", "ms"),
    ("vectors", "vectors", "ms"),
    ("apply", "apply_checked", "ms"),
    ("total", "total", "ms"),
    ("rss", "RSS MB", "mb"),
)
ITEM_COLUMNS: tuple[Column, ...] = (
    ("size", "size", "bytes"),
    ("structs", "structs", "int"),
    *PATH,
    ("load", "cold load", "ms"),
    ("get_update", "get_update", "ms"),
)
CASES: dict[str, Case] = {
    "items": Case(
        "one update of N unmergeable one-character items (typed at 0), on an empty document",
        build_items, measure_items, (1000, 10_000, 62_000), (1000, 10_000), "N", ITEM_COLUMNS,
        ("inspect", "apply", "total", "load", "get_update"),
    ),
    "items-random": Case(
        "one update of N one-character items typed at random places, on an empty document",
        build_items_random, measure_items, (1000, 10_000, 62_000), (1000, 10_000), "N",
        ITEM_COLUMNS, ("inspect", "apply", "total", "load", "get_update"),
    ),
    "clients": Case(
        "one update of K client ids (one character each) on an empty document; then"
        " keystrokes (ks_) of another client on it",
        build_clients, measure_clients, (100, 1000, 10_000, 74_000), (100, 1000), "K",
        (("size", "size", "bytes"), *PATH[:4], ("rss", "RSS MB", "mb"),
         ("ks_inspect", "ks inspect", "ms"), ("ks_vectors", "ks vectors", "ms"),
         ("ks_apply", "ks apply_checked", "ms"), ("ks_total", "ks total", "ms"),
         ("doc_state", "doc_state", "ms"), ("get_state", "get_state", "ms"),
         ("sv_size", "state vector", "bytes")),
        ("inspect", "apply", "total", "ks_total", "ks_vectors", "ks_apply", "doc_state",
         "get_state"),
    ),
    "deletes": Case(
        "one update holding only a delete set of N ranges, on a document of one 2N-character"
        " item",
        build_deletes, measure_deletes, (1000, 10_000, 62_000, 200_000), (1000, 10_000), "N",
        (("size", "size", "bytes"), ("structs", "structs", "int"), *PATH,
         ("get_update", "get_update", "ms"), ("state_size", "state after", "bytes"),
         ("load", "cold load after", "ms")),
        ("inspect", "apply", "total", "get_update", "load"),
    ),
    "big": Case(
        "a text document of MB MiB typed in 1-16 KiB inserts: its state, and as a JSON array",
        build_big, measure_big, (1, 16), (1,), "MB",
        (("size", "state", "bytes"), ("load", "cold load", "ms"), ("doc_rss", "doc RSS MB", "mb"),
         ("get_update", "get_update", "ms"), ("list", "list(state)", "ms"),
         ("dumps", "json.dumps", "ms"), ("json_size", "JSON", "bytes"),
         ("json_rss", "list+JSON RSS MB", "mb"), ("loads", "json.loads", "ms"),
         ("array_in", "loads+bytes()", "ms")),
        ("load", "get_update", "array_out", "array_in"),
    ),
    "keystroke": Case(
        "one-character updates of a typing client on a document of MB MiB (30 keystrokes)",
        build_keystroke, measure_keystroke, (1, 16), (1,), "MB",
        (("size", "update", "bytes"), ("doc_size", "document", "bytes"), *PATH[:4],
         ("max_total", "max total", "ms")),
        ("total",),
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
    if kind == "bytes":
        if value < 1024:
            return f"{value:.0f} B"
        return f"{value / MIB:.1f} MB" if value >= MIB else f"{value / 1024:.1f} KB"
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
    header = [case.unit, *(h for _, h, _ in case.columns)]
    body = []
    for r in rows:
        mark = "*" if "size" in r and case.unit != "MB" and r["size"] > MAX_UPDATE else ""
        if "error" in r:
            body.append([f"{r['param']:,}", r["error"], *[""] * (len(case.columns) - 1)])
        else:
            cells = [cell(r.get(k), kind) for k, _, kind in case.columns]
            body.append([f"{r['param']:,}{mark}", *cells])
    text = f"## {name}: {case.title} (ms; RSS MB)\n{table(header, body)}"
    if any(r.get("size", 0) > MAX_UPDATE for r in rows if case.unit != "MB"):
        text += f"\n* larger than DocService's max_update ({MAX_UPDATE // 1024} KiB)"
    return text


def crossing(points: list[tuple[int, float]], limit: float = LOOP_BUDGET_MS) -> tuple[float, str]:
    """Where a step measured at ``points`` (param, ms) reaches ``limit``: interpolated on log-log
    between the measurements around it, else linear from the nearest one ("~")."""
    points = sorted((p, v) for p, v in points if v > 0)
    if not points:
        return math.nan, ""
    for i, (p, v) in enumerate(points):
        if v >= limit:
            if i == 0 or v == points[i - 1][1]:
                return p * limit / v, "~"
            p0, v0 = points[i - 1]
            slope = (math.log(v) - math.log(v0)) / (math.log(p) - math.log(p0))
            return math.exp(math.log(p0) + (math.log(limit) - math.log(v0)) / slope), ""
    p, v = points[-1]
    return p * limit / v, ">" if limit / v > 10 else "~"


def crossings(results: dict[str, list[Result]]) -> str:
    lines = [
        f"## where each step crosses {LOOP_BUDGET_MS:.0f} ms of loop time (~: extrapolated"
        " linearly from the nearest measurement; >: not within 10x the largest measured)"
    ]
    for name, rows in results.items():
        case = CASES[name]
        good = [r for r in rows if "error" not in r]
        found = []
        for step in case.steps:
            at, how = crossing([(r["param"], r[step]) for r in good if step in r])
            if how == ">":  # nowhere near: not worth a guess
                at = 10 * max(r["param"] for r in good)
            if at == at:
                value = f"{at:,.1f}" if case.unit == "MB" else f"{at:,.0f}"
                found.append(f"{step} {how}{value}")
        lines.append(f"{name:<13} {case.unit}: " + "; ".join(found))
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", default=",".join(CASES), help="comma-separated: %(default)s")
    p.add_argument("--quick", action="store_true", help="smaller N and K, 1 MB only")
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
                note(f"{name} {param:,} ...")
                results[name].append(run_one(name, param, Path(tmp), args.cap))
    seconds, load1 = time.monotonic() - started, os.getloadavg()[0]
    meta = {"seconds": round(seconds), "load_1min": [load0, load1], "rtctl_code": code0,
            "pycrdt": pycrdt.__version__ if hasattr(pycrdt, "__version__") else None,
            "quick": args.quick, "python": sys.version.split()[0]}  # fmt: skip
    if args.json == "-":
        print(json.dumps({"meta": meta, "results": results}, indent=2))
        return
    print("\n\n".join(report(name, CASES[name], rows) for name, rows in results.items()))
    print("\n" + crossings(results))
    print(f"\n{seconds:.0f} s; {os.cpu_count()} CPUs; load average {load0:.2f} at start, "
          f"{load1:.2f} at end.\nrtctl code: {code0}")  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps({"meta": meta, "results": results}, indent=2))


if __name__ == "__main__":
    main()
