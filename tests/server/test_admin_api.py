"""The admin HTTP API, health probes and metrics (SPEC §1, §7, §8) of a real daemon."""

from __future__ import annotations

import asyncio
import re
import socket
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import quote

import jwt
import pytest
import socketio

from tests.conftest import ADMIN, DaemonProcess
from tests.server.live_client import LiveClient, connect, http, until

pytestmark = pytest.mark.anyio

# Every route of the admin API as (method, path template); the OpenAPI document must
# list exactly these, and every /api/v1 route but the document itself needs the token.
PUBLIC = {
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/api/v1/openapi.json"),
    ("GET", "/admin"),
    ("GET", "/admin/{name}"),  # the dashboard's page and files: they hold no data
}
PROTECTED = {
    ("GET", "/api/v1/status"),
    ("GET", "/api/v1/nodes"),
    ("GET", "/api/v1/sessions"),
    ("POST", "/api/v1/sessions/kick"),
    ("GET", "/api/v1/users/online"),
    ("GET", "/api/v1/rooms"),
    ("GET", "/api/v1/rooms/{room}/members"),
    ("GET", "/api/v1/usage"),
    ("POST", "/api/v1/emit"),
    ("POST", "/api/v1/call"),
    ("POST", "/api/v1/pool/cleanup"),
    ("POST", "/api/v1/tokens/revoke"),
    ("GET", "/api/v1/tasks"),
    ("POST", "/api/v1/tasks/stop"),
    ("GET", "/api/v1/docs"),
    ("GET", "/api/v1/docs/{id}"),
    ("POST", "/api/v1/docs/compact"),
    ("GET", "/api/v1/docs/{id}/export"),
    ("DELETE", "/api/v1/docs/{id}"),
    ("POST", "/api/v1/rooms/{room}/join"),
    ("POST", "/api/v1/rooms/{room}/leave"),
    ("POST", "/api/v1/emit/batch"),
    ("POST", "/api/v1/tasks"),
    ("GET", "/api/v1/tokens/revocations"),
    ("POST", "/api/v1/tokens/unrevoke"),
    ("GET", "/api/v1/tail"),
    ("GET", "/api/v1/tasks/{id}/so_far"),
}
SESSION_FIELDS = {"sid", "user_id", "user_name", "node", "rooms", "connected_at", "last_seen_at"}
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


def error_code(body: Any) -> str:
    assert isinstance(body, dict) and set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message"}, body
    return str(body["error"]["code"])


async def barrier(d: DaemonProcess, *clients: LiveClient) -> None:
    """Once a marker emitted now has arrived, nothing emitted earlier is still on its way."""
    marker = f"barrier-{time.monotonic_ns()}"
    for c in clients:
        assert (await http(d, "POST", "/api/v1/emit", {"event": marker, "sid": c.sid}))[0] == 200
        await c.next_event(marker)


# authentication and the route table ---------------------------------------------------------


def test_every_api_route_needs_the_admin_token(daemon: DaemonProcess) -> None:
    for method, template in sorted(PROTECTED):
        path = template.replace("{room}", "user:alice")
        body = {} if method == "POST" else None
        for kwargs in ({"auth": False}, {"token": "wrong-token"}, {"token": " "}):
            status, reply = daemon.http(method, path, body, **kwargs)  # type: ignore[arg-type]
            assert status == 401, (method, path, kwargs, reply)
            assert error_code(reply) == "unauthorized"
        status, _ = daemon.http(method, path, body)
        assert status != 401, (method, path)
    # the scheme must be Bearer
    req = urllib.request.Request(daemon.url + "/api/v1/sessions")
    req.add_header("Authorization", "Basic dGVzdC1hZG1pbi10b2tlbi0wMTIzNDU2Nzg5")
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=5)
    assert err.value.code == 401
    for method, path in sorted(PUBLIC):
        path = path.replace("{name}", "dashboard.js")
        assert daemon.http(method, path, auth=False)[0] == 200, path


