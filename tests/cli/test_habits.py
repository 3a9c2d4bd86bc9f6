"""The operator's habits: pipelines that match nothing, debugging that changes nothing,
a port already taken, files others may not read."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

from tests.cli.conftest import Cli, cli_env
from tests.conftest import ROOT, DaemonProcess, daemon_env, free_port
from tests.redis_server import RedisServer


def test_an_empty_pipeline_is_nothing_to_do(cli: Cli) -> None:
    """`rtctl sessions list --user x -q | rtctl sessions kick - -y` when nothing matches."""
    for args in (["sessions", "kick", "-", "-y"], ["tasks", "stop", "-", "-y"],
                 ["docs", "compact", "-"]):  # fmt: skip
        done = cli(*args, stdin="")
        assert (done.code, done.out) == (0, ""), (args, done.err)
        as_json = cli(*args, "-o", "json", stdin="\n")
        assert (as_json.code, as_json.out) == (0, "[]\n"), (args, as_json.err)


def test_debug_shows_the_traceback_and_keeps_the_exit_code(
    hub: DaemonProcess, tmp_path: Path
) -> None:
    env = cli_env(hub.url, tmp_path)
    for debug in ("", "1"):
        done = subprocess.run(
            [sys.executable, "-m", "rtctl", "sessions", "kick", "no-such-session", "-y"],
            env={**env, "RTCTL_DEBUG": debug}, capture_output=True, text=True, cwd=ROOT,
            timeout=60,
        )  # fmt: skip
        assert done.returncode == 3, done.stderr  # not found, with or without debugging
        assert ("Traceback" in done.stderr) == bool(debug)
        assert done.stderr.rstrip().endswith("not found: no-such-session")


def test_serve_on_a_busy_port_is_one_line_and_exit_1(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = daemon_env(port, tmp_path)
        done = subprocess.run([sys.executable, "-m", "rtctl", "serve"], env=env,
                              capture_output=True, text=True, cwd=ROOT, timeout=60)  # fmt: skip
    assert done.returncode == 1, done.stderr
    (line,) = [x for x in done.stderr.splitlines() if "listen" in x]
    assert line == (f"rtctl: cannot listen on 127.0.0.1:{port}: Address already in use "
                    "(is another rtctl, or another server, running there?)")  # fmt: skip
    assert "Traceback" not in done.stderr


def test_revocations_file_is_private(tmp_path: Path) -> None:
    port = free_port()
    data = tmp_path / "data"
    data.mkdir()
    d = DaemonProcess(port, data, daemon_env(port, data)).start()
    try:
        status, _ = d.http("POST", "/api/v1/tokens/revoke", {"jti": "leaked"})
        assert status == 200
        mode = stat.S_IMODE(os.stat(data / "revocations.json").st_mode)
        assert mode == 0o600, oct(mode)
    finally:
        d.stop()


def test_request_timeout_bounds_a_hung_daemon_and_a_stopped_redis(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    import signal
    import time

    from tests.cli.conftest import run_cli

    with socket.socket() as hung:  # accepts connections, never answers
        hung.bind(("127.0.0.1", 0))
        hung.listen()
        env = cli_env(f"http://127.0.0.1:{hung.getsockname()[1]}", tmp_path)
        started = time.monotonic()
        done = run_cli(["sessions", "list", "--request-timeout", "1"], env)
        assert done.code == 69, done.err
        assert time.monotonic() - started < 5
    redis = redis_server
    env = cli_env(f"http://127.0.0.1:{free_port()}", tmp_path, RTCTL_REDIS_URL=redis.url,
                  RTCTL_REQUEST_TIMEOUT="1")  # fmt: skip
    assert redis.proc is not None
    redis.proc.send_signal(signal.SIGSTOP)
    try:
        started = time.monotonic()
        done = run_cli(["sessions", "list"], env)
        assert done.code == 69 and "did not answer within 1s" in done.err, done.err
        assert time.monotonic() - started < 5
    finally:
        redis.proc.send_signal(signal.SIGCONT)
