"""Benchmark rtctl's Redis mode on a private redis-server, side by side, in one run.

  python bench/redis_bench.py [--quick] [--only targeted,fanout,reaper,cli,levers] [--json FILE]

targeted  emits to one user's room from inside a daemon (rtctl's ClusterManager + RedisBus,
          via bench/redis_node.py) vs python-socketio's AsyncRedisManager doing the same;
          recipients on another node or the same node (Node clients, bench/redis_clients.js);
          a third node hosting none of the rooms shows what it receives.
fanout    one channel, clients split over two Redis-mode daemons vs all on one embedded daemon.
reaper    the event loop's worst stall while the reaper sweeps a dead node's sessions, and
          while list_sessions() reads them (bench/redis_node.py stall).
cli       `rtctl sessions list` (-o json and tab-separated) as a whole process on sessions of
          two live nodes, beside `rtctl --help` and a TAB completion (--cli-bytecode: with
          rtctl's bytecode cached, as installed, even under PYTHONDONTWRITEBYTECODE).
levers    CPU per emit of one daemon's emit path and bus, as is and with publishing changed in
          that process only, and per message received (bench/redis_node.py levers).
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import select
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from targets import (
    BENCH,
    JWT_SECRET,
    VENV_BIN,
    base_env,
    code_state,
    cpu_seconds,
    free_port,
    kill_all,
    kill_group,
    spawn,
    wait_ready,
)

ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))
from tests.redis_server import RedisServer  # noqa: E402

Result = dict[str, Any]
PY = sys.executable
NODE_JS = str(BENCH / "redis_clients.js")
REDIS_NODE = str(BENCH / "redis_node.py")
LIMITS_OFF = {
    "RTCTL_RATE_LIMIT": "0",
    "RTCTL_MAX_SESSIONS_PER_USER": "0",
    "RTCTL_CONNECT_RATE": "0",
}


# processes -------------------------------------------------------------------------------------


class Lines:
    """JSON lines to a child's stdin and from its stdout."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc, self.buf = proc, b""
        self.pending: list[Result] = []

    def send(self, obj: Result) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(obj) + "\n").encode())
        self.proc.stdin.flush()

    def recv(self, timeout: float) -> Result:
        assert self.proc.stdout is not None
        fd, deadline = self.proc.stdout.fileno(), time.monotonic() + timeout
        while not self.pending:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no answer from {self.proc.args!r} in {timeout:.0f}s")
            if not select.select([fd], [], [], left)[0]:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                raise RuntimeError(f"{self.proc.args!r} exited with {self.proc.wait()}")
            *lines, self.buf = (self.buf + chunk).split(b"\n")
            self.pending += [json.loads(line) for line in lines if line.strip()]
        return self.pending.pop(0)


@dataclass
class Node:
    """A server process: an rtctl daemon (real `rtctl serve` or driven) or a pysio node."""

    name: str
    proc: subprocess.Popen[bytes]
    url: str
    log: Path
    lines: Lines | None = None  # driven nodes take commands

    @property
    def pid(self) -> int:
        return self.proc.pid

    def ready(self, timeout: float = 30.0) -> Node:
        try:
            wait_ready(self.proc, self.url, timeout)
        except RuntimeError as exc:
            raise RuntimeError(f"{self.name}: {exc}\n{self.log.read_text()[-2000:]}") from None
        return self


def rtctl_env(redis_url: str, prefix: str, node_id: str) -> dict[str, str]:
    env = {**base_env(), "RTCTL_JWT_SECRET": JWT_SECRET, "RTCTL_LOG_LEVEL": "warning", **LIMITS_OFF}
    if redis_url:
        env |= {"RTCTL_REDIS_URL": redis_url, "RTCTL_PREFIX": prefix, "RTCTL_NODE_ID": node_id}
    return env


def start_rtctl(scratch: Path, name: str, redis_url: str, prefix: str, driven: bool) -> Node:
    """`rtctl serve` (Redis mode if redis_url), or the same daemon with a driver task."""
    port, data = free_port(), scratch / name
    data.mkdir(parents=True)
    log = scratch / f"{name}.log"
    env = rtctl_env(redis_url, prefix, name)
    if driven:
        argv = [PY, REDIS_NODE, "rtctl", "--port", str(port), "--data-dir", str(data)]
    else:
        argv = [str(VENV_BIN / "rtctl"), "serve", "--host", "127.0.0.1", "--port", str(port),
                "--data-dir", str(data)]  # fmt: skip
    return _start(name, argv, env, port, log, driven)


