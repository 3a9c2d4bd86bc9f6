"""The harness of tests/owui: a hub (one embedded daemon, or two on one redis-server)
with a real HTTP server as Open WebUI's backend, and tabs of Open WebUI
(``owui_client.mjs``) whose every report a test can wait for."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import rtctl
from tests.app_server import AppServer, owui_token
from tests.cli.conftest import Run, cli_env, run_cli
from tests.conftest import ADMIN, DaemonProcess, free_port

OWUI = Path(__file__).resolve().parent
CLIENT = OWUI / "owui_client.mjs"
NODE = shutil.which("node")
PATH = "/ws/socket.io"  # Open WebUI's Socket.IO path (src/routes/+layout.svelte)
WAIT = 20.0  # seconds any one expected observation may take
WEBHOOK_SECRET = "the webhook secret Open WebUI's backend checks"

Line = dict[str, Any]


# -- the hub ------------------------------------------------------------------------------


@dataclass
class Hub:
    """One embedded daemon, or two daemons on one redis-server; ``node(i)`` picks one.
    ``app`` plays Open WebUI's backend: the auth hook and the webhook receiver."""

    mode: str
    nodes: list[DaemonProcess]
    env: dict[str, str]  # the CLI's
    app: AppServer
    redis_url: str = ""

    def node(self, i: int) -> DaemonProcess:
        return self.nodes[i % len(self.nodes)]

    def cli(self, *args: str, stdin: str | None = None) -> Run:
        return run_cli(list(args), self.env, stdin)

    def api(self, method: str, path: str, body: Any = None, node: int = 0) -> Any:
        status, data = self.node(node).http(method, path, body)
        assert status == 200, (status, data)
        return data

    def token(self, user: str, name: str = "", **grants: Any) -> str:
        """A token as Open WebUI mints it (``{id, exp, jti}``, its own secret: the hub
        cannot verify it), and what the app's auth hook answers for it."""
        token = owui_token(user)
        self.app.grant(token, user, name or user.title(), **grants)
        return token

    def client(self) -> rtctl.Client:
        """The backend's Python client: straight on Redis, or a daemon's admin API."""
        if self.redis_url:
            return rtctl.Client(redis_url=self.redis_url)
        return rtctl.Client(url=self.nodes[0].url, admin_token=ADMIN)

    def sessions(self, node: int = 0, **query: str) -> list[Line]:
        path = "/api/v1/sessions" + ("?" + urllib.parse.urlencode(query) if query else "")
        sessions: list[Line] = self.api("GET", path, node=node)
        return sessions

    def room_members(self, room: str, node: int = 0) -> list[str]:
        members = self.api("GET", f"/api/v1/rooms/{urllib.parse.quote(room, safe='')}/members",
                           node=node)  # fmt: skip
        return sorted(m["sid"] for m in members)


@pytest.fixture
def app() -> Iterator[AppServer]:
    server = AppServer().start()
    yield server
    server.stop()


@pytest.fixture(params=["embedded", "redis"])
def hub(request: pytest.FixtureRequest, make_daemon: Any, tmp_path: Path, app: AppServer) -> Hub:
    if not (OWUI / "node_modules" / "socket.io-client").is_dir():
        pytest.fail("tests/owui/node_modules is missing: run scripts/test (npm ci in tests/owui)")
    linked = {"RTCTL_PATH": PATH, "RTCTL_AUTH_HOOK_URL": f"{app.url}/hook",
              "RTCTL_WEBHOOK_URL": f"{app.url}/webhook", "RTCTL_WEBHOOK_SECRET": WEBHOOK_SECRET,
              "RTCTL_WEBHOOK_DEBOUNCE": "0.3"}  # fmt: skip
    if request.param == "embedded":
        d = make_daemon(**linked)
        return Hub("embedded", [d, d], cli_env(d.url, d.data_dir), app)
    redis = request.getfixturevalue("redis_server")
    common = {**linked, "RTCTL_REDIS_URL": redis.url}
    nodes = [make_daemon(RTCTL_NODE_ID="n1", **common), make_daemon(RTCTL_NODE_ID="n2", **common)]
    env = cli_env(f"http://127.0.0.1:{free_port()}", tmp_path, RTCTL_REDIS_URL=redis.url,
                  RTCTL_ADMIN_TOKEN="")  # fmt: skip
    return Hub("redis", nodes, env, app, redis.url)


# -- a tab of Open WebUI ------------------------------------------------------------------


