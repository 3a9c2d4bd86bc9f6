"""Shared fixtures: real daemon processes on free ports, tokens, admin API access."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from rtctl.auth import issue_token
from tests.redis_server import (
    RedisClusterSetup,
    RedisSentinelSetup,
    RedisServer,
    make_tls_files,
    redis_binary,
    short_socket_path,
)

ROOT = Path(__file__).resolve().parent.parent
SECRET = "test-secret-0123456789abcdef-0123456789"
ADMIN = "test-admin-token-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class DaemonProcess:
    """One ``rtctl`` daemon running as a real process."""

    port: int
    data_dir: Path
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log_path = self.data_dir / "daemon.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> DaemonProcess:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "rtctl.server"],
            env=self.env,
            stdout=log,
            stderr=log,
            cwd=ROOT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"daemon exited {self.proc.returncode}:\n{self.log()}")
            try:
                if self.http("GET", "/readyz", auth=False)[0] == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"daemon not ready within {timeout}s:\n{self.log()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def token(self, user: str = "alice", **claims: Any) -> str:
        return issue_token(self.env.get("RTCTL_JWT_SECRET", SECRET), user, **claims)

    def http(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        auth: bool = True,
        raw: bytes | None = None,
        token: str | None = None,
    ) -> tuple[int, Any]:
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        req = urllib.request.Request(self.url + path, data=data, method=method)
        if auth:
            req.add_header("Authorization", f"Bearer {token or ADMIN}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                status, payload = resp.status, resp.read()
        except urllib.error.HTTPError as err:
            status, payload = err.code, err.read()
        try:
            return status, json.loads(payload)
        except ValueError:
            return status, payload.decode(errors="replace")


def daemon_env(port: int, data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RTCTL_")}
    env.update(
        RTCTL_HOST="127.0.0.1", RTCTL_PORT=str(port), RTCTL_DATA_DIR=str(data_dir),
        RTCTL_JWT_SECRET=SECRET, RTCTL_ADMIN_TOKEN=ADMIN, RTCTL_LOG_LEVEL="info",
        RTCTL_DRAIN_GRACE="5",
    )  # fmt: skip
    env.update(extra)
    return env


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    """Async tests (``pytest.mark.anyio``) run on asyncio, as the daemon does."""
    return "asyncio"


@pytest.fixture
def make_daemon(tmp_path: Path) -> Iterator[Any]:
    """Factory: ``make_daemon(**env)`` starts a daemon; all are stopped at teardown."""
    started: list[DaemonProcess] = []

    def make(**extra: str) -> DaemonProcess:
        port = free_port()
        data_dir = tmp_path / f"node-{len(started)}"
        data_dir.mkdir()
        d = DaemonProcess(port, data_dir, daemon_env(port, data_dir, **extra))
        started.append(d)
        return d.start()

    yield make
    for d in started:
        d.stop(signal.SIGKILL if d.proc and d.proc.poll() is None else signal.SIGTERM)


@pytest.fixture
def daemon(make_daemon: Any) -> DaemonProcess:
    """A daemon with the default limits relaxed enough for tests that send bursts."""
    d: DaemonProcess = make_daemon()
    return d


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A private redis-server on a free port (never the machine's shared one)."""
    if redis_binary() is None:
        pytest.fail("redis-server is not installed; scripts/test installs it")
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.kill()


def _need_redis() -> None:
    if redis_binary() is None:
        pytest.fail("redis-server is not installed; scripts/test installs it")


@pytest.fixture
def redis_sentinel(tmp_path: Path) -> Iterator[RedisSentinelSetup]:
    """A fresh master + replica + three sentinels (service ``rtctl-test``); its ``url`` is
    ``redis+sentinel://…/rtctl-test/0``. Free to ``failover()`` or ``kill_master()``."""
    _need_redis()
    setup = RedisSentinelSetup(tmp_path / "sentinel").start()
    yield setup
    setup.stop()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterSetup]:
    """One three-master Redis Cluster for the whole session (creating one takes ~2 s):
    tests share it, so each must use its own key prefix. ``url`` is a seed node."""
    _need_redis()
    setup = RedisClusterSetup(tmp_path_factory.mktemp("redis-cluster")).start()
    yield setup
    setup.stop()


@pytest.fixture
def redis_unix_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A private redis-server also listening on a unix socket (``unix_url``)."""
    _need_redis()
    workdir = tmp_path / "redis-unix"
    server = RedisServer(workdir, unixsocket=short_socket_path(workdir)).start()
    yield server
    server.kill()


@pytest.fixture
def redis_tls_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A private redis-server speaking only TLS, with a self-signed certificate for
    127.0.0.1 (``server.tls.ca`` verifies it); ``url`` is ``rediss://…``."""
    _need_redis()
    workdir = tmp_path / "redis-tls"
    server = RedisServer(workdir, tls=make_tls_files(workdir / "tls")).start()
    yield server
    server.kill()