def start_pysio(scratch: Path, name: str, redis_url: str, channel: str) -> Node:
    port, log = free_port(), scratch / f"{name}.log"
    argv = [PY, REDIS_NODE, "pysio", "--port", str(port), "--redis-url", redis_url,
            "--channel", channel]  # fmt: skip
    return _start(name, argv, {**base_env(), "PYTHONWARNINGS": "ignore"}, port, log, True)


def _start(
    name: str, argv: list[str], env: dict[str, str], port: int, log: Path, driven: bool
) -> Node:
    pipes: dict[str, Any] = {"stdin": subprocess.PIPE, "stdout": subprocess.PIPE}
    with log.open("wb") as out:
        proc = spawn(argv, env=env, cwd=ROOT, stderr=out, **(pipes if driven else {"stdout": out}))
    return Node(name, proc, f"http://127.0.0.1:{port}", log, Lines(proc) if driven else None)


def clients(mode: str, urls: list[str], *opts: str, timeout: int = 120) -> Lines:
    argv = ["node", NODE_JS, mode, "--urls", ",".join(urls), *opts, "--timeout", str(timeout)]
    return Lines(spawn(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE))


def recipients(scratch: Path, url: str, tokens: list[str]) -> Lines:
    """One Node client per token (one user each) on url; returns once all are connected."""
    path = scratch / f"tokens-{free_port()}.json"
    path.write_text(json.dumps(tokens))
    lines = clients("targets", [url], "--tokens-file", str(path))
    try:
        ready = lines.recv(60)
        if ready.get("clients") != len(tokens):
            raise RuntimeError(f"only {ready.get('clients')}/{len(tokens)} connected: {ready}")
    except BaseException:
        kill_group(lines.proc)
        raise
    return lines


def rtctl_tokens(users: list[str]) -> list[str]:
    from rtctl.auth import issue_token

    return [issue_token(JWT_SECRET, u, channels=["*"], ttl=3600) for u in users]


def cpu(pid: int) -> float:
    return sum(cpu_seconds(pid))


def rchar(pid: int) -> int:
    """Bytes the process read through read-like syscalls, sockets included (/proc/PID/io)."""
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    return 0


@dataclass
class Meter:
    """CPU seconds of named processes (and bytes read by some) between start() and stop()."""

    pids: dict[str, int]
    read_pids: dict[str, int] = field(default_factory=dict)
    cpu0: dict[str, float] = field(default_factory=dict)
    read0: dict[str, int] = field(default_factory=dict)

    def start(self) -> None:
        self.cpu0 = {k: cpu(p) for k, p in self.pids.items()}
        self.read0 = {k: rchar(p) for k, p in self.read_pids.items()}

    def stop(self) -> Result:
        out = {f"cpu_{k}_s": cpu(p) - self.cpu0[k] for k, p in self.pids.items()}
        return out | {
            f"read_{k}_bytes": rchar(p) - self.read0[k] for k, p in self.read_pids.items()
        }


# 1. targeted emits -----------------------------------------------------------------------------


@dataclass
class Setup:
    """A driver node, a recipient node and a bystander node on one Redis, with their clients."""

    driver: Node
    remote: Node
    bystander: Node
    local_users: list[str]  # connected to the driver
    remote_users: list[str]  # connected to the remote node
    to_local: Lines
    to_remote: Lines
    idle: Lines  # the bystander's own clients (other users), receiving nothing
    redis_pid: int

    def meter(self) -> Meter:
        return Meter({"driver": self.driver.pid, "remote": self.remote.pid,
                      "bystander": self.bystander.pid, "redis": self.redis_pid},
                     {"bystander": self.bystander.pid})  # fmt: skip


def rtctl_setup(scratch: Path, redis: RedisServer, users: int) -> Setup:
    url, prefix = redis.url, "tgt"
    started: list[Any] = []
    try:
        a = start_rtctl(scratch, "node-a", url, prefix, driven=True)
        b = start_rtctl(scratch, "node-b", url, prefix, driven=False)
        c = start_rtctl(scratch, "node-c", url, prefix, driven=False)
        started += [a, b, c]
        for n in (a, b, c):
            n.ready()
        la, lb = [f"a{i}" for i in range(users)], [f"b{i}" for i in range(users)]
        for node, tokens in ((a, rtctl_tokens(la)), (b, rtctl_tokens(lb)),
                             (c, rtctl_tokens([f"c{i}" for i in range(20)]))):  # fmt: skip
            started.append(recipients(scratch, node.url, tokens))
    except BaseException:
        for x in started:
            kill_group(x.proc)
        raise
    return Setup(a, b, c, la, lb, *started[3:], redis.proc.pid)


