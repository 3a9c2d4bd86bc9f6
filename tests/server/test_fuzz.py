"""Hostile input (SPEC §8), property-based: one daemon for the module, hypothesis throws
arbitrary payloads at every client event and arbitrary requests at every admin route.

After every example the daemon must be alive and answer ``/healthz`` within a second
(its event loop is not blocked), the request must have had an answer (an ack, an HTTP
response other than 500, or, for a frame that is not Socket.IO at all, the connection
closed), and a refused request must leave the sessions and rooms exactly as they were.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import re
import signal
import threading
import time
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar
from urllib.parse import quote

import jwt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

from tests.conftest import ADMIN, SECRET, DaemonProcess, daemon_env, free_port
from tests.server.live_client import LiveClient
from tests.server.test_admin_api import PROTECTED, PUBLIC

T = TypeVar("T")
FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
CLIENT_EVENTS = [
    "user-join",
    "heartbeat",
    "channel:join",
    "channel:leave",
    "join-channels",
    "events:channel",
    "usage",
    "ydoc:document:join",
    "ydoc:document:state",
    "ydoc:document:update",
    "ydoc:sync",
    "ydoc:awareness:update",
    "ydoc:document:leave",
]
# names no handler serves, including those python-socketio reserves for its own
OTHER_EVENTS = ["connect", "disconnect", "*", "connect_error", "error", "message", "ydoc:nope"]
ACK_TIMEOUT = 5.0


class LoopThread:
    """An asyncio loop on a thread of its own, so clients stay alive between examples."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 10.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


class World:
    """The fuzz daemon, a client that sends the payloads, and one that watches."""

    def __init__(
        self,
        daemon: DaemonProcess,
        loop: LoopThread,
        fuzzer: LiveClient,
        bystander: LiveClient,
        tokens: list[str],
    ) -> None:
        self.daemon, self.loop, self.fuzzer, self.bystander = daemon, loop, fuzzer, bystander
        self.tokens = tokens

    def __repr__(self) -> str:  # hypothesis prints the failing example with its fixtures
        return f"World({self.daemon.url})"

    def snapshot(self) -> tuple[Any, Any]:
        sessions = self.daemon.http("GET", "/api/v1/sessions")
        rooms = self.daemon.http("GET", "/api/v1/rooms")
        assert sessions[0] == 200 and rooms[0] == 200
        return sessions[1], rooms[1]

    def assert_healthy(self) -> None:
        d = self.daemon
        assert d.proc is not None and d.proc.poll() is None, f"daemon died:\n{d.log()[-3000:]}"
        started = time.monotonic()
        assert d.http("GET", "/healthz", auth=False)[0] == 200
        assert time.monotonic() - started < 1.0, "the event loop is blocked"

    def assert_clean_log(self) -> None:
        """No exception escaped rtctl's code (engine.io's own drop of a bad frame may log)."""
        log = self.daemon.log()
        assert "Task exception was never retrieved" not in log, log[-5000:]
        assert not re.search(r"ERROR rtctl|File \"[^\"]*/rtctl/", log), log[-5000:]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    data_dir = tmp_path_factory.mktemp("fuzz")
    port = free_port()
    env = daemon_env(
        port,
        data_dir,
        RTCTL_RATE_LIMIT="0",
        RTCTL_CONNECT_RATE="0",
        RTCTL_MAX_SESSIONS_PER_USER="0",
        RTCTL_LOG_LEVEL="info",
    )
    d = DaemonProcess(port, data_dir, env).start()
    loop = LoopThread()
    # one document, already joined: fuzzed document events reach the update paths
    grants = {"name": "Fuzzer", "channels": ["fuzz-room", "g-*"], "docs": ["fz1"]}

    async def setup() -> tuple[LiveClient, LiveClient]:
        fuzzer = await LiveClient(d, d.token("fuzz-a", **grants)).connect()
        bystander = await LiveClient(d, d.token("fuzz-b", channels=["fuzz-room"])).connect()
        for c in (fuzzer, bystander):
            assert (await c.call("channel:join", {"channel_id": "fuzz-room"}))["ok"] is True
        assert (await fuzzer.call("ydoc:document:join", {"document_id": "fz1"}))["ok"] is True
        return fuzzer, bystander

    fuzzer, bystander = loop.run(setup())
    tokens = [
        d.token("fuzz-a", **grants),  # valid: user-join and join-channels accept it
        d.token("mallory"),  # valid, another user: forbidden
        d.token("fuzz-a", now=time.time() - 7200),  # expired
        jwt.encode({"sub": "fuzz-a"}, "another-secret-of-32-characters!!"),  # wrong key
        jwt.encode({"sub": "fuzz-a"}, None, algorithm="none"),
        "not.a.jwt",
    ]
    w = World(d, loop, fuzzer, bystander, tokens)
    yield w

    async def teardown() -> None:
        for c in (fuzzer, bystander):
            await c.close()

    loop.run(teardown())
    loop.close()
    d.stop(signal.SIGKILL)


