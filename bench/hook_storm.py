"""What a reconnect storm costs the app's auth hook, side by side in one run.

  python bench/hook_storm.py [--clients 1000] [--users 250] [--json FILE]

N Socket.IO clients (Node socket.io-client, bench/storm_clients.js) of U users
(N/U tabs each share their user's token, as a browser's tabs do) connect to node A
through the auth hook (a real HTTP server, tests/app_server.py). Then A is killed
(SIGKILL) and every client reconnects to node B at once. Counted: the hook calls of
the first connect and of the storm.

  redis, cached      A and B share Redis: B finds A's cached answers there
  redis, no cache    the same with answers cached for 1 ms (every connect asks)
  embedded, restart  one daemon killed and started again on its port (cache lost)
"""

from __future__ import annotations

import argparse
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))

from tests.app_server import AppServer, owui_token  # noqa: E402
from tests.conftest import free_port  # noqa: E402
from tests.redis_server import RedisServer  # noqa: E402


def start(scratch: Path, name: str, port: int, **env: str) -> subprocess.Popen[bytes]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("RTCTL_")}
    full.update(RTCTL_PORT=str(port), RTCTL_DATA_DIR=str(scratch / name), RTCTL_NODE_ID=name,
                RTCTL_LOG_LEVEL="warning", RTCTL_CONNECT_RATE="0", RTCTL_RATE_LIMIT="0",
                RTCTL_JWT_SECRET="hook-storm: rtctl's own secret, not the app's")  # fmt: skip
    full.update(env)
    (scratch / name).mkdir(exist_ok=True)
    log = (scratch / f"{name}.log").open("ab")
    proc = subprocess.Popen([sys.executable, "-m", "rtctl.server"], env=full, stdout=log,
                            stderr=log)  # fmt: skip
    import urllib.request

    for _ in range(400):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
                if r.status == 200:
                    return proc
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{name} did not start: {(scratch / f'{name}.log').read_text()}")


def wait_for(proc: subprocess.Popen[str], phase: str, timeout: float = 120.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 1.0)
        if ready:
            line = json.loads(proc.stdout.readline())
            if line["phase"] == phase:
                return dict(line)
    raise RuntimeError(f"clients: no {phase!r} within {timeout}s")


def storm(scratch: Path, app: AppServer, args: argparse.Namespace, mode: str) -> dict[str, Any]:
    hook = {"RTCTL_AUTH_HOOK_URL": f"{app.url}/hook"}
    if mode == "redis, no cache":
        hook["RTCTL_AUTH_HOOK_CACHE"] = "0.001"
    pa, pb = free_port(), free_port()
    redis = None
    if mode.startswith("redis"):
        redis = RedisServer(scratch / f"redis-{pa}")
        redis.start()
        hook.update(RTCTL_REDIS_URL=redis.url, RTCTL_NODE_TTL="3")
    a = start(scratch, f"a{pa}", pa, **hook)
    b = start(scratch, f"b{pb}", pb, **hook) if redis else None
    url_a = f"http://127.0.0.1:{pa}"
    url_b = f"http://127.0.0.1:{pb}" if b else url_a
    tokens = scratch / "tokens.txt"
    clients = subprocess.Popen(
        ["node", str(BENCH / "storm_clients.js"), "--a", url_a, "--b", url_b, "--tokens",
         str(tokens), "--clients", str(args.clients)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT,
    )  # fmt: skip
    try:
        first = wait_for(clients, "connected")
        cold = len(app.hook_calls)
        a.send_signal(signal.SIGKILL)
        a.wait()
        if b is None:  # embedded: the same daemon, started again, cache lost
            a = start(scratch, f"a{pa}", pa, **hook)
        again = wait_for(clients, "reconnected")
        return {"mode": mode, "clients": args.clients, "users": args.users,
                "first_calls": cold, "first_ms": first["ms"],
                "storm_calls": len(app.hook_calls) - cold, "storm_ms": again["ms"]}  # fmt: skip
    finally:
        clients.kill()
        for proc in (a, b):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
        if redis is not None:
            redis.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--users", type=int, default=250)
    parser.add_argument("--json")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        tokens = [owui_token(f"user-{i}") for i in range(args.users)]
        (scratch / "tokens.txt").write_text("\n".join(tokens))
        for mode in ("redis, cached", "redis, no cache", "embedded, restart"):
            app = AppServer().start()
            for i, token in enumerate(tokens):
                app.grant(token, f"user-{i}", channels=["general"])
            try:
                rows.append(storm(scratch, app, args, mode))
            finally:
                app.stop()
            row = rows[-1]
            print(f"  {mode:<18} first {row['first_calls']} calls, storm {row['storm_calls']}",
                  file=sys.stderr)  # fmt: skip
    print(f"\n{args.clients} clients of {args.users} users; node A killed, all reconnect\n")
    print("| deployment | hook calls, first connect | hook calls, storm | storm took |")
    print("|---|---:|---:|---:|")
    for r in rows:
        print(f"| {r['mode']} | {r['first_calls']} | {r['storm_calls']} |"
              f" {r['storm_ms'] / 1000:.1f} s |")  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