def pysio_setup(scratch: Path, redis: RedisServer, users: int) -> Setup:
    channel = "tgt-socketio"
    started: list[Any] = []
    try:
        p1, p2, p3 = (start_pysio(scratch, f"pysio-{i}", redis.url, channel) for i in (1, 2, 3))
        started += [p1, p2, p3]
        for n in (p1, p2, p3):
            n.ready()
        la, lb = [f"a{i}" for i in range(users)], [f"b{i}" for i in range(users)]
        # python-socketio nodes here take the token as the user id
        for node, tokens in ((p1, la), (p2, lb), (p3, [f"c{i}" for i in range(20)])):
            started.append(recipients(scratch, node.url, tokens))
    except BaseException:
        for x in started:
            kill_group(x.proc)
        raise
    return Setup(p1, p2, p3, la, lb, *started[3:], redis.proc.pid)


CASES: list[tuple[str, str, dict[str, Any]]] = [
    # name, recipients, drive options
    ("cross-node, 1 emitter", "remote", {}),
    ("same node, 1 emitter", "local", {}),
    ("cross-node, 16 concurrent emitters", "remote", {"concurrency": 16}),
    ("no recipient anywhere, 1 emitter (sender alone)", "none", {}),
    ("cross-node, paced 2,000/s (latency)", "remote", {"rate": 2000}),
    ("cross-node, Operator.emit x16 (admin API path)", "remote", {"via": "operator",
                                                                  "concurrency": 16}),
]  # fmt: skip


def targeted_round(s: Setup, to: str, n: int, opts: dict[str, Any]) -> Result:
    users = {"remote": s.remote_users, "local": s.local_users}.get(to)
    rooms = [f"user:{u}" for u in users] if users else [f"user:nobody{i}" for i in range(100)]
    got = {"remote": s.to_remote, "local": s.to_local}.get(to)
    assert s.driver.lines is not None
    meter = s.meter()
    meter.start()
    if got is not None:
        got.send({"expect": n, "idle_ms": 3000})
    s.driver.lines.send({"op": "drive", "rooms": rooms, "n": n, **opts})
    drove = s.driver.lines.recv(180)
    if "error" in drove:
        raise RuntimeError(drove["error"])
    res = got.recv(180) if got is not None else {}
    res |= drove | meter.stop()
    if got is not None:
        span = (res["last_ms"] - res["t0_ms"]) / 1000
        res["deliveries_per_s"] = res["received"] / span if span > 0 else 0.0
    res["accepted_per_s"] = n / res["accepted_s"]
    res["published_per_s"] = n / res["published_s"]
    for who in ("driver", "remote", "bystander", "redis"):
        res[f"{who}_us_per_emit"] = res[f"cpu_{who}_s"] / n * 1e6
    return res