# strategies -------------------------------------------------------------------------------

WORLD_TOKENS: list[str] = []  # filled by the tests before drawing


weird_text = st.text(
    st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)  # lone surrogates
    | st.characters(categories=["Cc", "Cf", "Zl", "Zp", "Mn", "So"])
    | st.sampled_from(["\x00", "\u202e", "\ufeff", "😀", "\U0001d54f", "\U0010ffff"]),
    max_size=20,
)
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    # NaN and Infinity are not JSON: a client sending them is closed as malformed
    # (tests/server/test_raw_frames.py), so they are no payload a session survives.
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
    | weird_text
    | st.binary(max_size=64)
)
json_ish = st.recursive(
    scalars,
    lambda kids: (
        st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4)
    ),
    max_leaves=16,
)
# one big string per payload at most, under the 1 MB bound even JSON-escaped (6 bytes a char)
huge_text = st.builds(lambda n, ch: ch * n, st.integers(1_000, 60_000), st.sampled_from("aé😀\x01"))
ids = (
    st.sampled_from(["fuzz-room", "g-1", "general", "", " ", "a" * 257, "x\ny"])
    | st.text(max_size=12)
    | weird_text
    | st.integers()
    | json_ish
)
tokens = st.integers(0, 5).map(lambda i: WORLD_TOKENS[i]) | json_ish
shaped = st.fixed_dictionaries(
    {},
    optional={
        "channel_id": ids,
        "message_id": ids,
        "data": st.fixed_dictionaries({}, optional={"type": ids, "data": json_ish}) | json_ish,
        "model": ids | huge_text,  # the one big string a payload may hold
        "action": json_ish,
        "auth": st.fixed_dictionaries({}, optional={"token": tokens}) | json_ish,
        "token": tokens,
        "user": json_ish,
        "user_id": ids,
    },
)
payloads = json_ish | shaped | huge_text
# a call with no argument, one, or several (tuples become separate arguments)
arguments = st.one_of(
    st.just(None), payloads.map(lambda p: (p,)), st.tuples(payloads, json_ish, json_ish)
)


# Socket.IO events -------------------------------------------------------------------------


def refused(ack: Any) -> bool:
    return isinstance(ack, dict) and ack.get("ok") is False


@pytest.mark.parametrize("event", CLIENT_EVENTS + OTHER_EVENTS)
def test_any_payload_to_any_event(world: World, event: str) -> None:
    WORLD_TOKENS[:] = world.tokens

    @FUZZ
    @given(args=arguments)
    def send(args: Any) -> None:
        before = world.snapshot()
        ack = world.loop.run(world.fuzzer.call(event, args, timeout=ACK_TIMEOUT), ACK_TIMEOUT + 1)
        assert isinstance(ack, dict), ack  # answered, whatever came in
        if refused(ack) and "error" in ack:
            assert ack["error"]["code"] != "internal", ack
            assert set(ack["error"]) == {"code", "message"}
        assert world.fuzzer.sio.connected
        world.assert_healthy()
        if refused(ack):
            assert world.snapshot() == before, (event, args, ack)

    send()
    world.assert_clean_log()
    assert world.bystander.sio.connected


@FUZZ
@given(name=st.text(max_size=200) | weird_text | st.sampled_from(OTHER_EVENTS), args=arguments)
def test_any_event_name(world: World, name: str, args: Any) -> None:
    if name in CLIENT_EVENTS:
        return
    before = world.snapshot()
    ack = world.loop.run(world.fuzzer.call(name, args, timeout=ACK_TIMEOUT), ACK_TIMEOUT + 1)
    assert refused(ack) and ack["error"]["code"] == "unknown_event", (name, ack)
    world.assert_healthy()
    assert world.snapshot() == before
    assert world.fuzzer.sio.connected


# raw Socket.IO frames: what no well-behaved client library would send -------------------------


