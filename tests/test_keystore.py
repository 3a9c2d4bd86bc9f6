"""Generated secrets: created once, private, reused, and never over a configured value."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

import pytest

from rtctl import keystore
from rtctl.config import Settings
from rtctl.errors import ConfigError


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_first_run_generates_private_secrets(tmp_path: Path) -> None:
    data = tmp_path / "fresh" / "rtctl"
    secret, token, created = keystore.ensure_generated(Settings(data_dir=str(data)))
    assert sorted(created) == sorted([data / "jwt_secret", data / "admin_token"])
    assert secret and token and secret != token
    assert len(secret) >= 32 and len(token) >= 32
    assert mode(data) == 0o700
    for path in created:
        assert mode(path) == 0o600
    assert (data / "jwt_secret").read_text().strip() == secret
    assert (data / "admin_token").read_text().strip() == token


def test_second_run_reuses_them(tmp_path: Path) -> None:
    settings = Settings(data_dir=str(tmp_path / "d"))
    first = keystore.ensure_generated(settings)
    secret, token, created = keystore.ensure_generated(settings)
    assert (secret, token, created) == (first[0], first[1], [])
    # the CLI on the same machine reads the same values back
    assert keystore.jwt_secret(settings) == secret
    assert keystore.admin_token(settings) == token


def test_configured_values_win(tmp_path: Path) -> None:
    data = tmp_path / "d"
    keystore.ensure_generated(Settings(data_dir=str(data)))  # generated files exist
    configured = Settings(
        data_dir=str(data),
        jwt_secret="configured-secret-0123456789",
        admin_token="configured-admin",
    )
    secret, token, created = keystore.ensure_generated(configured)
    assert (secret, token, created) == ("configured-secret-0123456789", "configured-admin", [])
    assert keystore.jwt_secret(configured) == "configured-secret-0123456789"
    assert keystore.admin_token(configured) == "configured-admin"


def test_configured_values_create_no_files(tmp_path: Path) -> None:
    data = tmp_path / "d"
    settings = Settings(data_dir=str(data), jwt_secret="s" * 20, admin_token="a")
    assert keystore.ensure_generated(settings)[2] == []
    assert not data.exists()


def test_public_key_means_no_generated_secret(tmp_path: Path) -> None:
    data = tmp_path / "d"
    key = tmp_path / "key.pem"
    key.write_text("pem")
    settings = Settings(data_dir=str(data), jwt_public_key=str(key))
    secret, token, created = keystore.ensure_generated(settings)
    assert secret is None and token
    assert created == [data / "admin_token"]
    assert keystore.jwt_secret(settings) is None


def test_nothing_generated_reads_as_none(tmp_path: Path) -> None:
    settings = Settings(data_dir=str(tmp_path / "absent"))
    assert keystore.jwt_secret(settings) is None
    assert keystore.admin_token(settings) is None


RACE = """
import sys
import pytest

from rtctl import keystore
from rtctl.config import Settings
from rtctl.errors import ConfigError
secret, token, _ = keystore.ensure_generated(Settings(data_dir=sys.argv[1]))
print(secret, token)
"""


def test_concurrent_first_runs_agree(tmp_path: Path) -> None:
    """Daemons and CLIs started together must all end up with the one stored secret."""
    data = tmp_path / "d"
    procs = [
        subprocess.Popen([sys.executable, "-c", RACE, str(data)], stdout=subprocess.PIPE, text=True)
        for _ in range(8)
    ]
    outputs = {p.communicate(timeout=30)[0].strip() for p in procs}
    assert all(p.returncode == 0 for p in procs)
    stored = (
        f"{(data / 'jwt_secret').read_text().strip()} {(data / 'admin_token').read_text().strip()}"
    )
    assert outputs == {stored}


def test_empty_secret_file_is_refused_not_replaced_silently(tmp_path: Path) -> None:
    """An empty file (a crash mid-write, a full disk) must not yield a new random secret
    on every run that no other process knows: the operator is told instead."""
    data = tmp_path / "d"
    data.mkdir(mode=0o700)
    (data / "jwt_secret").write_text("")
    with pytest.raises(ConfigError, match="jwt_secret exists but is empty"):
        keystore.ensure_generated(Settings(data_dir=str(data)))
    assert sorted(p.name for p in data.iterdir()) == ["jwt_secret"]  # no temporary left behind
