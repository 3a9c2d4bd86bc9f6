"""``rtctl token``: issue and verify locally, revoke through the daemon."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.cli.conftest import Cli, cli_env, run_cli
from tests.conftest import ROOT, DaemonProcess

pytestmark = pytest.mark.anyio


async def test_issued_token_connects(hub: DaemonProcess, acli: Any, connect: Any) -> None:
    issued = await acli("token", "issue", "--user", "minted", "--name", "Minty", "--channel", "g*")
    assert issued.code == 0 and issued.err == ""
    [token] = issued.lines  # the token alone
    assert token.count(".") == 2
    client = await connect(token)
    assert client.sio.connected
    [session] = (await acli("sessions", "list", "--user", "minted", "-o", "json")).json()
    assert session["user_name"] == "Minty"


def test_token_in_a_shell_variable(hub: DaemonProcess, tmp_path: Path) -> None:
    """TOKEN=$(rtctl token issue …) works, then verify reads it from stdin."""
    script = 'TOKEN=$("$PY" -m rtctl token issue --user shell --ttl 60) && printf %s "$TOKEN" '
    script += '| "$PY" -m rtctl token verify - -q'
    env = cli_env(hub.url, tmp_path, PY=sys.executable)
    done = subprocess.run(["sh", "-c", script], env=env, capture_output=True, text=True, cwd=ROOT)
    assert (done.returncode, done.stdout, done.stderr) == (0, "shell\n", "")


def test_verify(cli: Cli) -> None:
    token = cli("token", "issue", "--user", "v", "--role", "admin", "--doc", "d*").out.strip()
    shown = cli("token", "verify", token, "-o", "json").json()
    assert shown["user_id"] == "v" and shown["role"] == "admin" and shown["docs"] == ["d*"]
    assert shown["expires_at"].endswith("Z") and shown["claims"]["sub"] == "v"
    plain = cli("token", "verify", token)
    assert "user_id\tv" in plain.lines
    forever = cli("token", "issue", "--user", "v", "--ttl", "0").out.strip()
    assert cli("token", "verify", forever, "-o", "json").json()["expires_at"] is None

    tampered = cli("token", "verify", token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB"))
    assert tampered.code == 1 and tampered.out == ""
    other_key = cli("token", "verify", token, RTCTL_JWT_SECRET="another-secret-0123456789abcdef")
    assert other_key.code == 1 and "signature" in other_key.err
    assert cli("token", "verify", "garbage").code == 1
    assert cli("token", "verify", "-", stdin="").code == 2


def test_issue_uses_the_generated_secret(hub: DaemonProcess, tmp_path: Path) -> None:
    env = cli_env(hub.url, tmp_path, RTCTL_JWT_SECRET="")
    missing = run_cli(["token", "issue", "--user", "a"], env)
    assert missing.code == 2 and "RTCTL_JWT_SECRET" in missing.err
    (tmp_path / "jwt_secret").write_text("generated-secret-0123456789abcdef\n")
    token = run_cli(["token", "issue", "--user", "a"], env).out.strip()
    assert run_cli(["token", "verify", token], env).code == 0
    assert run_cli(["token", "verify", token], cli_env(hub.url, tmp_path)).code == 1
    assert run_cli(["token", "issue", "--user", "a", "--ttl", "-1"], env).code == 2
    assert run_cli(["token", "issue"], env).code == 2  # --user is required


async def test_revoke_user(hub: DaemonProcess, acli: Any, connect: Any) -> None:
    token = hub.token("revoked")
    client = await connect(token)
    refused = await acli("token", "revoke", "--user", "revoked")
    assert refused.code == 2 and "--yes" in refused.err
    dry = await acli("token", "revoke", "--user", "revoked", "-n")
    assert dry.code == 0 and dry.lines[0].startswith(client.sid)
    assert not await client.gone_within(0.3)

    done = await acli("token", "revoke", "--user", "revoked", "--yes", "-o", "json")
    assert done.code == 0, done.err
    assert done.json() == {"revoked": "revoked", "kind": "user", "disconnected": [client.sid]}
    assert await client.gone_within(5)
    again = await connect(token)
    assert not again.sio.connected and again.refusal is not None


async def test_revoke_jti(hub: DaemonProcess, acli: Any, connect: Any) -> None:
    token = (await acli("token", "issue", "--user", "by-jti")).out.strip()
    jti = (await acli("token", "verify", token, "-o", "json")).json()["jti"]
    client = await connect(token)
    done = await acli("token", "revoke", "--jti", jti, "-y", "-q")
    assert done.code == 0 and done.lines == [client.sid]
    assert await client.gone_within(5)
    assert (await acli("token", "revoke", "-y")).code == 2
    assert (await acli("token", "revoke", "--jti", "a", "--user", "b", "-y")).code == 2


async def test_revocations_are_listed_and_taken_back(
    hub: DaemonProcess, acli: Any, connect: Any
) -> None:
    token = hub.token("forgiven")
    jti_token = (await acli("token", "issue", "--user", "pardoned")).out.strip()
    jti = (await acli("token", "verify", jti_token, "-o", "json")).json()["jti"]
    assert (await acli("token", "revoke", "--user", "forgiven", "-y")).code == 0
    assert (await acli("token", "revoke", "--jti", jti, "-y")).code == 0

    listed = (await acli("token", "revocations", "-o", "json")).json()
    mine = {(r["kind"], r["id"]): r for r in listed if r["id"] in ("forgiven", jti)}
    assert mine[("user", "forgiven")]["before"] and mine[("user", "forgiven")]["until"] is None
    assert mine[("jti", jti)]["until"] and mine[("jti", jti)]["before"] is None
    refused = await connect(token)
    assert not refused.sio.connected

    assert (await acli("token", "unrevoke", "--user", "forgiven")).code == 0
    assert (await acli("token", "unrevoke", "--jti", jti)).code == 0
    assert (await connect(token)).sio.connected  # accepted again
    assert (await connect(jti_token)).sio.connected
    listed = (await acli("token", "revocations", "-o", "name")).lines
    assert "forgiven" not in listed and jti not in listed
    again = await acli("token", "unrevoke", "--user", "forgiven")
    assert again.code == 3 and "not revoked" in again.err
    assert (await acli("token", "unrevoke")).code == 2
