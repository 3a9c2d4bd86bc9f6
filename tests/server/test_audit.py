"""The audit trail: every operator action leaves one line (who, what, result) in the
daemon's log, as JSON with log_format = json; the app's own traffic does not."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from tests.cli.conftest import cli_env, run_cli
from tests.conftest import DaemonProcess, free_port
from tests.redis_server import RedisServer
from tests.server.live_client import LiveClient, http, until

pytestmark = pytest.mark.anyio


def audit_lines(d: DaemonProcess) -> list[dict[str, Any]]:
    out = []
    for line in d.log().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("logger") == "rtctl.audit":
            out.append(record)
    return out


async def test_admin_api_actions_are_audited_as_json(make_daemon: Any) -> None:
    d: DaemonProcess = make_daemon(RTCTL_LOG_FORMAT="json")
    alice = await LiveClient(d, d.token("alice")).connect()
    try:
        assert (await http(d, "POST", "/api/v1/sessions/kick", {"user": "alice"}))[0] == 200
        assert (await http(d, "POST", "/api/v1/sessions/kick", {"user": "nobody"}))[0] == 404
        batch = {"emits": [{"event": "x", "user": "alice", "data": {"secret": "s3cr3t"}}]}
        assert (await http(d, "POST", "/api/v1/emit/batch", batch))[0] == 200
        await until(lambda: len(audit_lines(d)) >= 2, 5, "two audit lines")
    finally:
        await alice.close()
    kicked, missed = audit_lines(d)[:2]
    assert kicked["action"] == "POST /api/v1/sessions/kick" and kicked["result"] == "ok"
    assert kicked["target"] == {"user": "alice"} and kicked["who"].startswith(
        "admin API 127.0.0.1:"
    )
    assert missed["target"] == {"user": "nobody"} and missed["result"] == "HTTP 404"
    assert kicked["level"] == "info" and kicked["ts"].endswith("Z")
    assert not any("emit/batch" in r["action"] for r in audit_lines(d))  # the app's traffic
    assert "s3cr3t" not in d.log()  # payloads are never logged
    # every line of a JSON log is JSON
    assert all(json.loads(x) for x in d.log().splitlines() if x.startswith("{"))


async def test_commands_from_the_cli_on_redis_are_audited(
    make_daemon: Any, redis_server: RedisServer, tmp_path: Path
) -> None:
    d: DaemonProcess = make_daemon(RTCTL_REDIS_URL=redis_server.url, RTCTL_PREFIX="audit")
    bob = await LiveClient(d, d.token("bob")).connect()
    env = cli_env(f"http://127.0.0.1:{free_port()}", tmp_path, RTCTL_REDIS_URL=redis_server.url,
                  RTCTL_PREFIX="audit", RTCTL_ADMIN_TOKEN="")  # fmt: skip
    try:
        done = await asyncio.to_thread(run_cli, ["token", "revoke", "--user", "bob", "-y"], env)
        assert done.code == 0, done.err
        await until(lambda: "command revoke by cli-" in d.log(), 5, "the node's audit line")
    finally:
        await bob.close()
    (line,) = [x for x in d.log().splitlines() if "command revoke by cli-" in x]
    assert '{"user": "bob"}' in line and line.rstrip().endswith("-> ok")