def test_openapi_document_lists_every_route(daemon: DaemonProcess) -> None:
    status, doc = daemon.http("GET", "/api/v1/openapi.json", auth=False)
    assert status == 200
    assert re.match(r"^3\.\d+\.\d+$", doc["openapi"])
    assert doc["info"]["title"] and doc["info"]["version"]
    listed = {(m.upper(), path) for path, ops in doc["paths"].items() for m in ops}
    assert listed == PUBLIC | PROTECTED
    schemes = doc["components"]["securitySchemes"]
    for path, ops in doc["paths"].items():
        assert path.startswith("/")
        for method, op in ops.items():
            assert method in {"get", "post", "put", "patch", "delete"}
            assert op["summary"] and "200" in op["responses"]
            assert all("description" in r for r in op["responses"].values())
            protected = (method.upper(), path) in PROTECTED
            if protected:
                assert op["security"] and all(set(s) <= set(schemes) for s in op["security"])
            else:
                assert "security" not in op
            declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            assert declared == set(re.findall(r"\{(\w+)\}", path))
            for p in op.get("parameters", []):
                assert p["in"] in {"path", "query"} and p["schema"]["type"]
            if method == "post":
                schema = op["requestBody"]["content"]["application/json"]["schema"]
                assert schema["type"] == "object"
    assert doc["paths"]["/api/v1/sessions"]["get"]["parameters"][0]["in"] == "query"


def test_unknown_route_and_wrong_method(daemon: DaemonProcess) -> None:
    for path in ("/api/v1/nope", "/nope", "/api/v2/sessions", "/api/v1/rooms/x/y/members"):
        status, body = daemon.http("GET", path)
        assert status == 404 and error_code(body) == "no_route", path
    for method, path in [
        ("DELETE", "/api/v1/sessions"),
        ("GET", "/api/v1/emit"),
        ("POST", "/healthz"),
        ("PUT", "/api/v1/rooms/r/members"),
    ]:
        status, body = daemon.http(method, path, {} if method != "GET" else None)
        assert status == 405 and error_code(body) == "method_not_allowed", (method, path)


def test_health_and_readiness(daemon: DaemonProcess) -> None:
    assert daemon.http("GET", "/healthz", auth=False) == (200, {"status": "ok"})
    status, body = daemon.http("GET", "/readyz", auth=False)
    assert status == 200 and body["status"] == "ready"
    status, body = daemon.http("GET", "/api/v1/status")
    assert status == 200
    assert body["ready"] is True and body["backend"] == "embedded" and body["sessions"] == 0


# bad input --------------------------------------------------------------------------------


def test_malformed_bodies_are_400(daemon: DaemonProcess) -> None:
    raw_bodies = [
        b"{not json",
        b"\xff\xfe{}",
        b"[1, 2]",
        b"3",
        b'"just a string"',
        b"null",
        b'{"event": NaN, "user": "alice"}',  # Python's parser takes NaN; JSON does not
        b'{"event": "e", "user": "alice", "data": Infinity}',
        b"[" * 100_000 + b"]" * 100_000,  # nested deeper than Python's recursion limit
    ]
    for path in ("/api/v1/emit", "/api/v1/call", "/api/v1/sessions/kick", "/api/v1/tokens/revoke"):
        for raw in raw_bodies:
            status, body = daemon.http("POST", path, raw=raw)
            assert status == 400 and error_code(body) == "invalid_request", (path, raw[:30])
    wrong_types: list[tuple[str, Any]] = [
        ("/api/v1/emit", {"event": 5, "user": "alice"}),
        ("/api/v1/emit", {"event": "e", "user": 5}),
        ("/api/v1/emit", {"event": "e", "user": "alice", "room": "r"}),
        ("/api/v1/emit", {"event": "e"}),
        ("/api/v1/emit", {"event": "connect", "user": "alice"}),  # reserved by Socket.IO
        ("/api/v1/emit", {"event": "x" * 200, "user": "alice"}),
        ("/api/v1/sessions/kick", {"sids": "abc"}),
        ("/api/v1/sessions/kick", {"sids": [1, 2]}),
        ("/api/v1/sessions/kick", {"sids": [""]}),
        ("/api/v1/sessions/kick", {"user": ["alice"]}),
        ("/api/v1/sessions/kick", {"sids": ["a"], "user": "alice"}),
        ("/api/v1/sessions/kick", {}),
        ("/api/v1/call", {"sid": 5, "event": "e"}),
        ("/api/v1/call", {"sid": "s", "event": "e", "timeout": "1"}),
        ("/api/v1/call", {"sid": "s", "event": "e", "timeout": True}),
        ("/api/v1/call", {"sid": "s", "event": None}),
        ("/api/v1/tokens/revoke", {"jti": 5}),
        ("/api/v1/tokens/revoke", {"jti": "a", "user": "b"}),
        ("/api/v1/tokens/revoke", {}),
        ("/api/v1/tokens/revoke", {"user": ""}),
    ]
    for path, payload in wrong_types:
        status, body = daemon.http("POST", path, payload)
        assert status == 400 and error_code(body) == "invalid_request", (path, payload, body)
    assert daemon.http("GET", "/healthz", auth=False)[0] == 200