def targeted(scratch: Path, redis: RedisServer, args: argparse.Namespace) -> dict[str, Result]:
    results: dict[str, Result] = {}
    for target, setup in (("rtctl", rtctl_setup), ("pysio", pysio_setup)):
        (scratch / target).mkdir()
        try:
            s = setup(scratch / target, redis, args.users)
        except Exception as exc:
            results[f"{target}|{CASES[0][0]}"] = {"error": f"{type(exc).__name__}: {exc}"}
            print(f"targeted / {target}: {exc}", file=sys.stderr)
            continue
        try:
            for name, to, opts in CASES:
                if opts.get("via") == "operator" and target != "rtctl":
                    continue
                n = args.emits
                if "rate" in opts:
                    n = min(n, int(opts["rate"] * 2))  # 2 s
                if opts.get("via") == "operator":
                    n = max(1000, n // 4)
                key = f"{target}|{name}"
                print(f"targeted / {target:<5} / {name} ...", end=" ", file=sys.stderr, flush=True)
                try:
                    results[key] = targeted_round(s, to, n, opts)
                except Exception as exc:
                    results[key] = {"error": f"{type(exc).__name__}: {exc}"}
                r = results[key]
                done = f"{r.get('published_per_s', 0):,.0f} published/s, " + (
                    f"{r['deliveries_per_s']:,.0f} deliveries/s" if "received" in r else ""
                )
                print(r.get("error") or done, file=sys.stderr)  # fmt: skip
        finally:
            for lines in (s.to_local, s.to_remote, s.idle):
                kill_group(lines.proc)
            for node in (s.driver, s.remote, s.bystander):
                kill_group(node.proc)
    return results


# 2. cross-node fan-out -------------------------------------------------------------------------


class Tap:
    """A Redis subscriber on every room channel of a prefix: what one broadcast channel (all
    nodes receive everything, python-socketio's AsyncRedisManager) would deliver to a node."""

    def __init__(self, redis: RedisServer, pattern: str) -> None:
        import threading

        self.messages = self.bytes = 0
        self._client = redis.client()
        self._pubsub = self._client.pubsub(ignore_subscribe_messages=True)
        self._pubsub.psubscribe(pattern)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            msg = self._pubsub.get_message(timeout=0.1)
            if msg and msg["type"] == "pmessage":
                self.messages += 1
                data = msg["data"]
                self.bytes += len(data.encode() if isinstance(data, str) else data)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._pubsub.close()
        self._client.close()


def fanout_config(
    scratch: Path, redis: RedisServer, args: argparse.Namespace, name: str, nodes: int
) -> Result:
    """nodes == 0: one embedded daemon; else that many Redis-mode daemons plus a bystander."""
    prefix = f"fan{nodes}"
    url = redis.url if nodes else ""
    servers = [start_rtctl(scratch, f"{name}-{i}", url, prefix, False) for i in range(nodes or 1)]
    bystander = start_rtctl(scratch, f"{name}-idle", url, prefix, False) if nodes else None
    started: list[Any] = [*servers, *([bystander] if bystander else [])]
    tap, idle = None, None
    try:
        for s in started:
            s.ready()
        pids = {f"server{i}": s.pid for i, s in enumerate(servers)} | {"redis": redis.proc.pid}
        meter = Meter(pids)
        if bystander:
            idle = recipients(scratch, bystander.url, rtctl_tokens([f"idle{i}" for i in range(20)]))
            meter = Meter(pids | {"bystander": bystander.pid}, {"bystander": bystander.pid})
            tap = Tap(redis, f"{prefix}:ch:room:*")
        token = rtctl_tokens(["bench"])[0]
        res: Result = {}
        if nodes <= 1:  # the connect burst: refused handshakes, then all of them hang up
            res["burst"] = connect_burst(servers[0].url, token, args.clients)
            time.sleep(1.0)
        opts = ["--token", token, "--clients", str(args.clients), "--messages", str(args.messages)]
        load = clients("fanout", [s.url for s in servers], *opts, "--window", "4")
        for _ in range(3):
            msg = load.recv(180)
            if msg.get("phase") == "start":
                meter.start()
                if nodes:  # while every member is connected
                    hot = f"{prefix}:ch:room:channel:bench"
                    res["hot_channel_subscribers"] = int(redis.command("PUBSUB", "NUMSUB", hot)[1])
            elif msg.get("phase") == "end":
                res |= meter.stop()
            else:
                res |= msg
                break
        kill_group(load.proc)
        server_cpu = sum(v for k, v in res.items() if k.startswith("cpu_server"))
        res["server_us_per_delivery"] = server_cpu / max(1, res["received"]) * 1e6
        res["redis_us_per_delivery"] = res["cpu_redis_s"] / max(1, res["received"]) * 1e6
        if tap is not None:
            time.sleep(0.2)
            res |= {"tap_messages": tap.messages, "tap_bytes": tap.bytes}
        return res
    finally:
        if tap is not None:
            tap.close()
        if idle is not None:
            kill_group(idle.proc)
        for s in started:
            kill_group(s.proc)


def connect_burst(url: str, token: str, n: int, concurrency: int = 200) -> Result:
    """n clients connecting with `concurrency` handshakes in flight, then all joining a channel
    at once: how many connects and joins the daemon refuses, and why."""
    argv = ["--token", token, "--clients", str(n), "--concurrency", str(concurrency)]
    lines = clients("burst", [url], *argv)
    try:
        return lines.recv(120)
    finally:
        kill_group(lines.proc)


FANOUT_CONFIGS = [("embedded, 1 daemon", 0), ("Redis, 1 daemon", 1), ("Redis, 2 daemons", 2)]


def fanout(scratch: Path, redis: RedisServer, args: argparse.Namespace) -> dict[str, Result]:
    results: dict[str, Result] = {}
    for i, (name, nodes) in enumerate(FANOUT_CONFIGS):
        print(f"fanout / {name} ...", end=" ", file=sys.stderr, flush=True)
        try:
            results[name] = fanout_config(scratch / f"fan{i}", redis, args, f"f{i}", nodes)
        except Exception as exc:
            results[name] = {"error": f"{type(exc).__name__}: {exc}"}
        r = results[name]
        print(r.get("error") or f"{r['deliveries_per_s']:,.0f} deliveries/s", file=sys.stderr)
    return results


# 3. reaper stall -------------------------------------------------------------------------------


def reaper(scratch: Path, redis: RedisServer, args: argparse.Namespace) -> Result:
    print(f"reaper / {args.sessions:,} sessions ...", end=" ", file=sys.stderr, flush=True)
    argv = [PY, REDIS_NODE, "stall", "--redis-url", redis.url, "--prefix", "reap",
            "--sessions", str(args.sessions)]  # fmt: skip
    out = subprocess.run(argv, capture_output=True, text=True, timeout=300, cwd=ROOT)
    if out.returncode != 0:
        raise RuntimeError(f"stall exited {out.returncode}: {out.stderr[-2000:]}")
    res: Result = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"sweep {res['sweep']['sweep_s']:.2f} s", file=sys.stderr)
    return res


