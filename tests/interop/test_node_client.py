"""Interop: Node's socket.io-client against a real daemon.

The Node script (``node_client.mjs``) prints one JSON object per line for everything
it sees; this test reads them with a deadline and drives the server side through
the admin API, so both ends are real: no Python Socket.IO code on the client side.
"""

from __future__ import annotations

import json
import queue
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, DaemonProcess

SCRIPT = Path(__file__).with_name("node_client.mjs")
NODE = shutil.which("node")

pytestmark = pytest.mark.skipif(NODE is None, reason="node is not installed")


class NodeClient:
    """The Node process and the JSON lines it printed, read on a thread."""

    def __init__(self, url: str, token: str, channel: str) -> None:
        if not (ROOT / "node_modules" / "socket.io-client").is_dir():
            pytest.fail("node_modules lacks socket.io-client: run `npm ci` at the repository root")
        assert NODE is not None
        self.proc = subprocess.Popen(
            [NODE, str(SCRIPT), url, token, channel],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.seen: list[dict[str, Any]] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                self.lines.put(json.loads(line))
            except ValueError:
                self.lines.put({"event": "unparsed", "line": line})
        self.lines.put(None)  # end of output

    def expect(self, event: str, timeout: float = 10.0) -> dict[str, Any]:
        """The next line reporting ``event``; fails with everything seen on timeout or exit."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                self.lines.put(None)  # keep reporting the end to later calls
                break
            self.seen.append(line)
            if line.get("event") == event:
                return line
        stderr = (
            self.proc.stderr.read() if self.proc.poll() is not None and self.proc.stderr else ""
        )
        pytest.fail(f"node never reported {event!r}; saw {self.seen}\n{stderr}")

    def finish(self, timeout: float = 10.0) -> int:
        if self.proc.stdin and not self.proc.stdin.closed:
            self.proc.stdin.close()  # the script's signal to disconnect and exit
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


@pytest.fixture
def node_client() -> Iterator[Any]:
    started: list[NodeClient] = []

    def start(d: DaemonProcess, token: str, channel: str = "general") -> NodeClient:
        client = NodeClient(d.url, token, channel)
        started.append(client)
        return client

    yield start
    for client in started:
        client.finish()


def admin(d: DaemonProcess, method: str, path: str, body: Any = None) -> Any:
    status, data = d.http(method, path, body)
    assert status == 200, (status, data)
    return data


def test_node_client_end_to_end(daemon: DaemonProcess, node_client: Any) -> None:
    token = daemon.token("alice", name="Alice", channels=["general"])
    node = node_client(daemon, token)

    sid = node.expect("connected")["sid"]
    sessions = admin(daemon, "GET", "/api/v1/sessions")
    assert [(s["sid"], s["user_id"], s["user_name"]) for s in sessions] == [(sid, "alice", "Alice")]

    assert node.expect("channel:join:ack")["ack"] == {"ok": True, "channel_id": "general"}

    relayed = node.expect("events:channel")["data"]
    assert relayed == {
        "channel_id": "general",
        "message_id": "m1",
        "data": {"type": "message", "data": {"content": "hello from node"}},
        "user": {"id": "alice", "name": "Alice"},  # from the token, not the payload
    }

    event = {"chat_id": "c1", "message_id": "m2", "data": {"type": "status", "data": {"n": 1}}}
    sent = admin(
        daemon, "POST", "/api/v1/emit", {"event": "events", "data": event, "user": "alice"}
    )
    assert sent["sessions"] == 1
    received = node.expect("events")
    assert received == {"event": "events", "data": event, "acked": False}

    question = {"type": "execute", "data": {"code": "1 + 1"}}
    answer = admin(
        daemon,
        "POST",
        "/api/v1/call",
        {"sid": sid, "event": "events", "data": question, "timeout": 5},
    )
    assert answer == {"sid": sid, "reply": {"echo": question, "from": "node"}}
    assert node.expect("events")["acked"] is True

    assert node.finish() == 0
    assert not any(line["event"] == "error" for line in node.seen), node.seen

    deadline = time.monotonic() + 5
    while admin(daemon, "GET", "/api/v1/sessions") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert admin(daemon, "GET", "/api/v1/sessions") == []


def test_node_client_with_a_bad_token_gets_connect_error(
    daemon: DaemonProcess, node_client: Any
) -> None:
    node = node_client(daemon, "not-a-token")
    refusal = node.expect("connect_error")
    assert refusal["data"]["code"] == "invalid_token"
    assert refusal["message"]
    assert node.finish() == 0
    assert not any(line["event"] == "connected" for line in node.seen)
    assert admin(daemon, "GET", "/api/v1/sessions") == []


def test_node_client_refused_a_channel_it_is_not_granted(
    daemon: DaemonProcess, node_client: Any
) -> None:
    node = node_client(daemon, daemon.token("bob", channels=["other"]), "general")
    node.expect("connected")
    ack = node.expect("channel:join:ack")["ack"]
    assert ack["ok"] is False and ack["error"]["code"] == "forbidden"
    # not a member, so its message to the channel is refused too and never relayed
    node.expect("error")  # lines come in order: this one answers events:channel
    node.finish()
    errors = [
        (line["data"]["event"], line["data"]["code"])
        for line in node.seen
        if line["event"] == "error"
    ]
    assert errors == [("channel:join", "forbidden"), ("events:channel", "forbidden")]
    assert not any(line["event"] == "events:channel" for line in node.seen)
