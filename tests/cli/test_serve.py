"""``rtctl serve``: flags, first-run secrets the CLI then finds, status, clean stop."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from rtctl.config import FIELDS, flag_name
from tests.cli.conftest import cli_env, run_cli
from tests.conftest import ROOT, free_port


def test_serve_first_run_then_operate(tmp_path: Path) -> None:
    port, data = free_port(), tmp_path / "data"
    url = f"http://127.0.0.1:{port}"
    # Nothing configured but flags: secrets are generated in the data dir.
    env = cli_env(url, tmp_path, RTCTL_ADMIN_TOKEN="", RTCTL_JWT_SECRET="", RTCTL_DATA_DIR="")
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "rtctl", "serve", "--port", str(port), "--data-dir", str(data),
         "--node-id", "cli-node", "--log-level", "warning", "--drain-grace", "2"],
        env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
    )  # fmt: skip
    try:
        op_env = {**env, "RTCTL_DATA_DIR": str(data)}
        deadline = time.monotonic() + 20
        while run_cli(["status"], op_env).code == 69 and time.monotonic() < deadline:
            time.sleep(0.1)
        status = run_cli(["status", "-o", "json"], op_env)
        assert status.code == 0, (status.err, (tmp_path / "serve.log").read_text())
        found = status.json()
        assert found["ready"] is True and found["node"] == "cli-node"
        assert [n["id"] for n in found["nodes"]] == ["cli-node"]
        plain = run_cli(["status"], op_env).lines
        assert plain[0] == "ready\tyes"
        assert run_cli(["status", "-q"], op_env).lines == ["cli-node"]
        # The CLI found the generated admin token and JWT secret in the data dir.
        token = run_cli(["token", "issue", "--user", "first"], op_env).out.strip()
        assert run_cli(["token", "verify", token], op_env).code == 0
        assert (data / "admin_token").exists() and (data / "jwt_secret").exists()
        assert "rtctl token issue" in (tmp_path / "serve.log").read_text()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0


def test_serve_refuses_a_bad_configuration(tmp_path: Path) -> None:
    env = cli_env("http://127.0.0.1:1", tmp_path)
    bad = run_cli(["serve", "--port", "0"], env)
    assert bad.code == 2 and "port" in bad.err
    assert bad.err.count("\n") == 1


def test_serve_takes_every_setting_as_a_flag(tmp_path: Path) -> None:
    shown = run_cli(["serve", "--help"], cli_env("http://127.0.0.1:1", tmp_path))
    assert shown.code == 0
    for name in FIELDS:
        assert flag_name(name) + " " in shown.out, name
    assert "--config PATH" in shown.out


def test_serve_in_redis_mode_needs_a_shared_jwt_key(tmp_path: Path) -> None:
    env = cli_env("http://127.0.0.1:1", tmp_path, RTCTL_JWT_SECRET="")
    refused = run_cli(["serve", "--redis-url", "redis://127.0.0.1:1/0"], env)
    assert refused.code == 2 and "shared by every daemon" in refused.err