def test_body_over_max_payload_is_413(make_daemon: Any) -> None:
    d: DaemonProcess = make_daemon(RTCTL_MAX_PAYLOAD="2000")
    body = {"event": "e", "user": "nobody", "data": "x" * 1900}
    assert d.http("POST", "/api/v1/emit", body)[0] == 404  # under the bound: read, no one there
    body["data"] = "x" * 2100
    status, reply = d.http("POST", "/api/v1/emit", body)
    assert status == 413 and error_code(reply) == "too_large"
    status, reply = d.http("POST", "/api/v1/tokens/revoke", raw=b" " * 500_000)
    assert status == 413
    assert d.http("GET", "/healthz", auth=False)[0] == 200


def _raw_request(
    d: DaemonProcess, head: str, partial_body: bytes, wait: float
) -> tuple[bytes, float]:
    """Send ``head`` and the first bytes of a body that never completes; return what the
    daemon answers within ``wait`` seconds, and when it closed the connection (inf: it
    did not)."""
    with socket.create_connection(("127.0.0.1", d.port), timeout=wait) as raw:
        started = time.monotonic()
        raw.sendall(head.encode("latin-1") + partial_body)
        received = b""
        try:
            while chunk := raw.recv(65536):
                received += chunk
        except TimeoutError:
            return received, float("inf")
    return received, time.monotonic() - started


@pytest.mark.parametrize("authorization", ["", "Authorization: Bearer wrong-token\r\n"])
def test_wrong_token_is_refused_before_the_body_is_read(
    daemon: DaemonProcess, authorization: str
) -> None:
    """An unauthenticated client must not make the daemon hold a body: 401 at once, from
    the headers alone, while the declared body has barely begun."""
    head = (
        "POST /api/v1/emit HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        f"{authorization}Content-Length: 1000000\r\n\r\n"
    )
    received, _ = _raw_request(daemon, head, b'{"event": "e", ', wait=3.0)
    assert received.startswith(b"HTTP/1.1 401 "), received[:200]  # before the body ends
    assert b'"unauthorized"' in received
    # the admin token itself still waits for its body
    good = head.replace("Host: t\r\n", f"Host: t\r\nAuthorization: Bearer {ADMIN}\r\n")
    received, _ = _raw_request(daemon, good, b'{"event": "e", ', wait=1.0)
    assert received == b""
    assert daemon.http("GET", "/healthz", auth=False)[0] == 200


# sessions, users, rooms ---------------------------------------------------------------------


async def test_sessions_list_filters_by_user_and_room(daemon: DaemonProcess) -> None:
    a1 = await connect(daemon, "alice", name="Alice", channels=["general"])
    a2 = await connect(daemon, "alice", name="Alice")
    b = await connect(daemon, "bob", name="Bob")
    try:
        await a1.call("channel:join", {"channel_id": "general"})

        async def sids(query: str) -> set[str]:
            status, body = await http(daemon, "GET", "/api/v1/sessions" + query)
            assert status == 200
            for s in body:
                assert set(s) == SESSION_FIELDS
                assert ISO_UTC.match(s["connected_at"]) and ISO_UTC.match(s["last_seen_at"])
            return {s["sid"] for s in body}

        assert await sids("") == {a1.sid, a2.sid, b.sid}
        assert await sids("?user=alice") == {a1.sid, a2.sid}
        assert await sids("?user=bob") == {b.sid}
        assert await sids("?user=nobody") == set()
        assert await sids("?room=" + quote("channel:general")) == {a1.sid}
        assert await sids("?room=user%3Abob") == {b.sid}
        assert await sids("?user=bob&room=channel%3Ageneral") == set()
        assert await sids("?user=alice&room=channel%3Ageneral") == {a1.sid}
        _, body = await http(daemon, "GET", "/api/v1/sessions?user=alice")
        first = next(s for s in body if s["sid"] == a1.sid)
        assert first["user_id"] == "alice" and first["user_name"] == "Alice"
        assert first["rooms"] == ["channel:general", "user:alice"]
    finally:
        for c in (a1, a2, b):
            await c.close()
    assert (await http(daemon, "GET", "/api/v1/sessions"))[1] == []