class Tab:
    """The Node process and every line it printed; ``expect`` reads them in order."""

    def __init__(self, url: str, token: str, user: str, name: str, page: str, *extra: str):
        assert NODE is not None, "node is not installed"
        self.user = user
        self.token = token
        self.proc = subprocess.Popen(
            [NODE, str(CLIENT), "--url", url, "--token", token, "--user-id", user,
             "--user-name", name, "--page", page, "--timeout-ms", "100000", *extra],
            cwd=OWUI, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        self.lines: list[Line] = []
        self.cursor = 0  # lines before it were read by expect
        self.stderr: list[str] = []
        self.changed = threading.Condition()
        self.ended = False
        threading.Thread(target=self._read_stdout, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            try:
                line = json.loads(raw)
            except ValueError:
                line = {"event": "unparsed", "line": raw}
            with self.changed:
                self.lines.append(line)
                self.changed.notify_all()
        with self.changed:
            self.ended = True
            self.changed.notify_all()

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            self.stderr.append(raw)
            del self.stderr[:-200]

    def send(self, **command: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()

    def expect(
        self, event: str, where: Callable[[Line], bool] | None = None, timeout: float = WAIT
    ) -> Line:
        """The next line (after the last one expected) reporting ``event`` for which
        ``where`` holds; fails with what the tab printed if none comes in time."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                while self.cursor < len(self.lines):
                    line = self.lines[self.cursor]
                    self.cursor += 1
                    if line.get("event") == event and (where is None or where(line)):
                        return line
                left = deadline - time.monotonic()
                if self.ended or left <= 0:
                    break
                self.changed.wait(left)
        self.fail(f"{self.user}'s tab never reported {event!r} as expected")

    def anywhere(
        self, event: str, where: Callable[[Line], bool] | None = None, timeout: float = WAIT
    ) -> Line:
        """The first line reporting ``event`` (for which ``where`` holds), printed before
        or after the last one expected: for events whose order is not ours to know."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                found = [x for x in self.lines
                         if x.get("event") == event and (where is None or where(x))]  # fmt: skip
                if found:
                    return found[0]
                left = deadline - time.monotonic()
                if self.ended or left <= 0:
                    break
                self.changed.wait(left)
        self.fail(f"{self.user}'s tab never reported {event!r}")

    def handled(
        self, component: str, kind: str | None = None, name: str = "events", **match: Any
    ) -> Line:
        """The next event ``component`` handled: of ``data.type`` ``kind``, whose payload
        has the items of ``match``."""

        def wanted(line: Line) -> bool:
            data = line.get("data") or {}
            return (
                line["component"] == component
                and line["name"] == name
                and (kind is None or (data.get("data") or {}).get("type") == kind)
                and all(data.get(k) == v for k, v in match.items())
            )

        return self.expect("handled", wanted)

    def state(self, check: Callable[[Line], bool], timeout: float = WAIT) -> Line:
        """The page's state once ``check`` holds for it (asked every 100 ms)."""
        deadline = time.monotonic() + timeout
        last: Line = {}
        while time.monotonic() < deadline:
            self.send(cmd="state")
            last = self.expect("state")["page"]
            if check(last):
                return last
            time.sleep(0.1)
        self.fail(f"{self.user}'s page never got there; last state: {json.dumps(last)[:3000]}")

    def seen(self, event: str, where: Callable[[Line], bool] | None = None) -> list[Line]:
        with self.changed:
            return [x for x in self.lines if x.get("event") == event and (not where or where(x))]

    def received(self, name: str) -> list[Any]:
        """Payloads of every ``name`` event the hub sent."""
        return [x["args"][0] if x["args"] else None for x in self.seen("recv")
                if x["name"] == name]  # fmt: skip

    def close(self, *allowed: Line) -> None:
        """Leave the page and exit; no exception in Open WebUI's code at any point, and no
        `error` from the hub but those ``allowed`` (each once at most)."""
        if self.proc.poll() is None:
            self.send(cmd="close")
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                self.fail(f"{self.user}'s tab did not exit")
        time.sleep(0.05)  # the reader thread takes the last lines
        assert self.proc.returncode == 0, self.dump()
        assert not self.seen("uncaught"), self.dump()
        errors, left = self.received("error"), list(allowed)
        for error in errors:
            assert error in left, f"the hub refused {error}\n{self.dump()}"
            left.remove(error)

    def fail(self, message: str) -> Any:
        pytest.fail(f"{message}\n{self.dump()}")

    def dump(self) -> str:
        with self.changed:
            lines = [json.dumps(x)[:600] for x in self.lines[-60:]]
        return "last lines:\n" + "\n".join(lines) + "\nstderr:\n" + "".join(self.stderr[-40:])

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def tabs() -> Iterator[Callable[..., Tab]]:
    opened: list[Tab] = []

    def open_tab(hub: Hub, node: int, user: str, name: str, page: str, *extra: str,
                 **grants: Any) -> Tab:  # fmt: skip
        tab = Tab(hub.node(node).url, hub.token(user, name, **grants), user, name, page,
                  *extra)  # fmt: skip
        opened.append(tab)
        return tab

    yield open_tab
    for tab in opened:
        tab.kill()


def of_type(kind: str) -> Callable[[Line], bool]:
    return lambda line: line["name"] == kind
