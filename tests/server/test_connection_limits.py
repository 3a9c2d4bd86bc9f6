"""A connection's bounds (SPEC §8), attacked over raw sockets against a real daemon."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import socket
import struct
import time
from typing import Any

import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

from tests.conftest import DaemonProcess

pytestmark = pytest.mark.anyio

SIO = "/socket.io/?EIO=4"


# raw sockets -----------------------------------------------------------------------------------


def _ws_open(d: DaemonProcess, *, rcvbuf: int | None = None) -> socket.socket:
    """A WebSocket opened by hand: no library reads on our behalf."""
    sock = socket.socket()
    if rcvbuf is not None:  # before connect, so the window the daemon sees stays small
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(10)
    sock.connect(("127.0.0.1", d.port))
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        f"GET {SIO}&transport=websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    sock.sendall(request.encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


def _ws_send(sock: socket.socket, text: str) -> None:
    data, mask = text.encode(), os.urandom(4)
    if len(data) < 126:
        head = bytes([0x81, 0x80 | len(data)])
    else:
        head = bytes([0x81, 0x80 | 126]) + struct.pack("!H", len(data))
    sock.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))


def _exactly(sock: socket.socket, n: int) -> bytes:
    out = b""
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            raise ConnectionError("closed")
        out += chunk
    return out


def _ws_recv(sock: socket.socket) -> str:
    _, second = _exactly(sock, 2)
    size = second & 0x7F
    if size == 126:
        size = struct.unpack("!H", _exactly(sock, 2))[0]
    elif size == 127:
        size = struct.unpack("!Q", _exactly(sock, 8))[0]
    return _exactly(sock, size).decode()


def _ws_session(d: DaemonProcess, user: str, *, rcvbuf: int | None = None) -> socket.socket:
    """An authenticated Socket.IO session over a hand-made WebSocket."""
    sock = _ws_open(d, rcvbuf=rcvbuf)
    assert _ws_recv(sock).startswith("0{")
    _ws_send(sock, "40" + json.dumps({"token": d.token(user)}))
    assert _ws_recv(sock).startswith("40{")
    return sock


def _closed_by_peer(sock: socket.socket, seconds: float) -> bool:
    """True if the daemon closes the connection within ``seconds`` (read until it does)."""
    deadline = time.monotonic() + seconds
    sock.settimeout(0.2)
    while time.monotonic() < deadline:
        try:
            if not sock.recv(1 << 20):
                return True
        except TimeoutError:
            continue
        except ConnectionResetError:
            return True
    return False


def _http(d: DaemonProcess, request: bytes) -> bytes:
    """Send a raw request and read until the daemon closes the connection."""
    with socket.create_connection(("127.0.0.1", d.port), timeout=5) as sock:
        sock.sendall(request)
        out = b""
        try:
            while chunk := sock.recv(65536):
                out += chunk
        except ConnectionResetError:
            pass
    return out


def _polling_session(d: DaemonProcess) -> str:
    out = _http(d, f"GET {SIO}&transport=polling HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                .encode())  # fmt: skip
    match = re.search(rb'"sid":"([^"]+)"', out)
    assert match, out
    return match.group(1).decode()


def _post(sid: str, body: bytes, *, length: int | None = None) -> bytes:
    size = len(body) if length is None else length
    return (
        f"POST {SIO}&transport=polling&sid={sid} HTTP/1.1\r\nHost: x\r\n"
        f"Content-Type: text/plain;charset=UTF-8\r\nContent-Length: {size}\r\n"
        "Connection: close\r\n\r\n".encode()
        + body
    )


def _rss_mb(d: DaemonProcess) -> float:
    assert d.proc is not None
    with open(f"/proc/{d.proc.pid}/status") as status:
        line = next(line for line in status if line.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


def _metric(d: DaemonProcess, name: str) -> float:
    _, text = d.http("GET", "/metrics")
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


def _wait_for_sessions(d: DaemonProcess, count: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 5
    while len(sessions := d.http("GET", "/api/v1/sessions")[1]) != count:
        assert time.monotonic() < deadline, sessions
        time.sleep(0.05)
    return list(sessions)


# unread output ---------------------------------------------------------------------------------


def test_a_client_that_stops_reading_is_disconnected_before_it_costs_memory(
    make_daemon: Any,
) -> None:
    d: DaemonProcess = make_daemon(RTCTL_MAX_UNSENT_BYTES=str(1 << 20))
    stalled = _ws_session(d, "bob", rcvbuf=4096)  # from here on, never read
    before = _rss_mb(d)
    event = {"event": "news", "data": "x" * 200_000, "user": "bob"}
    delivered = 0
    for _ in range(400):  # 80 MB, were it all kept for bob
        status, _ = d.http("POST", "/api/v1/emit", event)
        if status != 200:
            assert status == 404  # bob's session is gone
            break
        delivered += 1
    grown = _rss_mb(d) - before
    assert grown < 30, f"the daemon grew {grown:.0f} MB for a client that does not read"
    assert delivered < 100, delivered
    assert _metric(d, "rtctl_slow_clients_disconnected_total") == 1
    assert d.http("GET", "/api/v1/sessions")[1] == []
    assert _closed_by_peer(stalled, 5.0)
    stalled.close()


def test_a_message_larger_than_the_bound_reaches_a_client_that_reads(make_daemon: Any) -> None:
    d: DaemonProcess = make_daemon(
        RTCTL_MAX_UNSENT_BYTES=str(1 << 20), RTCTL_MAX_PAYLOAD=str(8 << 20)
    )
    reader = _ws_session(d, "carol", rcvbuf=4096)
    big = "y" * (3 << 20)  # three times the bound, unread while the small ones follow
    first = {"event": "state", "data": big, "user": "carol"}
    assert d.http("POST", "/api/v1/emit", first)[0] == 200
    for i in range(5):
        body = {"event": "tick", "data": i, "user": "carol"}
        assert d.http("POST", "/api/v1/emit", body)[0] == 200
    reader.settimeout(10)
    got = [_ws_recv(reader) for _ in range(6)]
    assert got[0] == "42" + json.dumps(["state", big], separators=(",", ":"))
    assert got[1:] == [f'42["tick",{i}]' for i in range(5)]
    assert _metric(d, "rtctl_slow_clients_disconnected_total") == 0
    reader.close()


def test_a_polling_client_that_stops_polling_is_disconnected(make_daemon: Any) -> None:
    d: DaemonProcess = make_daemon(RTCTL_MAX_UNSENT_BYTES=str(1 << 20))
    sid = _polling_session(d)
    connect = "40" + json.dumps({"token": d.token("frank")})
    assert _http(d, _post(sid, connect.encode())).startswith(b"HTTP/1.1 200")
    _wait_for_sessions(d, 1)  # from here on, never poll
    event = {"event": "news", "data": "x" * 200_000, "user": "frank"}
    statuses = [d.http("POST", "/api/v1/emit", event)[0] for _ in range(50)]  # 10 MB
    assert 200 in statuses and statuses[-1] == 404, statuses  # kept up to the bound, then cut
    assert statuses.count(200) < 15, statuses
    assert _metric(d, "rtctl_slow_clients_disconnected_total") == 1
    _wait_for_sessions(d, 0)


# abandoned handshakes --------------------------------------------------------------------------


def test_a_polling_handshake_that_never_completes_is_released(make_daemon: Any) -> None:
    d: DaemonProcess = make_daemon(RTCTL_CONNECT_TIMEOUT="1")
    _polling_session(d)  # opened, never polled again, never authenticated
    assert _metric(d, "rtctl_connections") == 1
    deadline = time.monotonic() + 5
    while _metric(d, "rtctl_connections") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _metric(d, "rtctl_connections") == 0


# slow headers ----------------------------------------------------------------------------------


def test_a_client_that_trickles_its_headers_is_closed(make_daemon: Any) -> None:
    d: DaemonProcess = make_daemon(RTCTL_HEADER_TIMEOUT="2")
    with socket.create_connection(("127.0.0.1", d.port)) as slow:
        slow.sendall(f"GET {SIO}&transport=polling HTTP/1.1\r\nHost: x\r\n".encode())
        started = time.monotonic()
        closed_after = None
        slow.settimeout(0.5)
        while time.monotonic() - started < 8:
            try:
                slow.sendall(b"X")  # one byte of a header line every half second
                if slow.recv(1024) == b"":
                    closed_after = time.monotonic() - started
                    break
            except TimeoutError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                closed_after = time.monotonic() - started
                break
    assert closed_after is not None, "still open after 8 s"
    assert 1.5 < closed_after < 4.0, closed_after
    with socket.create_connection(("127.0.0.1", d.port)) as silent:  # nothing sent at all
        assert _closed_by_peer(silent, 4.0)
    assert d.http("GET", "/readyz", auth=False)[0] == 200  # a prompt request is served


# polling posts ---------------------------------------------------------------------------------


def test_a_malformed_polling_post_is_refused_in_one_log_line(daemon: DaemonProcess) -> None:
    bad = [b"9zzz", b"\xff\xfe", b"bA", "\x1e".join(["42[]"] * 20).encode(), b"0", b"2probe"]
    lines_before = len(daemon.log().splitlines())
    sids = []
    for body in bad:
        sids.append(_polling_session(daemon))
        out = _http(daemon, _post(sids[-1], body))
        assert out.startswith(b"HTTP/1.1 400"), (body, out)
    log = daemon.log()
    assert "Traceback" not in log
    new = [line for line in log.splitlines()[lines_before:] if "rtctl.audit" not in line]
    assert len(new) <= len(bad), new
    for sid in sids:  # each session was closed: its client must start afresh
        poll = f"GET {SIO}&transport=polling&sid={sid} HTTP/1.1\r\nHost: x\r\n"
        assert _http(daemon, (poll + "Connection: close\r\n\r\n").encode()).startswith(
            b"HTTP/1.1 400"
        )


def test_a_polling_post_over_max_payload_gets_413_and_is_closed(make_daemon: Any) -> None:
    d: DaemonProcess = make_daemon(RTCTL_MAX_PAYLOAD="10000")
    sid = _polling_session(d)
    out = _http(d, _post(sid, b"4" + b"x" * 1000, length=20_001))  # the rest never comes
    assert out.startswith(b"HTTP/1.1 413"), out
    assert b"connection: close" in out.lower()
    sid = _polling_session(d)
    chunks = b"".join(b"%x\r\n%s\r\n" % (4000, b"4" * 4000) for _ in range(3)) + b"0\r\n\r\n"
    out = _http(d, f"POST {SIO}&transport=polling&sid={sid} HTTP/1.1\r\nHost: x\r\n"
                "Transfer-Encoding: chunked\r\n\r\n".encode() + chunks)  # fmt: skip
    assert out.startswith(b"HTTP/1.1 413"), out
    assert "Traceback" not in d.log()


def test_a_polling_post_within_bounds_still_reaches_the_hub(daemon: DaemonProcess) -> None:
    sid = _polling_session(daemon)
    connect = "40" + json.dumps({"token": daemon.token("dave")})
    assert _http(daemon, _post(sid, connect.encode())).startswith(b"HTTP/1.1 200")
    assert [s["user_id"] for s in _wait_for_sessions(daemon, 1)] == ["dave"]


# a client's close ------------------------------------------------------------------------------


async def test_a_websocket_closes_at_once_after_the_clients_engineio_close(
    daemon: DaemonProcess,
) -> None:
    url = f"ws://127.0.0.1:{daemon.port}{SIO}&transport=websocket"
    for authenticated in (True, False):
        async with ws_connect(url) as ws:
            await ws.recv()
            if authenticated:
                await ws.send("40" + json.dumps({"token": daemon.token("erin")}))
                assert (await ws.recv()).startswith("40{")
            started = time.monotonic()
            await ws.send("1")
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 5)
            assert time.monotonic() - started < 2.0


def test_a_client_that_leaves_the_namespace_but_keeps_its_connection_is_closed(
    make_daemon: Any,
) -> None:
    """Socket.IO's DISCONNECT ("41") ends the session; a client that then keeps the
    connection (answering pings) has connect_timeout to open a session again."""
    d = make_daemon(RTCTL_CONNECT_TIMEOUT="1.5")
    sock = _ws_session(d, "leaver")
    try:
        time.sleep(2.0)  # past the connect_timeout armed when the connection opened
        _ws_send(sock, "41")
        deadline = time.monotonic() + 6
        closed = False
        sock.settimeout(0.2)
        while time.monotonic() < deadline and not closed:
            try:
                data = sock.recv(1 << 16)
                if not data or data[:1] == b"\x88":  # gone, or a WebSocket close frame
                    closed = True
                elif b"\x812" in data[:4]:  # a ping ("2"): answer it, stay alive
                    _ws_send(sock, "3")
            except TimeoutError:
                continue
            except ConnectionResetError:
                closed = True
        assert closed, "the connection without a session was kept"
    finally:
        sock.close()


def test_a_polling_get_whose_client_reads_nothing_is_closed(make_daemon: Any) -> None:
    """A long-polling response waits on a client that stopped reading for at most
    write_timeout, then its connection (and file descriptor) is let go."""
    d: DaemonProcess = make_daemon(RTCTL_WRITE_TIMEOUT="2", RTCTL_MAX_UNSENT_BYTES=str(64 << 20))
    sid = _polling_session(d)
    connect = "40" + json.dumps({"token": d.token("quiet")})
    assert _http(d, _post(sid, connect.encode())).startswith(b"HTTP/1.1 200")
    _wait_for_sessions(d, 1)
    event = {"event": "news", "data": "x" * 500_000, "user": "quiet"}
    for _ in range(20):  # 10 MB waiting for the next poll
        assert d.http("POST", "/api/v1/emit", event)[0] == 200
    with socket.socket() as poll:
        poll.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        poll.connect(("127.0.0.1", d.port))
        poll.sendall(f"GET {SIO}&transport=polling&sid={sid} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        time.sleep(4.0)  # never read: the response stalls in the daemon's buffer
        got = 0
        poll.settimeout(5)
        try:
            while chunk := poll.recv(1 << 20):
                got += len(chunk)
        except ConnectionResetError:
            pass
    assert got < 10_000_000, f"the whole response came ({got} bytes): nothing was cut"
