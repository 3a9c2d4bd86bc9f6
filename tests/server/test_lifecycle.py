"""The daemon's life (SPEC §1): SIGTERM drain, forced exit, generated secrets, sd_notify."""

from __future__ import annotations

import asyncio
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import socketio

from rtctl.auth import issue_token
from tests.conftest import ADMIN, ROOT, DaemonProcess, daemon_env, free_port
from tests.server.live_client import LiveClient, connect

pytestmark = pytest.mark.anyio


def wait_exit(d: DaemonProcess, timeout: float) -> int | None:
    """The exit code, or None if the process is still running after ``timeout``."""
    assert d.proc is not None
    try:
        return d.proc.wait(timeout)
    except subprocess.TimeoutExpired:
        return None


async def test_sigterm_drains_and_exits_zero(make_daemon: Any) -> None:
    grace = 3.0
    d: DaemonProcess = make_daemon(RTCTL_DRAIN_GRACE=str(grace))
    clients = [await connect(d, f"user{i}") for i in range(3)]
    assert d.proc is not None
    try:
        started = time.monotonic()
        d.proc.send_signal(signal.SIGTERM)  # Unix signal 15, what `kill` and Kubernetes send

        # readiness fails at once: 503 while draining, then the listener closes
        readiness: list[int | str] = []
        while time.monotonic() - started < grace:
            readiness.append(_readyz(d))
            if readiness[-1] == "closed":
                break
        assert readiness and readiness[0] in (503, "closed"), readiness
        assert set(readiness) <= {503, "closed"}, readiness

        # A new client is refused: by the hub ("draining") while the listener is still
        # open, by the closed listener after that. Which one depends on how fast the
        # drain went; neither ever accepts the session.
        late = LiveClient(d, d.token("late"))
        with pytest.raises(socketio.exceptions.ConnectionError):
            await late.connect()
        await late.close()
        for error in late.connect_errors:  # a dict from the hub, a string from the transport
            assert not isinstance(error, dict) or error["data"]["code"] == "draining", error

        for c in clients:
            await c.wait_disconnected(timeout=grace)
        code = await asyncio.to_thread(wait_exit, d, grace + 2)
        assert code == 0, d.log()
        assert time.monotonic() - started < grace + 2
    finally:
        for c in clients:
            await c.close()
    assert "draining" in d.log()


def _readyz(d: DaemonProcess) -> int | str:
    try:
        return d.http("GET", "/readyz", auth=False)[0]
    except OSError:
        return "closed"


@pytest.mark.parametrize("second", [signal.SIGTERM, signal.SIGINT])
def test_second_signal_forces_exit(make_daemon: Any, second: signal.Signals) -> None:
    d: DaemonProcess = make_daemon(RTCTL_DRAIN_GRACE="30")
    assert d.proc is not None
    with socket.create_connection(("127.0.0.1", d.port)) as hold:
        hold.sendall(
            b"POST /api/v1/emit HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n"
            + f"Authorization: Bearer {ADMIN}\r\n\r\n{{".encode()
        )
        d.proc.send_signal(signal.SIGTERM)
        # the unfinished request holds the graceful shutdown for up to the 30 s grace
        assert wait_exit(d, 1.5) is None, "exited before the forcing signal"
        started = time.monotonic()
        d.proc.send_signal(second)
        code = wait_exit(d, 5)
    assert code is not None, "a second signal did not force the exit"
    assert time.monotonic() - started < 5


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    yield sock, path
    sock.close()


def receive(sock: socket.socket, timeout: float) -> str:
    sock.settimeout(timeout)
    return sock.recv(4096).decode()


def test_sd_notify_ready_and_stopping(
    make_daemon: Any, notify_socket: tuple[socket.socket, str]
) -> None:
    sock, path = notify_socket
    d: DaemonProcess = make_daemon(NOTIFY_SOCKET=path)  # returns once /readyz answers 200
    assert receive(sock, 5) == "READY=1"
    assert d.proc is not None
    d.proc.send_signal(signal.SIGTERM)
    assert receive(sock, 5) == "STOPPING=1"
    assert wait_exit(d, 10) == 0


def test_first_run_generates_secrets(tmp_path: Path) -> None:
    port = free_port()
    data_dir = tmp_path / "data"
    env = daemon_env(port, data_dir)
    del env["RTCTL_JWT_SECRET"], env["RTCTL_ADMIN_TOKEN"]
    tmp_path.joinpath("logs").mkdir()
    d = DaemonProcess(port, tmp_path / "logs", env)
    try:
        d.start()
        secret_file, admin_file = data_dir / "jwt_secret", data_dir / "admin_token"
        for f in (secret_file, admin_file):
            assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
            assert len(f.read_text().strip()) >= 32
        assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
        log = d.log()
        assert "rtctl token issue" in log
        assert "jwt_secret" in log and "admin_token" in log

        # the generated secrets are the ones in force
        admin = admin_file.read_text().strip()
        assert d.http("GET", "/api/v1/sessions", token=admin) == (200, [])
        assert d.http("GET", "/api/v1/sessions")[0] == 401  # the test suite's token is not it
        token = issue_token(secret_file.read_text().strip(), "alice")

        async def connects() -> None:
            c = await LiveClient(d, token).connect()
            await c.close()

        asyncio.run(connects())
        assert d.stop() == 0

        # a second run keeps them and says nothing about generating
        secret_before = secret_file.read_text()
        d.log_path.write_text("")
        d.start()
        assert secret_file.read_text() == secret_before
        assert "generated" not in d.log()
        assert d.http("GET", "/api/v1/sessions", token=admin)[0] == 200
    finally:
        d.stop(signal.SIGKILL)


def test_ready_waits_for_the_state_backend(
    notify_socket: tuple[socket.socket, str], redis_server: Any, tmp_path: Path
) -> None:
    """A daemon started while Redis does not answer says READY=1 only once it does."""
    sock, path = notify_socket
    assert redis_server.proc is not None
    redis_server.proc.send_signal(signal.SIGSTOP)
    port = free_port()
    env = daemon_env(port, tmp_path, NOTIFY_SOCKET=path, RTCTL_REDIS_URL=redis_server.url)
    d = DaemonProcess(port, tmp_path, env)
    log = d.log_path.open("ab")
    d.proc = subprocess.Popen([sys.executable, "-m", "rtctl.server"], env=env, stdout=log,
                              stderr=log, cwd=ROOT)  # fmt: skip
    try:
        with pytest.raises(TimeoutError):
            receive(sock, 3.0)  # listening, but the backend does not answer: not ready
        redis_server.proc.send_signal(signal.SIGCONT)
        assert receive(sock, 10) == "READY=1"
    finally:
        redis_server.proc.send_signal(signal.SIGCONT)
        d.stop()