async def open_raw(d: DaemonProcess) -> tuple[ClientConnection, str]:
    ws = await ws_connect(
        f"ws://127.0.0.1:{d.port}/socket.io/?EIO=4&transport=websocket", max_size=None
    )
    assert (await ws.recv()).startswith("0")  # Engine.IO open
    await ws.send("40" + json.dumps({"token": d.token("fuzz-raw")}))
    opened = await ws.recv()
    assert isinstance(opened, str) and opened.startswith("40{")
    return ws, json.loads(opened[2:])["sid"]


async def answered_or_closed(ws: ClientConnection, d: DaemonProcess, sid: str) -> str:
    """Send heartbeats with ack ids 77-79 and see what became of the session.

    ``answered``: an ack came back. ``closed``: the server dropped the connection.
    ``left``: the frame was the client's own Socket.IO disconnect, so the session is
    gone and the heartbeats rightly go unanswered. Three heartbeats, because a binary
    packet announcing attachments takes the next frames as those attachments.
    """
    deadline = time.monotonic() + ACK_TIMEOUT
    try:
        for ack_id in (77, 78, 79):
            await ws.send(f'42{ack_id}["heartbeat"]')
        while time.monotonic() < deadline:
            try:
                message = await asyncio.wait_for(ws.recv(), 0.3)
            except TimeoutError:
                status, sessions = await asyncio.to_thread(d.http, "GET", "/api/v1/sessions")
                if status == 200 and sid not in {s["sid"] for s in sessions}:
                    return "left"
                continue
            if message == "1":  # Engine.IO close: the server dropped the malformed client
                return "closed"
            if isinstance(message, str) and re.match(r"^437[789]\[", message):
                return "answered"
            if message == "2":  # ping
                await ws.send("3")
    except ConnectionClosed:
        return "closed"
    return "silent"


def json_text(value: Any) -> str:
    return json.dumps(value, default=lambda b: list(b))  # bytes as arrays of byte values


frames = st.one_of(
    # a Socket.IO packet: type, optional attachments, namespace, ack id, then anything
    st.builds(
        lambda kind, attach, nsp, ack, body: f"4{kind}{attach}{nsp}{ack}{body}",
        st.sampled_from("0123456X"),
        st.sampled_from(["", "1-", "2-", "-", "999-"]),
        st.sampled_from(["", "/", "/other,", "/,", ","]),
        st.sampled_from(["", "0", "1", "-1", "99999999999999999999"]),
        json_ish.map(json_text)
        | st.text(max_size=40)
        | st.builds(lambda n: "[" * n + "]" * n, st.integers(1, 5000)),
    ),
    # a well-formed event with an arbitrary name and arguments
    st.builds(lambda name, arg: "42" + json_text([name, arg]), json_ish, json_ish),
    # binary frames and Engine.IO packets of every type
    st.binary(max_size=64),
    st.builds(lambda t, s: f"{t}{s}", st.sampled_from("0123456789"), st.text(max_size=20)),
)


@FUZZ
@given(frame=frames)
def test_any_frame(world: World, frame: str | bytes) -> None:
    before = world.snapshot()

    async def exchange() -> str:
        ws, sid = await open_raw(world.daemon)
        try:
            await ws.send(frame)
            return await answered_or_closed(ws, world.daemon, sid)
        finally:
            await ws.close()

    outcome = world.loop.run(exchange(), 3 * ACK_TIMEOUT)
    assert outcome in ("answered", "closed", "left")
    world.assert_healthy()

    # the raw session is gone once its socket closed; nothing else changed
    deadline = time.monotonic() + 5
    while world.snapshot() != before and time.monotonic() < deadline:
        time.sleep(0.02)
    assert world.snapshot() == before, frame


def test_raw_frames_left_a_clean_log(world: World) -> None:
    world.assert_clean_log()


# admin HTTP API -------------------------------------------------------------------------------

# every route the admin API serves, as pinned by test_admin_api (which checks the
# list against the daemon's own OpenAPI document)
ROUTES = sorted(PUBLIC | PROTECTED)


def request(
    d: DaemonProcess, method: str, target: str, body: bytes | None, headers: dict[str, str]
) -> tuple[int, bytes, str]:
    conn = http.client.HTTPConnection("127.0.0.1", d.port, timeout=10)
    try:
        conn.putrequest(method, target, skip_accept_encoding=True)
        for k, v in headers.items():
            conn.putheader(k, v)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        resp = conn.getresponse()
        content_type = resp.getheader("Content-Type", "")
        if content_type.startswith("application/x-ndjson"):  # a tail: it never ends by itself
            return resp.status, resp.readline(), content_type
        return resp.status, resp.read(), content_type
    finally:
        conn.close()


