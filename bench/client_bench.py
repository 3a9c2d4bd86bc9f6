"""The app -> hub path, side by side in one run: how many emits per second an app's
backend gets out of one process.

  python bench/client_bench.py [--emits N] [--concurrency C] [--json FILE]

Each row emits N events of an Open WebUI-sized streaming token payload
(``{chat_id, message_id, data: {type: "chat:completion", data: {content, delta}}}``)
from C concurrent tasks, each streaming to its own user (``user:u0`` … ``user:u<C-1>``,
each with a session), as an app streams completions to C users at once:

  python-socketio  AsyncRedisManager(write_only=True), what such apps use today
  rtctl redis      rtctl.AsyncClient(redis_url=...), no daemon needed
  rtctl admin API  rtctl.AsyncClient(url=...), to a daemon's admin API

One rtctl daemon runs in Redis mode on a private redis-server with a real Socket.IO
client per user connected, so rtctl's publishes are received and delivered (python-
socketio's go to its own channel, where nothing listens: the comparison favours it).
The client counts what it received, so a row that loses events shows it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))

import socketio  # noqa: E402

import rtctl  # noqa: E402
from rtctl.auth import issue_token  # noqa: E402
from tests.redis_server import RedisServer  # noqa: E402

SECRET = "client-bench-secret-0123456789abcdef0123456789"
ADMIN = "client-bench-admin"


def payload(i: int) -> dict[str, Any]:
    token = {"content": "The quick brown fox " * 4, "delta": f" tok{i}"}
    return {"chat_id": "chat-1", "message_id": "msg-1",
            "data": {"type": "chat:completion", "data": token}}  # fmt: skip


async def drive(emit: Any, n: int, concurrency: int) -> None:
    """Emit ``n`` events from ``concurrency`` tasks, each awaiting its own emits."""

    async def worker(start: int) -> None:
        for i in range(start, n, concurrency):
            await emit(i)

    await asyncio.gather(*(worker(k) for k in range(concurrency)))


def start_daemon(scratch: Path, redis_url: str, port: int) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RTCTL_")}
    env.update(RTCTL_REDIS_URL=redis_url, RTCTL_PORT=str(port), RTCTL_JWT_SECRET=SECRET,
               RTCTL_ADMIN_TOKEN=ADMIN, RTCTL_DATA_DIR=str(scratch), RTCTL_LOG_LEVEL="warning",
               RTCTL_RATE_LIMIT="0", RTCTL_MAX_PAYLOAD="16000000")  # fmt: skip
    log = (scratch / "daemon.log").open("wb")
    return subprocess.Popen([sys.executable, "-m", "rtctl.server"], env=env, stdout=log,
                            stderr=log)  # fmt: skip


def wait_ready(url: str) -> None:
    import urllib.request

    for _ in range(400):
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError("daemon not ready")


async def bench(args: argparse.Namespace, redis: RedisServer, url: str) -> dict[str, Any]:
    received = 0
    users = []
    for k in range(args.concurrency):  # one user per task, each with a session
        user = socketio.AsyncClient(reconnection=False)

        @user.on("events")
        async def on_events(data: Any) -> None:
            nonlocal received
            received += 1

        await user.connect(url, auth={"token": issue_token(SECRET, f"u{k}")},
                           transports=["websocket"])  # fmt: skip
        users.append(user)
    rows: dict[str, Any] = {}

    async def measure(name: str, emit: Any, counted: bool, flush: Any = None) -> None:
        nonlocal received
        await drive(emit, min(2000, args.emits), args.concurrency)  # warm up
        await asyncio.sleep(0.5)
        received = 0
        began = time.perf_counter()
        await drive(emit, args.emits, args.concurrency)
        if flush is not None:
            await flush()  # an emit returns once queued: count until all reached Redis
        seconds = time.perf_counter() - began
        if counted:
            deadline = time.monotonic() + 30
            while received < args.emits and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
        rows[name] = {"emits_per_s": args.emits / seconds,
                      "delivered": received if counted else None}  # fmt: skip
        print(f"  {name:<18} {args.emits / seconds:>10,.0f} emits/s", file=sys.stderr)

    c = args.concurrency  # worker k emits i = k, k + c, ...: to user u{k}
    mgr = socketio.AsyncRedisManager(redis.url, write_only=True)
    await measure("python-socketio",
                  lambda i: mgr.emit("events", payload(i), room=f"user:u{i % c}"),
                  counted=False)  # fmt: skip
    async with rtctl.AsyncClient(redis_url=redis.url) as hub:
        await measure("rtctl redis", lambda i: hub.emit("events", payload(i), user=f"u{i % c}"),
                      counted=True, flush=hub.flush)  # fmt: skip
    async with rtctl.AsyncClient(url=url, admin_token=ADMIN) as hub:
        await measure("rtctl admin API", lambda i: hub.emit("events", payload(i), user=f"u{i % c}"),
                      counted=True, flush=hub.flush)  # fmt: skip
    for user in users:
        await user.disconnect()
    base = rows["python-socketio"]["emits_per_s"]
    for row in rows.values():
        row["ratio"] = row["emits_per_s"] / base
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--emits", type=int, default=50_000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        redis = RedisServer(scratch / "redis")
        redis.start()
        from tests.conftest import free_port

        port = free_port()
        daemon = start_daemon(scratch, redis.url, port)
        try:
            url = f"http://127.0.0.1:{port}"
            wait_ready(url)
            rows = asyncio.run(bench(args, redis, url))
        finally:
            daemon.terminate()
            daemon.wait(15)
            redis.kill()
    print(f"\n{args.emits} emits to {args.concurrency} users from as many concurrent tasks\n")
    print("| way | emits/s | vs python-socketio | delivered |\n|---|---:|---:|---:|")
    for name, row in rows.items():
        delivered = "-" if row["delivered"] is None else f"{row['delivered']}/{args.emits}"
        print(f"| {name} | {row['emits_per_s']:,.0f} | {row['ratio']:.2f}x | {delivered} |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
