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


HOSTILE = "[/x] [bold red]ADMIN[/bold red] \x1b[2J\x1b]0;pwned\x07 \x9b31m \u202eevil"


async def test_what_a_client_chose_prints_as_text(
    hub: DaemonProcess, connect: Any, tmp_path: Path
) -> None:
    """A user named with Rich markup, terminal escapes (ESC, OSC, C1 CSI) and a bidi
    override: every output form shows it as inert text and nothing fails."""
    import json

    await connect(hub.token("hostile-user", name=HOSTILE))
    env = cli_env(hub.url, tmp_path, TERM="xterm-256color", COLUMNS="250")
    code, text, err = await asyncio.to_thread(
        on_terminal, ["sessions", "list", "--user", "hostile-user"], env
    )
    assert code == 0, err
    assert "[/x] [bold red]ADMIN[/bold red]" in text  # markup shown, not applied
    assert "\\x1b[2J" in text and "\\x1b]0;pwned\\x07" in text and "\\x9b31m" in text
    assert "\\u202eevil" in text
    assert "\x1b[2J" not in text and "\x9b" not in text and "\u202e" not in text
    code, text, err = await asyncio.to_thread(on_terminal, ["users", "online", "-o", "wide"], env)
    assert code == 0 and "\x1b[2J" not in text, err

    plain = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "rtctl", "sessions", "list", "--user",
                         "hostile-user"], env=env, capture_output=True, text=True, cwd=ROOT,
    )  # fmt: skip
    assert plain.returncode == 0 and "\x1b" not in plain.stdout and "\x9b" not in plain.stdout
    assert len(plain.stdout.splitlines()) == 1  # one record, one line
    as_json = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "rtctl", "sessions", "list", "--user",
                         "hostile-user", "-o", "json"], env=env, capture_output=True, text=True,
        cwd=ROOT,
    )  # fmt: skip
    assert "\x9b" not in as_json.stdout and "\u202e" not in as_json.stdout
    assert json.loads(as_json.stdout)[0]["user_name"] == HOSTILE  # escaped, not altered


async def test_ids_are_never_folded(hub: DaemonProcess, connect: Any, tmp_path: Path) -> None:
    client = await connect(hub.token("narrow-terminal-user"))
    env = cli_env(hub.url, tmp_path, NO_COLOR="1", COLUMNS="40")
    code, text, err = await asyncio.to_thread(
        on_terminal, ["sessions", "list", "--user", "narrow-terminal-user"], env
    )
    assert code == 0, err
    assert client.sid in text  # whole, on one line, however narrow the terminal