# 5. levers: the emit path's CPU, as is and with the proposed publishing changes ------------------


def levers(scratch: Path, redis: RedisServer, args: argparse.Namespace) -> Result:
    print(f"levers / {args.emits:,} emits per variant ...", end=" ", file=sys.stderr, flush=True)
    argv = [PY, REDIS_NODE, "levers", "--redis-url", redis.url, "--prefix", "lev",
            "--sessions", str(args.emits), "--data-dir", str(scratch)]  # fmt: skip
    out = subprocess.run(argv, capture_output=True, text=True, timeout=300, cwd=ROOT)
    if out.returncode != 0:
        raise RuntimeError(f"levers exited {out.returncode}: {out.stderr[-2000:]}")
    res: Result = json.loads(out.stdout.strip().splitlines()[-1])
    print("done", file=sys.stderr)
    return res


def levers_table(r: Result) -> str:
    rows, pub = [], r.get("publishing those (EVALSHA x1000)", {}).get("us_per_msg", 0.0)
    for label, v in r.items():
        if not isinstance(v, dict):
            continue
        if "us_per_emit" in v:
            batch = v["mean_batch"]
            rows.append([label, f"{v['us_per_emit']:.1f}", f"{v['emits_per_s']:,.0f}",
                         "" if batch is None else f"{batch:.1f}"])  # fmt: skip
        elif label.startswith("receive"):
            rows.append([f"{label} (µs/msg, publisher's share taken out)",
                         f"{v['us_per_msg'] - pub:.1f}", "", ""])  # fmt: skip
    header = [f"one daemon, {r['emits']:,} emits to rooms elsewhere", "CPU µs/emit", "emits/s",
              "mean batch"]  # fmt: skip
    return grid(header, rows)


# 4. the CLI as a whole process -----------------------------------------------------------------


def timed(argv: list[str], env: dict[str, str], runs: int) -> Result:
    """Wall time of `runs` runs of argv (after one warm-up); median and p90 in ms."""
    subprocess.run(argv, env=env, capture_output=True, timeout=60, check=True)
    times, size = [], 0
    for _ in range(runs):
        t0 = time.perf_counter()
        out = subprocess.run(argv, env=env, capture_output=True, timeout=60, check=True)
        times.append((time.perf_counter() - t0) * 1000)
        size = len(out.stdout)
    times.sort()
    p90 = times[min(len(times) - 1, round(0.9 * (len(times) - 1)))]
    return {"median_ms": statistics.median(times), "p90_ms": p90, "min_ms": times[0],
            "runs": runs, "stdout_bytes": size}  # fmt: skip


