"""The CLI as users run it: a real ``rtctl`` process against a real daemon process, with
real Socket.IO clients connected to it.

One daemon serves a whole test module (starting one costs a second); tests keep out of
each other's way by using their own user ids.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import socketio

from tests.conftest import ADMIN, ROOT, SECRET, DaemonProcess, daemon_env, free_port


@dataclass
class Run:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)

    @property
    def lines(self) -> list[str]:
        return self.out.splitlines()


def cli_env(url: str, data_dir: Path, **extra: str) -> dict[str, str]:
    """A clean environment: nothing from the developer's RTCTL_* or data dir leaks in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RTCTL_", "NO_COLOR"))}
    env.update(
        RTCTL_URL=url, RTCTL_ADMIN_TOKEN=ADMIN, RTCTL_JWT_SECRET=SECRET,
        RTCTL_DATA_DIR=str(data_dir), COLUMNS="200",
    )  # fmt: skip
    env.update(extra)
    return {k: v for k, v in env.items() if v != ""}  # "" means: leave it unset


def run_cli(args: list[str], env: dict[str, str], stdin: str | None = None) -> Run:
    proc = subprocess.run(
        [sys.executable, "-m", "rtctl", *args],
        env=env,
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    result = Run(proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in result.err, result.err  # never, unless RTCTL_DEBUG=1
    return result


Cli = Callable[..., Run]


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    data_dir = tmp_path_factory.mktemp("hub")
    port = free_port()
    d = DaemonProcess(port, data_dir, daemon_env(port, data_dir)).start()
    yield d
    d.stop()


@pytest.fixture
def cli(hub: DaemonProcess, tmp_path: Path) -> Cli:
    """``cli("sessions", "list", stdin=…, **env)`` runs rtctl against the module's daemon."""

    def run(*args: str, stdin: str | None = None, **env: str) -> Run:
        return run_cli(list(args), cli_env(hub.url, tmp_path, **env), stdin)

    return run


@pytest.fixture
def acli(cli: Cli) -> Callable[..., Awaitable[Run]]:
    """``cli`` from async tests: runs in a thread so the clients' event loop keeps going."""

    async def run(*args: str, stdin: str | None = None, **env: str) -> Run:
        return await asyncio.to_thread(cli, *args, stdin=stdin, **env)

    return run


class Client:
    """A python-socketio client that records every event it gets."""

    def __init__(self) -> None:
        self.sio = socketio.AsyncClient(reconnection=False)
        self.events: list[tuple[str, Any]] = []
        self.gone = asyncio.Event()
        self.refusal: Any = None
        self.sid = ""  # kept after a disconnect, when the client forgets it

        @self.sio.event
        async def disconnect(*args: Any) -> None:
            self.gone.set()

        @self.sio.event
        async def connect_error(data: Any) -> None:
            self.refusal = data

        @self.sio.on("*")
        async def anything(event: str, data: Any = None) -> None:
            self.events.append((event, data))

    async def received(self, event: str, seconds: float = 5.0) -> list[Any]:
        await until(lambda: any(e == event for e, _ in self.events), seconds)
        return [data for e, data in self.events if e == event]

    async def gone_within(self, seconds: float = 5.0) -> bool:
        try:
            await asyncio.wait_for(self.gone.wait(), seconds)
        except TimeoutError:
            return False
        return True


async def until(check: Callable[[], bool], seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not check():
        await asyncio.sleep(0.02)
    return check()


@pytest.fixture
async def connect(hub: DaemonProcess) -> AsyncIterator[Callable[..., Awaitable[Client]]]:
    """``await connect(token)`` -> a connected Client (``.refusal`` set if refused)."""
    clients: list[Client] = []

    async def open_one(token: str, url: str | None = None) -> Client:
        client = Client()
        clients.append(client)
        try:
            await client.sio.connect(
                url or hub.url, auth={"token": token}, transports=["websocket"], wait_timeout=5
            )
        except socketio.exceptions.ConnectionError:
            assert client.refusal is not None
        else:
            client.sid = client.sio.get_sid() or ""
        return client

    yield open_one
    for client in clients:
        if client.sio.connected:
            await client.sio.disconnect()
