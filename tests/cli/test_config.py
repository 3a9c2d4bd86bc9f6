"""``rtctl config show`` / ``check``: precedence, sources, masking, exit codes."""

from __future__ import annotations

from pathlib import Path

from tests.cli.conftest import Cli
from tests.conftest import ADMIN, SECRET


def settings(cli: Cli, *args: str, **env: str) -> dict[str, dict[str, str]]:
    shown = cli("config", "show", "-o", "json", *args, **env)
    assert shown.code == 0, shown.err
    return {row["name"]: row for row in shown.json()}


def test_show_precedence_flag_env_file(cli: Cli, tmp_path: Path) -> None:
    toml = tmp_path / "rtctl.toml"
    toml.write_text('port = 1111\nprefix = "from-file"\nhost = "0.0.0.0"\n')
    rows = settings(cli, "--config", str(toml), "--port", "3333", RTCTL_PORT="2222")
    assert (rows["port"]["value"], rows["port"]["source"]) == ("3333", "flag --port")
    assert (rows["prefix"]["value"], rows["prefix"]["source"]) == ("from-file", f"file {toml}")
    assert rows["log_level"]["source"] == "default"

    by_env = settings(cli, RTCTL_PORT="2222", RTCTL_CONFIG=str(toml))
    assert (by_env["port"]["value"], by_env["port"]["source"]) == ("2222", "env RTCTL_PORT")
    assert by_env["host"]["value"] == "0.0.0.0"
    assert list(by_env["port"]) == ["name", "value", "source", "env", "help"]


def test_show_masks_secrets(cli: Cli) -> None:
    for args in ((), ("-o", "json"), ("-o", "wide")):
        shown = cli("config", "show", *args, RTCTL_REDIS_URL="redis://:pw-in-url@h:6379/0")
        assert shown.code == 0
        for secret in (SECRET, ADMIN, "pw-in-url"):
            assert secret not in shown.out
    rows = settings(cli)
    assert rows["jwt_secret"]["value"] == "********"
    assert rows["admin_token"]["source"] == "env RTCTL_ADMIN_TOKEN"
    names = cli("config", "show", "-o", "name").lines
    assert names[:3] == ["host", "port", "path"]
    plain = cli("config", "show").lines
    assert "port\t7480\tdefault" in plain


def test_check(cli: Cli, tmp_path: Path) -> None:
    ok = cli("config", "check")
    assert (ok.code, ok.out) == (0, "") and "valid" in ok.err

    bad = tmp_path / "bad.toml"
    bad.write_text('port = 0\npath = "no-slash"\njwt_secret = "short"\n')
    found = cli("config", "check", "--config", str(bad), RTCTL_JWT_SECRET="")
    assert found.code == 1
    problems = found.err.splitlines()
    assert len(problems) == 3, problems
    assert all(p.startswith("rtctl: config: ") for p in problems)

    assert cli("config", "check", "--port", "70000").code == 1
    unknown = tmp_path / "unknown.toml"
    unknown.write_text("colour = 1\n")
    assert cli("config", "check", "--config", str(unknown)).code == 1
    assert cli("config", "check", RTCTL_RATE_LIMIT="fast").code == 1
    assert cli("config", "check", "--config", str(tmp_path / "absent.toml")).code == 1
    assert cli("config", "check", "--port", "abc").code == 2  # a flag's type: usage

    # Elsewhere an invalid configuration is a usage error.
    assert cli("config", "show", "--config", str(unknown)).code == 2
    assert cli("sessions", "list", RTCTL_PORT="x").code == 2


def test_check_lists_every_problem_serve_would_find(cli: Cli, tmp_path: Path) -> None:
    """`config check` says "valid" only when `serve` starts, and lists every problem."""
    many = tmp_path / "many.toml"
    many.write_text('colour = 1\nflavour = "x"\nport = "high"\nrate_limit = "fast"\n')
    found = cli("config", "check", "--config", str(many), RTCTL_CALL_TIMEOUT="soon")
    assert found.code == 1
    problems = found.err.splitlines()
    assert len(problems) == 5, problems  # two unknown keys, three unreadable values
    assert any("'colour'" in p for p in problems) and any("'flavour'" in p for p in problems)
    assert any("call_timeout" in p for p in problems)

    # Redis mode without a shared JWT key: serve refuses it, so check does too
    redis = {"RTCTL_REDIS_URL": "redis://127.0.0.1:1/0", "RTCTL_JWT_SECRET": ""}
    refused = cli("config", "check", **redis)
    assert refused.code == 1 and "needs one JWT key" in refused.err
    serve = cli("serve", "--port", "1", **redis)
    assert serve.code == 2 and "needs one JWT key" in serve.err
    sentinel = cli("config", "check", RTCTL_REDIS_URL="redis+sentinel://h1:x/svc")
    assert sentinel.code == 1 and "bad sentinel address" in sentinel.err
    app = cli("config", "check", RTCTL_APP="no_such_module_here:setup")
    assert app.code == 1 and "cannot load" in app.err