async def test_users_online_rooms_and_members(daemon: DaemonProcess) -> None:
    a1 = await connect(daemon, "alice", name="Alice", channels=["general"])
    a2 = await connect(daemon, "alice", name="Alice")
    b = await connect(daemon, "bob", name="Bob")
    try:
        await a1.call("channel:join", {"channel_id": "general"})
        status, users = await http(daemon, "GET", "/api/v1/users/online")
        assert status == 200
        node = [(await http(daemon, "GET", "/api/v1/nodes"))[1][0]["id"]]
        assert users == [
            {"user_id": "alice", "user_name": "Alice", "sessions": 2, "nodes": node},
            {"user_id": "bob", "user_name": "Bob", "sessions": 1, "nodes": node},
        ]
        status, rooms = await http(daemon, "GET", "/api/v1/rooms")
        assert status == 200
        assert rooms == [
            {"room": "channel:general", "members": 1, "nodes": node},
            {"room": "user:alice", "members": 2, "nodes": node},
            {"room": "user:bob", "members": 1, "nodes": node},
        ]
        status, members = await http(daemon, "GET", "/api/v1/rooms/user:alice/members")
        assert status == 200 and {m["sid"] for m in members} == {a1.sid, a2.sid}
        status, members = await http(daemon, "GET", "/api/v1/rooms/channel%3Ageneral/members")
        assert status == 200 and [m["sid"] for m in members] == [a1.sid]
        for room in ("channel:nobody", "nothing"):
            status, body = await http(daemon, "GET", f"/api/v1/rooms/{room}/members")
            assert status == 404 and error_code(body) == "not_found"
    finally:
        for c in (a1, a2, b):
            await c.close()
    await until(lambda: _body(daemon, "/api/v1/users/online", []), what="users to go offline")
    assert (await http(daemon, "GET", "/api/v1/rooms"))[1] == []


async def test_room_names_are_decoded_once(daemon: DaemonProcess) -> None:
    """A room id may hold '/' or '%': percent-encoded in the path, it is decoded once."""
    channel = "team/a%41 b"
    c = await connect(daemon, "alice", channels=[channel])
    try:
        assert (await c.call("channel:join", {"channel_id": channel}))["ok"] is True
        path = "/api/v1/rooms/" + quote(f"channel:{channel}", safe="") + "/members"
        status, members = await http(daemon, "GET", path)
        assert status == 200 and [m["sid"] for m in members] == [c.sid]
        status, _ = await http(daemon, "GET", "/api/v1/rooms/channel:team%2FaA%20b/members")
        assert status == 404  # %41 is not 'A' a second time
        status, body = await http(
            daemon, "GET", "/api/v1/sessions?room=" + quote(f"channel:{channel}")
        )
        assert status == 200 and [s["sid"] for s in body] == [c.sid]
    finally:
        await c.close()


async def _body(d: DaemonProcess, path: str, expected: Any) -> bool:
    return bool(await http(d, "GET", path) == (200, expected))


async def test_kick_by_sids_and_by_user(daemon: DaemonProcess) -> None:
    a1 = await connect(daemon, "alice")
    a2 = await connect(daemon, "alice")
    a3 = await connect(daemon, "alice")
    b = await connect(daemon, "bob")
    try:
        status, body = await http(
            daemon, "POST", "/api/v1/sessions/kick", {"sids": [a1.sid, "no-such-sid"]}
        )
        assert status == 200
        assert body == {"kicked": [a1.sid], "not_found": ["no-such-sid"]}
        await a1.wait_disconnected()
        status, body = await http(daemon, "POST", "/api/v1/sessions/kick", {"user": "alice"})
        assert status == 200
        assert sorted(body["kicked"]) == sorted([a2.sid, a3.sid]) and body["not_found"] == []
        await a2.wait_disconnected()
        await a3.wait_disconnected()
        assert b.sio.connected and await b.call("heartbeat") == {"ok": True}
        status, body = await http(daemon, "GET", "/api/v1/sessions")
        assert [s["sid"] for s in body] == [b.sid]
        status, body = await http(daemon, "POST", "/api/v1/sessions/kick", {"user": "alice"})
        assert status == 404 and error_code(body) == "not_found"
        # a refused kick (one malformed sid) kicks nobody
        status, _ = await http(daemon, "POST", "/api/v1/sessions/kick", {"sids": [b.sid, ""]})
        assert status == 400
        assert b.sio.connected and await b.call("heartbeat") == {"ok": True}
    finally:
        for c in (a1, a2, a3, b):
            await c.close()


