"""Exit codes and one-line errors for every kind of failure."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from rtctl import errors
from rtctl.cli.errors import EXIT_CODES, exit_code
from rtctl.errors import HTTP_ERRORS
from rtctl.server.admin import HTTP_STATUS
from tests.cli.conftest import Cli, cli_env, run_cli
from tests.conftest import ADMIN, free_port


def test_unreachable_daemon_exits_69(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    for args in (["status"], ["sessions", "list"], ["emit", "e", "{}", "--user", "u"]):
        down = run_cli(args, cli_env(url, tmp_path))
        assert down.code == 69, down.err
        assert down.out == ""
        assert down.err.startswith(f"rtctl: cannot reach the rtctl daemon at {url}: ")
        assert down.err.count("\n") == 1


def test_wrong_or_missing_admin_token_exits_1(cli: Cli) -> None:
    wrong = cli("sessions", "list", RTCTL_ADMIN_TOKEN="not-the-token")
    assert wrong.code == 1 and "env RTCTL_ADMIN_TOKEN" in wrong.err
    flag = cli("sessions", "list", "--admin-token", "nope")
    assert flag.code == 1 and "flag --admin-token" in flag.err
    missing = cli("sessions", "list", RTCTL_ADMIN_TOKEN="")
    assert missing.code == 1 and "no admin token found" in missing.err


def test_admin_token_from_the_data_dir(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "admin_token").write_text(ADMIN + "\n")
    assert cli("sessions", "list", RTCTL_ADMIN_TOKEN="").code == 0


def test_usage_errors_exit_2(cli: Cli) -> None:
    for args in (
        ("no-such-command",),
        ("sessions", "list", "-o", "yaml"),
        ("sessions", "list", "--bogus"),
        ("rooms", "members"),
        ("token", "issue", "--ttl", "soon", "--user", "a"),
    ):
        result = cli(*args)
        assert result.code == 2, (args, result.err)
        assert "Usage:" in result.err or "Error" in result.err


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    env = cli_env("http://127.0.0.1:1", tmp_path, RTCTL_DEBUG="1")
    done = subprocess.run(
        [sys.executable, "-m", "rtctl", "nodes", "list"], env=env, capture_output=True, text=True
    )
    assert done.returncode != 0 and "Traceback" in done.stderr


def test_exit_code_table() -> None:
    assert exit_code(errors.BackendUnavailable("x")) == 69
    assert exit_code(errors.NotFound("x")) == 3
    assert exit_code(errors.RateLimited("x")) == 2
    assert exit_code(errors.ConfigError("x")) == 2
    assert exit_code(errors.Forbidden("x")) == 1
    assert exit_code(errors.OperationFailed("x")) == 1
    assert EXIT_CODES[-1][0] is errors.RtctlError  # the catch-all comes last


def test_http_statuses_match_the_admin_api() -> None:
    """An error the daemon found exits as it would had the CLI found it itself."""
    for cls, status in HTTP_STATUS:
        assert exit_code(HTTP_ERRORS[status]("x")) == exit_code(cls("x")), (cls, status)