def cli(scratch: Path, redis: RedisServer, args: argparse.Namespace) -> dict[str, Result]:
    import uvloop

    from rtctl.state.base import NodeRecord
    from rtctl.state.redis import RedisState
    from rtctl.state.redis_url import open_client

    sys.path.insert(0, str(BENCH))
    from redis_node import fill

    prefix, n = "cli", args.cli_sessions

    async def setup(heartbeat_only: bool) -> None:
        state = RedisState(open_client(redis.url), prefix, "bench", node_ttl=15.0)
        now = time.time()
        for i in (1, 2):  # two live nodes, half the sessions each
            node = f"node-{i}"
            if not heartbeat_only:
                await fill(state, node, n // 2, users=max(1, n // 20), rooms=50, at=now + i)
            await state.register_node(NodeRecord(node, "h", 1, "bench", now, now, n // 2))
        await state.close()

    print(f"cli / {n:,} sessions ...", end=" ", file=sys.stderr, flush=True)
    uvloop.run(setup(False))
    env = {k: v for k, v in base_env().items() if k not in ("RTCTL_CONFIG",)}
    env |= {"RTCTL_REDIS_URL": redis.url, "RTCTL_PREFIX": prefix}
    if args.cli_bytecode:  # as an installed rtctl runs: its modules' bytecode cached
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(scratch / "pycache")
    bytecode = "PYTHONDONTWRITEBYTECODE" not in env
    exe = str(VENV_BIN / "rtctl")
    listing = subprocess.run([exe, "sessions", "list", "-o", "json"], env=env, capture_output=True,
                             timeout=60, check=True)  # fmt: skip
    listed = len(json.loads(listing.stdout))
    runs = args.cli_runs
    results: dict[str, Result] = {"python -c pass": timed([PY, "-c", "pass"], env, runs)}
    results["rtctl --help"] = timed([exe, "--help"], env, runs)
    tab = env | {"_RTCTL_COMPLETE": "complete_bash", "COMP_WORDS": "rtctl sessions list -o ",
                 "COMP_CWORD": "4"}  # fmt: skip
    results["TAB: rtctl sessions list -o <TAB> (bash)"] = timed([exe], tab, runs)
    empty = env | {"RTCTL_PREFIX": "cli-empty"}
    results["rtctl sessions list -o json, 0 sessions"] = timed(
        [exe, "sessions", "list", "-o", "json"], empty, runs
    )
    for label, opts in (("-o json", ["-o", "json"]), ("(tab-separated)", [])):
        uvloop.run(setup(True))  # fresh heartbeats: both nodes stay live for the timed runs
        key = f"rtctl sessions list {label}, {n:,} sessions"
        results[key] = timed([exe, "sessions", "list", *opts], env, runs) | {"listed": listed}
    print(f"{results[key]['median_ms']:.0f} ms median", file=sys.stderr)
    for r in results.values():
        r["bytecode_cached"] = bytecode
    return results


# tables ----------------------------------------------------------------------------------------


def fmt(value: Any, spec: str) -> str:
    try:
        return format(value, spec)
    except (TypeError, ValueError):
        return "n/a"


def grid(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=True)]
    line = " | ".join(f"{{:{'<' if i == 0 else '>'}{w}}}" for i, w in enumerate(widths))
    rule = "-|-".join("-" * w for w in widths)
    return "\n".join([line.format(*header), rule, *(line.format(*r) for r in rows)])


def ratio(a: Any, b: Any) -> str:
    ok = isinstance(a, int | float) and isinstance(b, int | float) and b
    return f"{a / b:.2f}x" if ok else ""


Metric = tuple[str, Callable[[Result], Any], str]
TARGETED_ROWS: list[Metric] = [
    ("emits", lambda r: r["n"], ",d"),
    ("emits/s accepted (emit returned)", lambda r: r["accepted_per_s"], ",.0f"),
    ("emits/s published (on Redis)", lambda r: r["published_per_s"], ",.0f"),
    ("deliveries/s observed", lambda r: r["deliveries_per_s"], ",.0f"),
    ("delivered / emitted", lambda r: f"{r['received']}/{r['n']}", ""),
    ("latency p50 ms", lambda r: r["p50_ms"], ".1f"),
    ("latency p99 ms", lambda r: r["p99_ms"], ".1f"),
    ("driver CPU µs/emit", lambda r: r["driver_us_per_emit"], ".1f"),
    ("receiving node CPU µs/emit", lambda r: r["remote_us_per_emit"], ".1f"),
    ("redis-server CPU µs/emit", lambda r: r["redis_us_per_emit"], ".1f"),
    ("bystander node CPU ms", lambda r: r["cpu_bystander_s"] * 1000, ",.0f"),
    ("bystander node KiB read", lambda r: r["read_bystander_bytes"] / 1024, ",.0f"),
]


def targeted_tables(results: dict[str, Result]) -> str:
    out = []
    for name, to, _ in CASES:
        rtctl, pysio = results.get(f"rtctl|{name}", {}), results.get(f"pysio|{name}")
        rows = []
        for label, get, spec in TARGETED_ROWS:
            if to == "local" and label.startswith("receiving"):
                label = "receiving node CPU µs/emit (other node)"
            vals = []
            for r in (rtctl, pysio or {}):
                try:
                    vals.append(get(r))
                except (KeyError, TypeError, ZeroDivisionError):
                    vals.append(None)
            if all(v is None for v in vals):
                continue
            cells = [fmt(v, spec) if v is not None else "n/a" for v in vals]
            rows.append([label, cells[0], *([cells[1], ratio(*vals)] if pysio is not None else [])])
        header = ["metric", "rtctl", *(["pysio", "rtctl/pysio"] if pysio is not None else [])]
        errors = [f"  {t}: {r['error']}" for t, r in (("rtctl", rtctl), ("pysio", pysio or {}))
                  if "error" in r]  # fmt: skip
        out.append(
            f"targeted emits: {name}\n{grid(header, rows)}" + "".join("\n" + e for e in errors)
        )
    return "\n\n".join(out)


FANOUT_ROWS: list[Metric] = [
    ("deliveries/s", lambda r: r["deliveries_per_s"], ",.0f"),
    ("delivery latency p50 ms", lambda r: r["p50_ms"], ".1f"),
    ("delivery latency p99 ms", lambda r: r["p99_ms"], ".1f"),
    ("daemons' CPU µs/delivery", lambda r: r["server_us_per_delivery"], ".2f"),
    ("redis-server CPU µs/delivery", lambda r: r["redis_us_per_delivery"], ".3f"),
    ("delivered / expected", lambda r: f"{r['received']}/{r['expected']}", ""),
    ("hot channel subscribers (NUMSUB)", lambda r: r["hot_channel_subscribers"], "d"),
    ("bystander: CPU ms / KiB read", lambda r: f"{r['cpu_bystander_s'] * 1000:.0f} / "
     f"{r['read_bystander_bytes'] / 1024:.1f}", ""),
    ("broadcast channel: msgs / KiB to it", lambda r: f"{r['tap_messages']} / "
     f"{r['tap_bytes'] / 1024:.1f}", ""),
    ("burst: connects refused (200 in flight)", lambda r: f"{r['burst']['connect_failed']}/"
     f"{r['burst']['connect_failed'] + r['burst']['clients']}", ""),
    ("burst: channel joins refused (all at once)", lambda r: f"{r['burst']['join_failed']}/"
     f"{r['burst']['clients']}", ""),
]  # fmt: skip


def fanout_table(results: dict[str, Result]) -> str:
    names = [n for n, _ in FANOUT_CONFIGS]
    base = results.get(names[0], {})
    rows = []
    for label, get, spec in FANOUT_ROWS:
        vals: list[Any] = []
        for n in names:
            try:
                vals.append(get(results.get(n, {})))
            except (KeyError, TypeError, ZeroDivisionError):
                vals.append(None)
        try:
            b = get(base)
        except (KeyError, TypeError, ZeroDivisionError):
            b = None
        if all(v is None for v in vals):
            continue
        rows.append([label, *(fmt(v, spec) if v is not None else "" for v in vals),
                     *(ratio(v, b) for v in vals[1:])])  # fmt: skip
    header = ["metric", *names, *(f"Redis x{nodes}/embedded" for _, nodes in FANOUT_CONFIGS[1:])]
    errors = [f"\n  {n}: {r['error']}" for n, r in results.items() if "error" in r]
    return grid(header, rows) + "".join(errors)


def reaper_table(r: Result) -> str:
    rows = [
        ["reaper sweep (rtctl.state.reaper)", *_sweep_cells(r["sweep"])],
        [f"list_sessions() of {r['sessions']:,}", f"{r['list_s']:.2f}",
         f"{r['list_stall_ms']:.1f}", f"{r['list_stall_cpu_ms']:.1f}",
         str(r["list_gaps_over_10ms"]), f"{r['listed']:,} listed", ""],
        ["1 ms ticker alone (machine noise)", "", f"{r['idle_stall_ms']:.1f}",
         f"{r['idle_stall_cpu_ms']:.1f}", str(r["idle_gaps_over_10ms"]), "", ""],
    ]  # fmt: skip
    header = ["what (one event loop, uvloop)", "seconds", "worst stall ms", "worst CPU/gap ms",
              "gaps > 10 ms", "sessions swept", "keys left behind"]  # fmt: skip
    return grid(header, rows)


def _sweep_cells(s: Result) -> list[str]:
    return [f"{s['sweep_s']:.2f}", f"{s['stall_ms']:.1f}", f"{s['stall_cpu_ms']:.1f}",
            str(s["gaps_over_10ms"]), f"{s['swept']:,}", f"{s['keys_left']:,}"]  # fmt: skip


def cli_table(results: dict[str, Result]) -> str:
    rows = [[k, f"{r['median_ms']:.0f}", f"{r['p90_ms']:.0f}", f"{r['min_ms']:.0f}",
             f"{r['stdout_bytes']:,}"] for k, r in results.items()]  # fmt: skip
    cached = any(r.get("bytecode_cached") for r in results.values())
    note = ("rtctl's bytecode cached (as installed)" if cached else
            "PYTHONDONTWRITEBYTECODE set: rtctl's modules compiled on every run (--cli-bytecode"
            " caches them)")  # fmt: skip
    header = ["command (whole process)", "median ms", "p90 ms", "min ms", "stdout bytes"]
    return grid(header, rows) + f"\n({note})"


# main ------------------------------------------------------------------------------------------

SCENARIOS = ("targeted", "fanout", "reaper", "cli", "levers")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", default=",".join(SCENARIOS), help="comma-separated: %(default)s")
    p.add_argument("--emits", type=int, default=20_000, help="targeted emits per case")
    p.add_argument("--users", type=int, default=100, help="recipient users (one client each)")
    p.add_argument("--clients", type=int, default=1000, help="fan-out channel members")
    p.add_argument("--messages", type=int, default=200, help="fan-out messages")
    p.add_argument("--sessions", type=int, default=100_000, help="sessions the reaper sweeps")
    p.add_argument("--cli-sessions", type=int, default=10_000)
    p.add_argument("--cli-runs", type=int, default=10)
    p.add_argument("--cli-bytecode", action="store_true",
                   help="cli: cache rtctl's bytecode (in the scratch dir) even if "
                   "PYTHONDONTWRITEBYTECODE is set, as an installed rtctl runs")  # fmt: skip
    p.add_argument("--quick", action="store_true", help="~1 min smoke run")
    p.add_argument("--json", type=Path, help="also write all raw results here")
    args = p.parse_args()
    if args.quick:
        args.emits, args.users, args.clients, args.messages = 5000, 50, 500, 100
        args.sessions, args.cli_runs = 20_000, 5
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
    with tempfile.TemporaryDirectory(prefix="rtctl-redis-bench-") as tmp:
        redis = RedisServer(Path(tmp) / "redis").start()
        try:
            for name in args.only:
                scratch = Path(tmp) / name
                scratch.mkdir()
                try:
                    results[name] = globals()[name](scratch, redis, args)
                except Exception as exc:
                    print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
                    results[name] = {"error": f"{type(exc).__name__}: {exc}"}
            version = redis.info("server")["redis_version"]
        finally:
            redis.kill()
    seconds, load1 = time.monotonic() - started, os.getloadavg()[0]
    sections = {
        "targeted": targeted_tables, "fanout": fanout_table, "reaper": reaper_table,
        "cli": cli_table, "levers": levers_table,
    }  # fmt: skip
    for name, res in results.items():
        if "error" in res and len(res) == 1:
            print(f"\n{name}: {res['error']}")
            continue
        print(f"\n{sections[name](res)}")
    print(f"\n{seconds:.0f} s; {os.cpu_count()} CPUs; load average {load0:.2f} at start, "
          f"{load1:.2f} at end; redis-server {version}; rtctl code: {code}")  # fmt: skip
    if args.json:
        meta = {"seconds": round(seconds), "load_1min": [load0, load1], "rtctl_code": code,
                "redis": version}  # fmt: skip
        args.json.write_text(json.dumps({"meta": meta, **results}, indent=2))


if __name__ == "__main__":
    main()