# emit and call --------------------------------------------------------------------------------


async def test_emit_reaches_exactly_its_target(daemon: DaemonProcess) -> None:
    a1 = await connect(daemon, "alice", channels=["general"])
    a2 = await connect(daemon, "alice")
    b = await connect(daemon, "bob")
    everyone = (a1, a2, b)
    try:
        await a1.call("channel:join", {"channel_id": "general"})

        async def emit(target: dict[str, str], n: int) -> set[LiveClient]:
            data = {"data": {"type": "notification", "data": {"n": n}}}
            status, body = await http(
                daemon, "POST", "/api/v1/emit", {"event": "events", "data": data, **target}
            )
            assert status == 200, body
            await barrier(daemon, *everyone)
            got = {c for c in everyone if data in c.received("events")}
            assert body["sessions"] == len(got)
            return got

        assert await emit({"user": "alice"}, 1) == {a1, a2}
        assert await emit({"room": "channel:general"}, 2) == {a1}
        assert await emit({"sid": b.sid}, 3) == {b}
        assert await emit({"room": "user:bob"}, 4) == {b}
        for c in everyone:
            assert len(c.received("events")) == (2 if c is not a2 else 1)
        for target in ({"user": "nobody"}, {"room": "channel:empty"}, {"sid": "no-such-sid"}):
            status, body = await http(
                daemon, "POST", "/api/v1/emit", {"event": "events", "data": {}, **target}
            )
            assert status == 404 and error_code(body) == "not_found", target
        # emit without data sends the bare event
        status, _ = await http(daemon, "POST", "/api/v1/emit", {"event": "ping", "sid": b.sid})
        assert status == 200
        await b.next_event("ping")
    finally:
        for c in everyone:
            await c.close()


async def test_call_returns_the_client_ack(daemon: DaemonProcess) -> None:
    c = await connect(daemon)

    async def answer(data: Any) -> Any:
        return {"answer": data["q"] * 2}

    c.replies["ask"] = answer
    try:
        status, body = await http(
            daemon, "POST", "/api/v1/call", {"sid": c.sid, "event": "ask", "data": {"q": 21}}
        )
        assert (status, body) == (200, {"sid": c.sid, "reply": {"answer": 42}})
        # a handler that returns nothing acks with no arguments
        status, body = await http(
            daemon, "POST", "/api/v1/call", {"sid": c.sid, "event": "noop", "timeout": 5}
        )
        assert (status, body) == (200, {"sid": c.sid, "reply": []})
        status, body = await http(
            daemon, "POST", "/api/v1/call", {"sid": "no-such-sid", "event": "ask"}
        )
        assert status == 404 and error_code(body) == "not_found"
        for timeout in (0, -1, 301):
            status, body = await http(
                daemon, "POST", "/api/v1/call", {"sid": c.sid, "event": "a", "timeout": timeout}
            )
            assert status == 400, timeout
    finally:
        await c.close()


def pending_calls(d: DaemonProcess) -> float:
    status, text = d.http("GET", "/metrics", auth=False)
    assert status == 200
    match = re.search(r"^rtctl_pending_calls (\S+)$", text, re.M)
    assert match, "rtctl_pending_calls is not exported"
    return float(match.group(1))


async def test_call_to_a_silent_client_times_out_without_leaking(daemon: DaemonProcess) -> None:
    c = await connect(daemon)
    never = asyncio.Event()

    async def silent(*args: Any) -> None:
        await never.wait()  # never acks

    c.replies["slow"] = silent
    call = {"sid": c.sid, "event": "slow", "timeout": 1}
    try:
        started = time.monotonic()
        status, body = await http(daemon, "POST", "/api/v1/call", call)
        elapsed = time.monotonic() - started
        assert status == 409 and error_code(body) == "timeout", body
        assert 0.9 <= elapsed < 2.5, elapsed

        # many concurrent timed-out calls: each is counted while it waits, none stays
        n = 30
        loop = asyncio.get_running_loop()
        with ThreadPoolExecutor(n) as pool:
            futures = [
                loop.run_in_executor(pool, daemon.http, "POST", "/api/v1/call", call)
                for _ in range(n)
            ]
            seen = await until(lambda: pending_calls(daemon) >= n, 3.0, "calls to be pending")
            assert seen
            results = await asyncio.gather(*futures)
        assert [s for s, _ in results] == [409] * n
        assert pending_calls(daemon) == 0
        assert c.sio.connected and await c.call("heartbeat") == {"ok": True}

        # a call whose client goes away ends at once, not at its timeout
        long_call = {**call, "timeout": 30}
        with ThreadPoolExecutor(1) as pool:
            future = loop.run_in_executor(pool, daemon.http, "POST", "/api/v1/call", long_call)
            await until(lambda: pending_calls(daemon) == 1, 3.0, "the call to be pending")
            started = time.monotonic()
            await c.close()
            status, body = await future
        assert status == 409 and time.monotonic() - started < 3
        assert pending_calls(daemon) == 0
    finally:
        never.set()
        await c.close()


