"""Node yjs clients editing one document through the hub while compaction runs in a
loop: every client converges, the export decoded by yjs equals what they see, and the
document survives the daemons restarting. Embedded, and two daemons on one Redis."""

from __future__ import annotations

import base64
import json
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.cli.conftest import cli_env, run_cli
from tests.conftest import ROOT, DaemonProcess, free_port
from tests.redis_server import RedisServer

CLIENT = str(ROOT / "tests" / "interop" / "yjs_client.mjs")
DECODE = str(ROOT / "tests" / "interop" / "yjs_decode.mjs")
DOC = "note:shared"


def start_client(d: DaemonProcess, user: str, seed: int, *args: str) -> subprocess.Popen[str]:
    token = d.token(user, docs=["note:*"])
    return subprocess.Popen(
        ["node", CLIENT, "--url", d.url, "--token", token, "--doc", DOC, "--seed", str(seed),
         "--wait-quiet-ms", "1500", "--fail-on-error", *args],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def finish(proc: subprocess.Popen[str]) -> dict[str, Any]:
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    assert not result["pending"] and not result["errors"] and not result["refused"], result
    return result


class CompactLoop:
    """`rtctl docs compact` over and over, as an operator's cron gone wild would."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env, self.runs, self.compacted = env, 0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            run = run_cli(["docs", "compact", DOC, "-o", "json"], self.env)
            assert run.code in (0, 3), run.err  # 3: not written yet
            if run.code == 0:
                self.compacted += sum(r["compacted"] for r in json.loads(run.out))
            self.runs += 1

    def __enter__(self) -> CompactLoop:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(60)


def exported(env: dict[str, str]) -> dict[str, Any]:
    run = subprocess.run([*cli_cmd(), "docs", "export", DOC, "--format", "update"], env=env,
                         capture_output=True, timeout=60, cwd=ROOT)  # fmt: skip
    assert run.returncode == 0, run.stderr
    decoded = subprocess.run(["node", DECODE], input=run.stdout, capture_output=True,
                             timeout=60, cwd=ROOT)  # fmt: skip
    assert decoded.returncode == 0, decoded.stderr
    result: dict[str, Any] = json.loads(decoded.stdout)
    return result


def cli_cmd() -> list[str]:
    import sys

    return [sys.executable, "-m", "rtctl"]


def edit_together(daemons: list[DaemonProcess], env: dict[str, str]) -> dict[str, Any]:
    # paced, so that the editing outlasts several compactions (a CLI run takes ~0.1 s)
    pace = ("--interval-ms", "8")
    clients = [
        start_client(daemons[0], "alice", 1, "--edits", "150", "--form", "json", *pace),
        start_client(daemons[-1], "bob", 2, "--edits", "150", "--form", "binary", *pace),
        start_client(
            daemons[0], "carol", 3, "--edits", "60", "--sync", "--offline-edits", "20", *pace
        ),
    ]
    with CompactLoop(env) as loop:
        results = [finish(c) for c in clients]
    assert loop.runs >= 2 and loop.compacted > 0
    texts = {r["text"] for r in results}
    assert len(texts) == 1, texts
    assert len({json.dumps(r["meta"], sort_keys=True) for r in results}) == 1
    assert all(r["acked"] == r["sent"] for r in results)
    export = exported(env)
    assert export["text"] == results[0]["text"] and export["meta"] == results[0]["meta"]
    assert base64.b64decode(results[0]["state_vector"])  # yjs agreed on a state
    return export


def test_node_yjs_clients_converge_embedded(make_daemon: Any, tmp_path: Path) -> None:
    d = make_daemon(RTCTL_RATE_LIMIT="0", RTCTL_DOC_COMPACT_UPDATES="50")
    env = cli_env(d.url, d.data_dir)
    before = edit_together([d], env)
    assert d.stop() == 0
    d.start()
    late = finish(start_client(d, "dave", 4))
    assert late["text"] == before["text"] and late["meta"] == before["meta"]


def test_node_yjs_clients_converge_across_two_daemons_on_redis(
    make_daemon: Any, redis_server: RedisServer, tmp_path: Path
) -> None:
    common = {"RTCTL_REDIS_URL": redis_server.url, "RTCTL_RATE_LIMIT": "0",
              "RTCTL_DOC_COMPACT_UPDATES": "50"}  # fmt: skip
    daemons = [make_daemon(RTCTL_NODE_ID=n, **common) for n in ("n1", "n2")]
    # the CLI reaches the documents through Redis alone: its RTCTL_URL points nowhere
    env = cli_env(f"http://127.0.0.1:{free_port()}", tmp_path, RTCTL_REDIS_URL=redis_server.url,
                  RTCTL_ADMIN_TOKEN="")  # fmt: skip
    before = edit_together(daemons, env)
    for d in daemons:
        assert d.stop() == 0
    daemons[1].start()
    late = finish(start_client(daemons[1], "dave", 4, "--sync"))
    assert late["text"] == before["text"] and late["meta"] == before["meta"]


@pytest.fixture(autouse=True)
def _node_available() -> None:
    if not (ROOT / "node_modules" / "yjs").exists():
        pytest.fail("node_modules missing: run scripts/test (it runs npm ci)")
