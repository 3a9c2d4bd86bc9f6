"""No writer is ever forked (SPEC §5), shown with real editors in Node: two shaped like
Open WebUI's note editor (array updates, no ydoc:sync, no ack, never a re-send) and two
y-protocols providers, editing one note through real daemons while one of them bursts
1,000 edits, redis-server is stopped (SIGSTOP) for 10 s, compaction runs in a loop, or
the embedded daemon's disk fills up (a file-size limit of 1 byte) and is freed. Every
client and `rtctl docs export` end on the same text, holding every single edit."""

from __future__ import annotations

import json
import os
import re
import resource
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.cli.conftest import cli_env, run_cli
from tests.conftest import ROOT, DaemonProcess, free_port
from tests.interop.test_yjs_documents import CompactLoop as _CompactLoop
from tests.redis_server import RedisServer

EDITOR = str(ROOT / "tests" / "interop" / "editor_client.mjs")
DOC = "note:faults"
MARKER = re.compile(r"([a-z]+)(\d+);")


def editor(d: DaemonProcess, shape: str, tag: str, seed: int, *args: str) -> subprocess.Popen[str]:
    token = d.token(f"user-{tag}", docs=["note:*"])
    return subprocess.Popen(
        ["node", EDITOR, "--shape", shape, "--url", d.url, "--token", token, "--doc", DOC,
         "--tag", tag, "--seed", str(seed), "--reconnection-delay-ms", "300",
         "--timeout-ms", "150000", *args],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def finish(proc: subprocess.Popen[str]) -> dict[str, Any]:
    out, err = proc.communicate(timeout=200)
    assert proc.returncode == 0, err[-3000:]
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    assert not result["pending"], result["tag"]
    return result


def markers(text: str) -> list[str]:
    return [m.group(0) for m in MARKER.finditer(text)]


def check_converged(results: list[dict[str, Any]], env: dict[str, str]) -> None:
    texts = {r["tag"]: r["text"] for r in results}
    if os.environ.get("FAULTS_DUMP"):
        Path(os.environ["FAULTS_DUMP"]).write_text(json.dumps(results))
    made = {m for r in results for m in r["markers"]}
    lacking = {t: sorted(made - set(markers(x)))[:8] for t, x in texts.items()}
    assert len(set(texts.values())) == 1, (lacking, [r["disconnects"] for r in results])
    text = results[0]["text"]
    found = markers(text)
    assert len(found) == len(set(found)), "an edit appears twice"
    missing = sorted(made - set(found))
    assert not missing, f"{len(missing)} edits lost, e.g. {missing[:10]}"
    run = run_cli(["docs", "export", DOC, "--format", "text"], env)
    assert run.code == 0, run.err
    assert sorted(markers(run.out)) == sorted(found)
    assert run.out.rstrip("\n") == text.rstrip("\n")


class CompactLoop(_CompactLoop):
    """`rtctl docs compact` in a loop, as a cron would; it fails (69) while Redis is stopped."""

    def _loop(self) -> None:
        while not self._stop.is_set():
            run = run_cli(["docs", "compact", DOC, "-o", "json"], self.env)
            assert run.code in (0, 3, 69), run.err  # 3: not written yet; 69: Redis stopped
            self.runs += 1


def paused(server: RedisServer, seconds: float) -> None:
    assert server.proc is not None
    os.kill(server.proc.pid, signal.SIGSTOP)
    try:
        time.sleep(seconds)
    finally:
        os.kill(server.proc.pid, signal.SIGCONT)


def test_burst_redis_stopped_and_compaction_two_daemons(
    make_daemon: Any, redis_server: RedisServer, tmp_path: Path
) -> None:
    common = {"RTCTL_REDIS_URL": redis_server.url, "RTCTL_DOC_COMPACT_UPDATES": "100"}
    d1 = make_daemon(RTCTL_NODE_ID="n1", **common)
    d2 = make_daemon(RTCTL_NODE_ID="n2", **common)
    env = cli_env(f"http://127.0.0.1:{free_port()}", tmp_path, RTCTL_REDIS_URL=redis_server.url,
                  RTCTL_ADMIN_TOKEN="")  # fmt: skip
    quiet = ("--wait-quiet-ms", "12000")  # longer than Redis is stopped: nothing relays then
    paced = ("--edits", "400", "--interval-ms", "30", *quiet)
    clients = [  # the first bursts 1,000 edits, all at once, while the others type
        editor(d1, "owui", "burst", 1, "--edits", "1000", "--start-delay-ms", "1500", *quiet),
        editor(d2, "owui", "ob", 2, "--awareness", *paced),  # as Open WebUI: JSON text
        editor(d1, "sync", "sa", 3, *paced),
        editor(d2, "sync", "sb", 4, *paced),
    ]
    with CompactLoop(env) as loop:
        time.sleep(4)
        paused(redis_server, 10)
        results = [finish(c) for c in clients]
    assert loop.runs >= 2
    check_converged(results, env)
    assert all(not r["refused"] for r in results), [r["refused"][:3] for r in results]


def test_disk_full_embedded_then_freed(make_daemon: Any) -> None:
    d = make_daemon(RTCTL_DOC_BACKLOG_SECONDS="6", RTCTL_DOC_COMPACT_UPDATES="100")
    env = cli_env(d.url, d.data_dir)
    paced = ("--edits", "300", "--interval-ms", "30", "--wait-quiet-ms", "5000")
    clients = [
        editor(d, "owui", "oa", 1, *paced),
        editor(d, "owui", "ob", 2, *paced),
        editor(d, "sync", "sa", 3, *paced),
    ]
    assert d.proc is not None
    with CompactLoop(env):
        time.sleep(2.5)
        limits = resource.prlimit(d.proc.pid, resource.RLIMIT_FSIZE)
        resource.prlimit(d.proc.pid, resource.RLIMIT_FSIZE, (1, limits[1]))  # the disk is full
        try:
            time.sleep(9)  # past the backlog bound: writers are reconnected, then catch up
        finally:
            resource.prlimit(d.proc.pid, resource.RLIMIT_FSIZE, limits)
        results = [finish(c) for c in clients]
    check_converged(results, env)
    # writers waited past the backlog bound: reconnected by a transport close, as meant
    assert all("transport close" in r["disconnects"] for r in results)
    status, text = d.http("GET", "/metrics", auth=False)
    (line,) = [x for x in text.splitlines() if x.startswith("rtctl_doc_reconnects_total ")]
    assert status == 200 and float(line.split()[1]) >= len(results)


@pytest.fixture(autouse=True)
def _node_available() -> None:
    if not (ROOT / "node_modules" / "yjs").exists():
        pytest.fail("node_modules missing: run scripts/test (it runs npm ci)")