# token revocation ----------------------------------------------------------------------------


async def test_revoke_by_jti_and_by_user_disconnects_holders(daemon: DaemonProcess) -> None:
    t1, t2 = daemon.token("alice"), daemon.token("alice")
    jti1 = jwt.decode(t1, options={"verify_signature": False})["jti"]
    a1 = await LiveClient(daemon, t1).connect()
    a2 = await LiveClient(daemon, t2).connect()
    b1 = await connect(daemon, "bob")
    b2 = await connect(daemon, "bob")
    c = await connect(daemon, "carol")
    try:
        status, body = await http(daemon, "POST", "/api/v1/tokens/revoke", {"jti": jti1})
        assert status == 200
        assert body == {"revoked": jti1, "kind": "jti", "disconnected": [a1.sid]}
        await a1.wait_disconnected()
        assert a2.sio.connected and await a2.call("heartbeat") == {"ok": True}
        with pytest.raises(socketio.exceptions.ConnectionError):
            await LiveClient(daemon, t1).connect()

        status, body = await http(daemon, "POST", "/api/v1/tokens/revoke", {"user": "bob"})
        assert status == 200 and body["kind"] == "user"
        assert sorted(body["disconnected"]) == sorted([b1.sid, b2.sid])
        await b1.wait_disconnected()
        await b2.wait_disconnected()
        assert c.sio.connected and await c.call("heartbeat") == {"ok": True}
        # tokens bob held are refused; one issued after the revocation is accepted
        with pytest.raises(socketio.exceptions.ConnectionError):
            await LiveClient(daemon, daemon.token("bob", now=time.time() - 60)).connect()
        fresh = await LiveClient(daemon, daemon.token("bob", now=time.time() + 1)).connect()
        await fresh.close()
        # revoking a user with no session is fine: tokens are refused from now on
        status, body = await http(daemon, "POST", "/api/v1/tokens/revoke", {"user": "zed"})
        assert status == 200 and body["disconnected"] == []
    finally:
        for client in (a1, a2, b1, b2, c):
            await client.close()


# metrics ---------------------------------------------------------------------------------------


def fetch_text(url: str) -> tuple[str, str]:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return str(resp.headers["Content-Type"]), resp.read().decode()


async def test_metrics_are_prometheus_text(daemon: DaemonProcess) -> None:
    c = await connect(daemon)
    try:
        assert await c.call("heartbeat", {}) == {"ok": True}
        assert (await http(daemon, "POST", "/api/v1/emit", {"event": "e", "sid": c.sid}))[0] == 200
        content_type, text = await asyncio.to_thread(fetch_text, daemon.url + "/metrics")
        assert content_type.startswith("text/plain") and "version=0.0.4" in content_type
        assert re.search(r"^rtctl_sessions 1$", text, re.M)
        assert re.search(r'^rtctl_events_in_total\{event="heartbeat"\} 1$', text, re.M)
        assert re.search(r'^rtctl_emit_latency_seconds_bucket\{le="\+Inf"\} [1-9]', text, re.M)
        assert re.search(r"^rtctl_pending_calls 0$", text, re.M)
        # every sample line is `name{labels} value` and belongs to a declared family
        families = set(re.findall(r"^# TYPE (\S+) (?:counter|gauge|histogram)$", text, re.M))
        for line in text.splitlines():
            if line and not line.startswith("#"):
                m = re.match(r'^([a-z_]+)(\{[a-z_]+="[^"]*"\})? (\S+)$', line)
                assert m, line
                float(m.group(3))
                name = m.group(1)
                assert any(name == f or name.startswith(f + "_") for f in families), line
    finally:
        await c.close()
