"""Benchmark streaming tasks: how long `rtctl tasks stop` takes to reach the client, and
`rtctl tasks list` with 10k tasks registered; on a private redis-server, in one run.

  python bench/tasks_bench.py [--quick] [--only stop,embedded,list] [--stops N] [--json FILE]

stop      two Redis-mode daemons (`rtctl serve`); a python-socketio client on daemon A starts
          long `echo` completions; each is stopped, in turn, by `rtctl tasks stop ID -y` as a
          process (env: only RTCTL_REDIS_URL and RTCTL_PREFIX), by Operator.stop_tasks in this
          process on a warm connection, and by the same on a fresh connection (what the CLI
          does once it runs). Time from just before Popen (or the call) to the client's
          `events` {type: chat:tasks:cancel}; also to the command's exit or return. Then
          whole-process times of the CLI alone (interpreter, imports, `--help`, a stop of an
          unknown id) to show where a CLI stop's time goes.
embedded  the same on one embedded daemon: the CLI through the admin API, and the admin API's
          POST /tasks/stop called from this process (a fresh HTTP connection, as the CLI's).
list      10k tasks over three live node partitions (registered with RedisState.add_task):
          `rtctl tasks list -o json` / `-o name` / `--item ID` as whole processes, list_tasks()
          in this process, an owner's refresh_tasks() of its share, and `rtctl sessions list
          -o json` on 10k sessions for comparison.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import contextlib
import http.client
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from redis_bench import grid, rtctl_env, rtctl_tokens
from targets import (
    BENCH,
    VENV_BIN,
    base_env,
    code_state,
    free_port,
    kill_all,
    kill_group,
    spawn,
    wait_ready,
)

ROOT = BENCH.parent
# for tests.redis_server only (redis_bench put ROOT first): last, so that rtctl in this process
# is the one the daemons and the CLI run (PYTHONPATH=/tmp/rtctl-<commit> for a snapshot)
while str(ROOT) in sys.path:
    sys.path.remove(str(ROOT))
sys.path.append(str(ROOT))
from tests.redis_server import RedisServer  # noqa: E402

Result = dict[str, Any]
PY = sys.executable
RTCTL = str(VENV_BIN / "rtctl")
ADMIN_TOKEN = "bench-admin-token-0123456789abcdef"
LONG_TEXT = " ".join(f"word{i}" for i in range(2000))  # 2,000 words: never ends by itself
STOP_TIMEOUT = 20.0


# processes -------------------------------------------------------------------------------------


@dataclass
class Daemon:
    name: str
    proc: subprocess.Popen[bytes]
    url: str
    log: Path


def start_daemon(scratch: Path, name: str, extra: dict[str, str], redis_url: str = "",
                 prefix: str = "") -> Daemon:  # fmt: skip
    """`rtctl serve` on a free port (Redis mode if redis_url), limits off, as redis_bench."""
    port, data = free_port(), scratch / name
    data.mkdir(parents=True)
    log = scratch / f"{name}.log"
    env = rtctl_env(redis_url, prefix, name) | extra
    argv = [RTCTL, "serve", "--host", "127.0.0.1", "--port", str(port), "--data-dir", str(data)]
    with log.open("wb") as out:
        proc = spawn(argv, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    d = Daemon(name, proc, f"http://127.0.0.1:{port}", log)
    try:
        wait_ready(proc, d.url, 30)
    except RuntimeError as exc:
        kill_group(proc)
        raise RuntimeError(f"{name}: {exc}\n{log.read_text()[-2000:]}") from None
    return d


def cli_env(**settings: str) -> dict[str, str]:
    """The caller's environment without RTCTL_*, plus only the given settings."""
    return base_env() | settings