def pct(text: str, safe: str = "") -> str:
    """Percent-encode as UTF-8, lone surrogates included (as their would-be bytes)."""
    return quote(text.encode("utf-8", "surrogatepass"), safe=safe)


segment = (st.text(max_size=30) | weird_text).map(pct)
query_strings = st.one_of(
    st.just(""),
    st.dictionaries(
        st.sampled_from(["user", "room", "x", ""]) | st.text(max_size=5),
        st.text(max_size=30) | weird_text,
        max_size=3,
    ).map(lambda q: "&".join(f"{pct(k)}={pct(v)}" for k, v in q.items())),
    st.text(max_size=40).map(lambda s: pct(s, safe="=&%")),
)
body_objects = st.fixed_dictionaries(
    {},
    optional={
        "event": ids,
        "data": json_ish,
        "user": ids,
        "room": ids,
        "sid": ids,
        "sids": st.lists(ids, max_size=5) | json_ish,
        "timeout": st.floats(allow_nan=False) | st.integers() | json_ish,
        "jti": ids,
    },
)


def dump(value: Any) -> bytes:
    return json.dumps(value, default=lambda b: b.hex()).encode("utf-8", "surrogatepass")


small_bodies = st.one_of(
    st.none(),
    body_objects.map(dump),
    json_ish.map(dump),
    st.binary(max_size=200),
    st.sampled_from([b"", b"{", b"[" * 50_000, b'{"event": NaN}', b"\xff\xfe"]),
)
bodies = small_bodies | st.just(b"x" * 1_100_000)  # over the 1 MB bound: 413


def check_response(world: World, status: int, payload: bytes, content_type: str) -> None:
    assert status != 500 and 200 <= status < 600, (status, payload[:300])
    if status >= 400:
        body = json.loads(payload)
        assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    elif content_type.startswith("application/json"):
        json.loads(payload)
    world.assert_healthy()


@pytest.mark.parametrize(("method", "template"), ROUTES)
def test_any_request_to_any_route(world: World, method: str, template: str) -> None:
    @FUZZ
    @given(room=segment, query=query_strings, body=bodies, auth=st.sampled_from([0, 1, 1, 1, 2]))
    def send(room: str, query: str, body: bytes | None, auth: int) -> None:
        if "{room}" in template and not room:
            room = "x"
        # kicking or revoking the fuzz clients would end the test's own sessions
        if body and re.search(rb"fuzz-|" + world.fuzzer.sid.encode(), body):
            return
        path = template.replace("{room}", room) + (f"?{query}" if query else "")
        headers = {"Content-Type": "application/json"}
        if auth:
            headers["Authorization"] = f"Bearer {ADMIN if auth == 1 else SECRET}"
        before = world.snapshot()
        status, payload, content_type = request(world.daemon, method, path, body, headers)
        check_response(world, status, payload, content_type)
        if status >= 400:
            assert world.snapshot() == before, (path, body, status)
        if auth != 1 and template.startswith("/api/v1/") and "openapi" not in template:
            assert status in (401, 413), (path, status)  # the token is checked on every route

    send()
    world.assert_clean_log()
    assert world.fuzzer.sio.connected and world.bystander.sio.connected


@FUZZ
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "BREW"]),
    prefix=st.sampled_from(["", "/api", "/api/v1", "/api/v1/rooms", "/socket.io", "/metrics"]),
    segments=st.lists(segment, max_size=4),
    query=query_strings,
    body=small_bodies,  # a server refusing the request line resets a connection still sending
)
def test_any_path(
    world: World, method: str, prefix: str, segments: list[str], query: str, body: bytes | None
) -> None:
    path = prefix + "/" + "/".join(segments) + (f"?{query}" if query else "")
    before = world.snapshot()
    headers = {"Authorization": f"Bearer {ADMIN}"}
    status, payload, content_type = request(world.daemon, method, path, body, headers)
    assert status != 500 and 200 <= status < 600, (method, path, status, payload[:200])
    world.assert_healthy()
    if status >= 400:
        assert world.snapshot() == before, (method, path)
    if status >= 400 and content_type.startswith("application/json") and method != "HEAD":
        assert set(json.loads(payload)) == {"error"}


def test_fuzz_left_a_clean_log_and_the_clients_connected(world: World) -> None:
    world.assert_clean_log()
    assert world.fuzzer.sio.connected and world.bystander.sio.connected
    _, sessions = world.daemon.http("GET", "/api/v1/sessions")
    assert {s["user_id"] for s in sessions} == {"fuzz-a", "fuzz-b"}
