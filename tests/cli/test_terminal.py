"""On a terminal: tables, colour unless NO_COLOR / --no-color, confirmation prompts."""

from __future__ import annotations

import asyncio
import os
import pty
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.cli.conftest import cli_env
from tests.conftest import ROOT, DaemonProcess

pytestmark = pytest.mark.anyio


def on_terminal(
    args: list[str], env: dict[str, str], answer: str | None = None
) -> tuple[int, str, str]:
    """Run rtctl with stdout (and stdin) on a pseudo-terminal; (code, terminal text, stderr)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "rtctl", *args],
        stdin=slave, stdout=slave, stderr=subprocess.PIPE, env=env, cwd=ROOT,
    )  # fmt: skip
    os.close(slave)
    if answer is not None:
        os.write(master, answer.encode())
    chunks = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    err = proc.stderr.read().decode() if proc.stderr else ""
    code = proc.wait(30)
    assert "Traceback" not in err
    return code, b"".join(chunks).decode(errors="replace"), err


def test_table_and_colour(hub: DaemonProcess, tmp_path: Path) -> None:
    env = cli_env(hub.url, tmp_path, TERM="xterm-256color")
    code, text, _ = on_terminal(["nodes", "list"], env)
    assert code == 0
    assert "ID" in text and "HOST" in text and "\x1b[" in text
    for plain_env, args in (({**env, "NO_COLOR": "1"}, []), (env, ["--no-color"])):
        code, text, _ = on_terminal(["nodes", "list", *args], plain_env)
        assert code == 0 and "ID" in text and "\x1b[" not in text
    code, text, err = on_terminal(["sessions", "list", "--user", "nobody-here"], env)
    assert (code, text) == (0, "") and "no sessions" in err


async def test_kick_asks_on_a_terminal(hub: DaemonProcess, connect: Any, tmp_path: Path) -> None:
    client = await connect(hub.token("asked"))
    env = cli_env(hub.url, tmp_path, NO_COLOR="1")
    args = ["sessions", "kick", client.sid]
    code, _, err = await asyncio.to_thread(on_terminal, args, env, "n\n")
    assert code == 1 and "Kick 1 session(s)" in err and "cancelled" in err
    assert client.sio.connected
    code, text, _ = await asyncio.to_thread(on_terminal, args, env, "y\n")
    assert code == 0 and "kicked" in text
    assert await client.gone_within(5)