def launch(argv: list[str], env: dict[str, str]) -> tuple[float, subprocess.Popen[str]]:
    """The clock just before Popen, and the process (its output is small: pipes are fine)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, text=True, cwd="/")  # fmt: skip
    return t0, proc


def finish(proc: subprocess.Popen[str]) -> tuple[float, int, str, str]:
    """(clock at exit, code, stdout, stderr); blocks: run in a thread."""
    out, err = proc.communicate(timeout=60)
    return time.perf_counter(), proc.returncode, out, err


def whole_process(argv: list[str], env: dict[str, str], runs: int, ok: tuple[int, ...] = (0,),
                  expect: str | None = None) -> Result:  # fmt: skip
    """Wall time of `runs` runs of argv after one warm-up (ms): p50, min, max."""
    times, size = [], 0
    for i in range(runs + 1):
        t0, proc = launch(argv, env)
        t1, code, out, err = finish(proc)
        if code not in ok or (expect is not None and expect not in out):
            raise RuntimeError(f"{argv[1:]} exited {code}: {out[-300:]} {err[-600:]}")
        if i:
            times.append((t1 - t0) * 1000)
            size = len(out)
    return stats(times) | {"stdout_bytes": size}


def stats(ms: list[float]) -> Result:
    """p50, p90, p99 by nearest rank (p99 is the maximum below 100 samples), min, max."""
    s = sorted(ms)

    def rank(q: float) -> float:
        return s[max(0, min(len(s) - 1, -(-round(q * len(s) * 1000) // 1000) - 1))]

    return {"n": len(s), "p50_ms": statistics.median(s), "p90_ms": rank(0.9),
            "p99_ms": rank(0.99), "min_ms": s[0], "max_ms": s[-1],
            "mean_ms": statistics.fmean(s)}  # fmt: skip


# the client ------------------------------------------------------------------------------------


@dataclass
class Watch:
    """What the client saw of one chat (one task)."""

    token: asyncio.Event = field(default_factory=asyncio.Event)
    cancel: asyncio.Event = field(default_factory=asyncio.Event)
    tokens: int = 0
    cancel_at: float | None = None
    cancel_task: str | None = None
    inactive_at: float | None = None
    after_cancel: int = 0  # chat:completion tokens received after chat:tasks:cancel


class Client:
    """A python-socketio client of one user; `events` are filed by chat_id as they arrive."""

    def __init__(self, url: str, user: str) -> None:
        import socketio

        self.url, self.token = url, rtctl_tokens([user])[0]
        self.sio = socketio.AsyncClient(reconnection=False, handle_sigint=False)
        self.sio.on("events", self._on_events)
        self.watch: dict[str, Watch] = {}

    async def connect(self) -> Client:
        await self.sio.connect(self.url, auth={"token": self.token}, transports=["websocket"],
                               wait_timeout=10)  # fmt: skip
        return self

    async def _on_events(self, data: Any) -> None:
        now = time.perf_counter()
        w = self.watch.get(str(data.get("chat_id"))) if isinstance(data, dict) else None
        if w is None:
            return
        kind, body = data["data"]["type"], data["data"].get("data") or {}
        if kind == "chat:completion":
            w.tokens += 1
            w.after_cancel += w.cancel_at is not None
            w.token.set()
        elif kind == "chat:tasks:cancel":
            w.cancel_at, w.cancel_task = now, body.get("task_id")
            w.cancel.set()
        elif kind == "chat:active" and body.get("active") is False:
            w.inactive_at = now

    async def start(self, chat: str) -> tuple[str, Watch]:
        """Start a long echo completion and wait for its first token; its task id."""
        w = self.watch[chat] = Watch()
        ack = await self.sio.call("chat:completion", {
            "chat_id": chat, "message_id": "m1", "model": "echo",
            "messages": [{"role": "user", "content": LONG_TEXT}],
        }, timeout=10)  # fmt: skip
        if not isinstance(ack, dict) or "task_id" not in ack:
            raise RuntimeError(f"chat:completion answered {ack!r}")
        await asyncio.wait_for(w.token.wait(), 10)
        return str(ack["task_id"]), w

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.sio.disconnect()


# stop latency ----------------------------------------------------------------------------------

# a stopper starts a stop of one task id: (clock at start, a coroutine giving (clock when the
# command exited or the call returned, whether it said "stopped", what it said))
Done = tuple[float, bool, str]
Stopper = Callable[[str], Awaitable[tuple[float, Awaitable[Done]]]]


def cli_stopper(env: dict[str, str]) -> Stopper:
    async def stop(task_id: str) -> tuple[float, Awaitable[Done]]:
        t0, proc = launch([RTCTL, "tasks", "stop", task_id, "-y"], env)

        async def done() -> Done:
            t1, code, out, err = await asyncio.to_thread(finish, proc)
            return t1, code == 0 and out.split() == [task_id, "stopped"], (out + err).strip()

        return t0, done()

    return stop


def call_stopper(call: Callable[[str], Awaitable[list[Result]]]) -> Stopper:
    async def stop(task_id: str) -> tuple[float, Awaitable[Done]]:
        t0 = time.perf_counter()
        running = asyncio.ensure_future(call(task_id))

        async def done() -> Done:
            results = await running
            ok = results == [{"id": task_id, "result": "stopped"}]
            return time.perf_counter(), ok, json.dumps(results)

        return t0, done()

    return stop


async def measure_stops(client: Client, stoppers: dict[str, Stopper], n: int, warmup: int,
                        echo_delay: float) -> dict[str, Result]:  # fmt: skip
    """n stops per stopper (after `warmup` each), interleaved so they share the noise."""
    raw: dict[str, dict[str, list[float]]] = {
        k: {"cancel": [], "done": [], "inactive": []} for k in stoppers
    }
    late, failed = dict.fromkeys(stoppers, 0), dict.fromkeys(stoppers, 0)
    for i in range(warmup + n):
        for k, (name, stopper) in enumerate(stoppers.items()):
            chat = f"chat-{k}-{i}"
            task_id, w = await client.start(chat)
            t0, finished = await stopper(task_id)
            t_done, ok, said = await asyncio.wait_for(finished, STOP_TIMEOUT)
            await asyncio.wait_for(w.cancel.wait(), STOP_TIMEOUT)
            if not ok or w.cancel_task != task_id:
                failed[name] += 1
                print(f"\n  {name}: {said[:300]}", file=sys.stderr)
            await asyncio.sleep(max(0.05, 3 * echo_delay))  # tokens after the cancel?
            client.watch.pop(chat, None)
            if i < warmup:
                continue
            assert w.cancel_at is not None
            raw[name]["cancel"].append((w.cancel_at - t0) * 1000)
            raw[name]["done"].append((t_done - t0) * 1000)
            if w.inactive_at is not None:
                raw[name]["inactive"].append((w.inactive_at - t0) * 1000)
            late[name] += w.after_cancel
    out: dict[str, Result] = {}
    for name, r in raw.items():
        out[name] = {"to_cancel": stats(r["cancel"]), "to_exit": stats(r["done"]),
                     "to_inactive": stats(r["inactive"]) if r["inactive"] else None,
                     "tokens_after_cancel": late[name], "failed": failed[name]}  # fmt: skip
    return out


def stop(scratch: Path, redis: RedisServer, args: argparse.Namespace) -> Result:
    import rtctl
    from rtctl.cli.redis_remote import RoomPublisher
    from rtctl.hub.operator import Operator
    from rtctl.state.redis import RedisState
    from rtctl.state.redis_peers import RedisPeers
    from rtctl.state.redis_url import open_client

    prefix = "stop"
    print(f"(in process: {Path(rtctl.__file__).parent})", file=sys.stderr)
    extra = {"RTCTL_ECHO_DELAY": str(args.echo_delay)}
    daemons = [start_daemon(scratch, n, extra, redis.url, prefix) for n in ("node-a", "node-b")]
    env = cli_env(RTCTL_REDIS_URL=redis.url, RTCTL_PREFIX=prefix)

    def operator() -> tuple[RedisState, Operator]:
        state = RedisState(open_client(redis.url), prefix, "bench-op")
        peers = RedisPeers(state.redis, state.keys, state.live_node_ids)
        return state, Operator(state, peers, RoomPublisher(peers, state.keys, "bench-op"))

    async def fresh(task_id: str) -> list[Result]:  # RedisRemote._run's body, minus the process
        state, op = operator()
        try:
            await state.ping()
            results: list[Result] = await op.stop_tasks([task_id])
            return results
        finally:
            await state.close()

    async def run() -> Result:
        client = await Client(daemons[0].url, "alice").connect()
        state, op = operator()
        await state.ping()
        try:
            stoppers = {
                "CLI process (rtctl tasks stop ID -y)": cli_stopper(env),
                "Operator.stop_tasks, in process, warm connection": call_stopper(
                    lambda t: op.stop_tasks([t])
                ),
                "Operator.stop_tasks, in process, fresh connection": call_stopper(fresh),
            }
            print(f"stop / Redis, 2 daemons, {args.stops} stops per way ...", end=" ",
                  file=sys.stderr, flush=True)  # fmt: skip
            res = await measure_stops(client, stoppers, args.stops, args.warmup, args.echo_delay)
            print("done", file=sys.stderr)
            return res
        finally:
            await client.close()
            await state.close()

    try:
        out: Result = {"stops": asyncio.run(run())}
        print("stop / CLI alone ...", end=" ", file=sys.stderr, flush=True)
        out["processes"] = cli_alone(env, args.runs, redis_mode=True)
        print("done", file=sys.stderr)
        return out
    finally:
        for d in daemons:
            kill_group(d.proc)


def cli_alone(env: dict[str, str], runs: int, redis_mode: bool) -> dict[str, Result]:
    """Whole-process times that split a CLI stop: interpreter, imports, parse, backend."""
    # every module a stop imports (typer._adapters, i.e. pydantic, only when it parses)
    imports = "import rtctl.cli.main, typer._adapters, " + (
        "rtctl.cli.redis_remote, redis.asyncio" if redis_mode else "rtctl.cli.remote"
    )
    rows = {
        "python -c pass": whole_process([PY, "-c", "pass"], env, runs),
        f"python -c '{imports}'": whole_process([PY, "-c", imports], env, runs),
        "rtctl --help": whole_process([RTCTL, "--help"], env, runs),
        "rtctl tasks list -o json (0 tasks)": whole_process(
            [RTCTL, "tasks", "list", "-o", "json"], env, runs
        ),
        "rtctl tasks stop NO-SUCH-ID -y (not-found, exit 1)": whole_process(
            [RTCTL, "tasks", "stop", "no-such-id", "-y"], env, runs, ok=(1,), expect="not-found"
        ),
    }
    return rows


def embedded(scratch: Path, redis: RedisServer, args: argparse.Namespace) -> Result:
    extra = {"RTCTL_ECHO_DELAY": str(args.echo_delay), "RTCTL_ADMIN_TOKEN": ADMIN_TOKEN}
    d = start_daemon(scratch, "embedded", extra)
    env = cli_env(RTCTL_URL=d.url, RTCTL_ADMIN_TOKEN=ADMIN_TOKEN)
    host_port = d.url.removeprefix("http://")

    def post_stop(task_id: str) -> list[Result]:  # a fresh connection, as the CLI's
        conn = http.client.HTTPConnection(host_port, timeout=STOP_TIMEOUT)
        try:
            conn.request("POST", "/api/v1/tasks/stop", json.dumps({"ids": [task_id]}),
                         {"Authorization": f"Bearer {ADMIN_TOKEN}",
                          "Content-Type": "application/json"})  # fmt: skip
            resp = conn.getresponse()
            body = json.loads(resp.read())
        finally:
            conn.close()
        return list(body.get("results", [body]))

    async def run() -> Result:
        client = await Client(d.url, "alice").connect()
        try:
            stoppers = {
                "CLI process (rtctl tasks stop ID -y)": cli_stopper(env),
                "POST /api/v1/tasks/stop from this process": call_stopper(
                    lambda t: asyncio.to_thread(post_stop, t)
                ),
            }
            print(f"embedded / {args.stops} stops per way ...", end=" ", file=sys.stderr,
                  flush=True)  # fmt: skip
            res = await measure_stops(client, stoppers, args.stops, args.warmup, args.echo_delay)
            print("done", file=sys.stderr)
            return res
        finally:
            await client.close()

    try:
        out: Result = {"stops": asyncio.run(run())}
        print("embedded / CLI alone ...", end=" ", file=sys.stderr, flush=True)
        out["processes"] = cli_alone(env, args.runs, redis_mode=False)
        print("done", file=sys.stderr)
        return out
    finally:
        kill_group(d.proc)


# tasks list with 10k tasks ---------------------------------------------------------------------


def list_(scratch: Path, redis: RedisServer, args: argparse.Namespace) -> Result:
    import uvloop

    from rtctl.state.base import NodeRecord, TaskRecord
    from rtctl.state.redis import RedisState
    from rtctl.state.redis_url import open_client

    sys.path.insert(0, str(BENCH))
    from redis_node import fill

    n, nodes = args.tasks, ["node-1", "node-2", "node-3"]
    env = cli_env(RTCTL_REDIS_URL=redis.url, RTCTL_PREFIX="tl")
    empty = cli_env(RTCTL_REDIS_URL=redis.url, RTCTL_PREFIX="tl-empty")
    sessions_env = cli_env(RTCTL_REDIS_URL=redis.url, RTCTL_PREFIX="sl")
    out: Result = {"tasks": n}

    async def heartbeat(prefix: str, ids: list[str], count: int) -> None:
        """Fresh node records: the listing reads only live nodes' partitions."""
        state = RedisState(open_client(redis.url), prefix, "bench")
        now = time.time()
        for node in ids:
            await state.register_node(NodeRecord(node, "h", 1, "bench", now, now, count))
        await state.close()

    async def setup() -> None:
        # a long node_ttl here: the records' expiry (2 x node_ttl) outlives the run
        state = RedisState(open_client(redis.url), "tl", "bench", node_ttl=3600)
        now = time.time() - n
        records = [TaskRecord(f"t{i:06d}", "echo", f"u{i % 1000}", nodes[i % len(nodes)],
                              now + i, f"chat-{i}") for i in range(n)]  # fmt: skip
        t0 = time.perf_counter()
        for lo in range(0, n, 64):
            await asyncio.gather(*(state.add_task(r) for r in records[lo : lo + 64]))
        out["add_task_s"] = time.perf_counter() - t0
        await heartbeat("tl", nodes, 0)
        listed = await state.list_tasks()
        out["listed_in_process"] = len(listed)
        # in process: list_tasks on a warm client, then what the CLI does with the records
        times: dict[str, list[float]] = {"list": [], "to_json": [], "dumps": [], "refresh": []}
        mine = [r for r in records if r.node == nodes[0]]
        for _ in range(args.runs):
            await heartbeat("tl", nodes, 0)
            t0 = time.perf_counter()
            found = await state.list_tasks()
            t1 = time.perf_counter()
            rows = [t.to_json() for t in found]
            t2 = time.perf_counter()
            text = ",\n".join("  " + json.dumps(r, ensure_ascii=False) for r in rows)
            t3 = time.perf_counter()
            await state.refresh_tasks(nodes[0], mine)
            t4 = time.perf_counter()
            for k, a, b in (("list", t0, t1), ("to_json", t1, t2), ("dumps", t2, t3),
                            ("refresh", t3, t4)):  # fmt: skip
                times[k].append((b - a) * 1000)
        out["json_bytes"] = len(text) + 4
        out["in_process"] = {
            f"list_tasks() of {len(found):,} (3 live nodes)": stats(times["list"]),
            "TaskRecord.to_json x all": stats(times["to_json"]),
            "json.dumps per row (print_json)": stats(times["dumps"]),
            f"refresh_tasks() of one owner's {len(mine):,}": stats(times["refresh"]),
        }
        sessions = RedisState(open_client(redis.url), "sl", "bench")
        for node in ("node-1", "node-2"):  # two live nodes, as redis_bench.py --only cli
            await fill(sessions, node, n // 2, users=max(1, n // 20), rooms=50)
        await sessions.close()
        await state.close()

    print(f"list / {n:,} tasks ...", end=" ", file=sys.stderr, flush=True)
    uvloop.run(setup())

    def timed(argv: list[str], e: dict[str, str], prefix: str, ids: list[str]) -> Result:
        times, size = [], 0
        for i in range(args.runs + 1):
            uvloop.run(heartbeat(prefix, ids, 0))  # both nodes stay live for the timed run
            t0, proc = launch([RTCTL, *argv], e)
            t1, code, stdout, err = finish(proc)
            if code != 0:
                raise RuntimeError(f"rtctl {argv} exited {code}: {err[-600:]}")
            if i:
                times.append((t1 - t0) * 1000)
                size = len(stdout)
        return stats(times) | {"stdout_bytes": size}

    procs: dict[str, Result] = {}
    procs["rtctl --help"] = timed(["--help"], env, "tl", nodes)
    procs["rtctl tasks list -o json, 0 tasks"] = timed(["tasks", "list", "-o", "json"], empty,
                                                       "tl-empty", nodes)  # fmt: skip
    procs[f"rtctl tasks list -o json, {n:,} tasks"] = timed(["tasks", "list", "-o", "json"],
                                                            env, "tl", nodes)  # fmt: skip
    procs[f"rtctl tasks list -o name, {n:,} tasks"] = timed(["tasks", "list", "-o", "name"],
                                                            env, "tl", nodes)  # fmt: skip
    procs[f"rtctl tasks list --item chat-42 -o json, {n:,} tasks"] = timed(
        ["tasks", "list", "--item", "chat-42", "-o", "json"], env, "tl", nodes
    )
    procs[f"rtctl sessions list -o json, {n:,} sessions"] = timed(
        ["sessions", "list", "-o", "json"], sessions_env, "sl", ["node-1", "node-2"]
    )
    check = subprocess.run([RTCTL, "tasks", "list", "-o", "json"], env=env, capture_output=True,
                           timeout=60, check=True)  # fmt: skip
    out["listed_by_cli"] = len(json.loads(check.stdout))
    out["processes"] = procs
    key = f"rtctl tasks list -o json, {n:,} tasks"
    print(f"{procs[key]['p50_ms']:.0f} ms p50 (json)", file=sys.stderr)
    return out


# tables ----------------------------------------------------------------------------------------


def ms(r: Result | None, key: str) -> str:
    return "" if not r else f"{r[key]:.0f}" if r[key] >= 100 else f"{r[key]:.1f}"


def stops_table(res: Result, title: str) -> str:
    rows = []
    base = next(iter(res["stops"].values()))["to_cancel"]["p50_ms"]
    for name, r in res["stops"].items():
        c, e, a = r["to_cancel"], r["to_exit"], r["to_inactive"]
        rows.append([name, str(c["n"]), ms(c, "p50_ms"), ms(c, "p90_ms"), ms(c, "p99_ms"),
                     ms(c, "min_ms"), ms(e, "p50_ms"), ms(e, "p99_ms"), ms(a, "p50_ms"),
                     f"{c['p50_ms'] / base:.2f}x", str(r["tokens_after_cancel"]),
                     str(r["failed"])])  # fmt: skip
    header = [title, "stops", "→cancel p50", "p90", "p99", "min", "→exit/return p50", "p99",
              "→active:false p50", "p50 vs CLI", "tokens after", "failed"]  # fmt: skip
    return grid(header, rows)


def procs_table(rows: dict[str, Result], title: str) -> str:
    body = [[k, ms(r, "p50_ms"), ms(r, "min_ms"), ms(r, "max_ms"), f"{r['stdout_bytes']:,}"]
            for k, r in rows.items()]  # fmt: skip
    return grid([title, "p50 ms", "min ms", "max ms", "stdout bytes"], body)


def list_tables(res: Result) -> str:
    procs = res["processes"]
    sess = next(v for k, v in procs.items() if k.startswith("rtctl sessions"))
    body = [[k, ms(r, "p50_ms"), ms(r, "min_ms"), ms(r, "max_ms"), f"{r['stdout_bytes']:,}",
             f"{r['p50_ms'] / sess['p50_ms']:.2f}x"] for k, r in procs.items()]  # fmt: skip
    a = grid(["command (whole process)", "p50 ms", "min ms", "max ms", "stdout bytes",
              "vs sessions list"], body)  # fmt: skip
    inproc = [[k, ms(r, "p50_ms"), ms(r, "min_ms"), ms(r, "max_ms")]
              for k, r in res["in_process"].items()]  # fmt: skip
    b = grid(["in process (uvloop, warm client)", "p50 ms", "min ms", "max ms"], inproc)
    note = (f"{res['tasks']:,} tasks registered in {res['add_task_s']:.1f} s (add_task x64 "
            f"concurrent); listed: {res['listed_in_process']:,} in process, "
            f"{res['listed_by_cli']:,} by the CLI")  # fmt: skip
    return f"{a}\n\n{b}\n{note}"


# main ------------------------------------------------------------------------------------------

SCENARIOS = {"stop": stop, "embedded": embedded, "list": list_}


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", default=",".join(SCENARIOS), help="comma-separated: %(default)s")
    p.add_argument("--stops", type=int, default=40, help="measured stops per way")
    p.add_argument("--warmup", type=int, default=2, help="stops per way not counted")
    p.add_argument("--runs", type=int, default=10, help="runs of each whole-process command")
    p.add_argument("--tasks", type=int, default=10_000, help="tasks registered for `list`")
    p.add_argument("--echo-delay", type=float, default=0.02, help="RTCTL_ECHO_DELAY (s)")
    p.add_argument("--quick", action="store_true", help="~30 s smoke run")
    p.add_argument("--json", type=Path, help="also write all raw results here")
    args = p.parse_args()
    if args.quick:
        args.stops, args.warmup, args.runs = 8, 1, 4
    args.only = [s for s in args.only.split(",") if s]
    for bad in set(args.only) - set(SCENARIOS):
        p.error(f"unknown scenario {bad}")
    return args


def main() -> None:
    args = parse_args()
    atexit.register(kill_all)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started, load0, code = time.monotonic(), os.getloadavg()[0], code_state()
    results: Result = {}
    with tempfile.TemporaryDirectory(prefix="rtctl-tasks-bench-") as tmp:
        redis = RedisServer(Path(tmp) / "redis").start()
        try:
            for name in args.only:
                scratch = Path(tmp) / name
                scratch.mkdir()
                try:
                    results[name] = SCENARIOS[name](scratch, redis, args)
                except Exception as exc:
                    print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
                    results[name] = {"error": f"{type(exc).__name__}: {exc}"}
            version = redis.info("server")["redis_version"]
        finally:
            redis.kill()
    seconds, load1 = time.monotonic() - started, os.getloadavg()[0]
    for name, res in results.items():
        if "error" in res:
            print(f"\n{name}: {res['error']}")
        elif name == "list":
            print(f"\n{list_tables(res)}")
        else:
            where = "Redis, 2 daemons" if name == "stop" else "embedded daemon"
            print(f"\n{stops_table(res, f'stop → chat:tasks:cancel, ms ({where})')}")
            print(f"\n{procs_table(res['processes'], f'whole process ({where})')}")
    print(f"\n{seconds:.0f} s; {os.cpu_count()} CPUs; load average {load0:.2f} at start, "
          f"{load1:.2f} at end; redis-server {version}; echo delay {args.echo_delay} s; "
          f"rtctl code: {code}")  # fmt: skip
    if args.json:
        meta = {"seconds": round(seconds), "load_1min": [load0, load1], "rtctl_code": code,
                "redis": version, "argv": sys.argv[1:]}  # fmt: skip
        args.json.write_text(json.dumps({"meta": meta, **results}, indent=2))


if __name__ == "__main__":
    main()
