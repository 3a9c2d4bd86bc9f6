"""Authentication at connect and while connected, against a real daemon process.

Every refusal must reach the client as ``connect_error`` and leave nothing behind:
no session in the pool, no Engine.IO connection held open.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import engineio
import jwt
import pytest
import socketio
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from rtctl.auth import CLOCK_LEEWAY, issue_token
from tests.conftest import DaemonProcess

pytestmark = pytest.mark.anyio
NO_AUTH = object()


class Probe:
    """A python-socketio client that records what the server tells it."""

    def __init__(self) -> None:
        self.sio = socketio.AsyncClient(reconnection=False)
        self.refusal: dict[str, Any] | None = None
        self.events: list[tuple[str, Any]] = []
        self.gone = asyncio.Event()
        self.sid: str | None = None  # kept: get_sid() forgets it at disconnect

        @self.sio.event
        async def connect_error(data: Any) -> None:
            self.refusal = data

        @self.sio.event
        async def disconnect(*args: Any) -> None:
            self.gone.set()

        @self.sio.on("*")
        async def anything(event: str, data: Any = None) -> None:
            self.events.append((event, data))

    @property
    def code(self) -> str | None:
        return ((self.refusal or {}).get("data") or {}).get("code")

    def errors(self) -> list[Any]:
        return [data for event, data in self.events if event == "error"]

    async def gone_within(self, seconds: float) -> bool:
        try:
            await asyncio.wait_for(self.gone.wait(), seconds)
        except TimeoutError:
            return False
        return True


@pytest.fixture
async def connect() -> AsyncIterator[Callable[..., Awaitable[Probe]]]:
    """``await connect(daemon, token)`` -> a Probe, connected or refused (``.refusal``)."""
    probes: list[Probe] = []

    async def open_one(d: DaemonProcess, token: Any = None, *, auth: Any = NO_AUTH) -> Probe:
        probe = Probe()
        probes.append(probe)
        if auth is NO_AUTH:
            auth = {"token": token}
        try:
            await probe.sio.connect(d.url, auth=auth, transports=["websocket"], wait_timeout=5)
            probe.sid = probe.sio.get_sid()
        except socketio.exceptions.ConnectionError:
            assert probe.refusal is not None, "refused without a connect_error"
        return probe

    yield open_one
    for probe in probes:
        if probe.sio.connected:
            await probe.sio.disconnect()


async def admin(d: DaemonProcess, method: str, path: str, body: Any = None) -> Any:
    status, data = await asyncio.to_thread(d.http, method, path, body)
    assert status == 200, (status, data)
    return data


async def session_sids(d: DaemonProcess) -> list[str]:
    return [s["sid"] for s in await admin(d, "GET", "/api/v1/sessions")]


async def eventually(check: Callable[[], Awaitable[bool]], seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if await check():
            return True
        await asyncio.sleep(0.05)
    return await check()


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hs256_by_hand(header: dict[str, Any], claims: dict[str, Any], key: bytes) -> str:
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    sig = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(sig)}"


def alg_none_token() -> str:
    head = b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    body = b64(json.dumps({"sub": "alice", "role": "admin"}).encode())
    return f"{head}.{body}."


# refusals at connect ------------------------------------------------------------------------

REFUSALS: dict[str, tuple[Callable[[DaemonProcess], Any], str]] = {
    "no auth": (lambda d: NO_AUTH, "unauthorized"),
    "auth without token": (lambda d: {}, "unauthorized"),
    "auth not an object": (lambda d: "a-token-as-a-string", "unauthorized"),
    "garbage": (lambda d: {"token": "garbage"}, "invalid_token"),
    "wrong secret": (
        lambda d: {"token": issue_token("wrong-secret-" + "x" * 40, "alice")},
        "invalid_token",
    ),
    "expired": (
        lambda d: {"token": issue_token(d.env["RTCTL_JWT_SECRET"], "alice", ttl=-60)},
        "token_expired",
    ),
    "nbf in the future": (
        lambda d: {
            "token": jwt.encode(
                {"sub": "alice", "nbf": int(time.time()) + 600}, d.env["RTCTL_JWT_SECRET"]
            )
        },
        "token_not_yet_valid",
    ),
    "alg none": (lambda d: {"token": alg_none_token()}, "invalid_token"),
    # time claims that are not numbers: a string exp must never make a session that
    # cannot expire
    "exp a numeric string": (lambda d: signed(d, exp="9999999999"), "invalid_token"),
    "exp a word": (lambda d: signed(d, exp="soon"), "invalid_token"),
    "iat a boolean": (lambda d: signed(d, iat=True), "invalid_token"),
    "nbf a numeric string": (lambda d: signed(d, nbf="1000"), "invalid_token"),
    "iat a numeric string": (lambda d: signed(d, iat="1000"), "invalid_token"),
}


def signed(d: DaemonProcess, **claims: Any) -> dict[str, str]:
    """Auth carrying a well-signed token for alice with these claims as given."""
    return {"token": jwt.encode({"sub": "alice", **claims}, d.env["RTCTL_JWT_SECRET"])}


@pytest.mark.parametrize("case", list(REFUSALS))
async def test_refused_at_connect(
    make_daemon: Callable[..., DaemonProcess],
    connect: Callable[..., Awaitable[Probe]],
    case: str,
) -> None:
    d = make_daemon()
    make_auth, code = REFUSALS[case]
    auth = make_auth(d)
    probe = await (connect(d) if auth is NO_AUTH else connect(d, auth=auth))
    assert not probe.sio.connected
    assert probe.code == code, probe.refusal
    assert probe.refusal and probe.refusal["message"]
    assert await session_sids(d) == []
    # and the same daemon still admits a good token afterwards
    good = await connect(d, d.token("alice"))
    assert good.sio.connected
    assert await session_sids(d) == [good.sid]


async def test_refused_socket_is_closed_by_the_server(
    make_daemon: Callable[..., DaemonProcess],
) -> None:
    """A hostile client that ignores connect_error must not keep its connection."""
    d = make_daemon()
    eio = engineio.AsyncClient()
    messages: list[Any] = []
    closed = asyncio.Event()
    eio.on("message", messages.append)
    eio.on("disconnect", lambda *args: closed.set())
    await eio.connect(d.url, transports=["websocket"], engineio_path="socket.io")
    try:
        await eio.send('0{"token":"garbage"}')  # Socket.IO CONNECT to "/" with auth
        await asyncio.wait_for(closed.wait(), 5)
    finally:
        await eio.disconnect()
    assert messages and str(messages[0]).startswith("4")  # CONNECT_ERROR came first
    assert "invalid_token" in str(messages[0])


async def test_revoked_by_jti(
    make_daemon: Callable[..., DaemonProcess], connect: Callable[..., Awaitable[Probe]]
) -> None:
    d = make_daemon()
    token = d.token("alice")
    jti = jwt.decode(token, options={"verify_signature": False})["jti"]
    holder = await connect(d, token)
    other = await connect(d, d.token("alice"))  # same user, another token
    assert holder.sio.connected and other.sio.connected

    result = await admin(d, "POST", "/api/v1/tokens/revoke", {"jti": jti})
    assert result["disconnected"] == [holder.sid]
    assert await holder.gone_within(5)
    assert await session_sids(d) == [other.sid]

    again = await connect(d, token)
    assert again.code == "token_revoked"
    assert await session_sids(d) == [other.sid]


async def test_revoked_by_user(
    make_daemon: Callable[..., DaemonProcess], connect: Callable[..., Awaitable[Probe]]
) -> None:
    d = make_daemon()
    old = d.token("alice")
    holder = await connect(d, old)
    bob = await connect(d, d.token("bob"))

    await admin(d, "POST", "/api/v1/tokens/revoke", {"user": "alice"})
    assert await holder.gone_within(5)
    assert (await connect(d, old)).code == "token_revoked"
    no_iat = jwt.encode({"sub": "alice"}, d.env["RTCTL_JWT_SECRET"])
    assert (await connect(d, no_iat)).code == "token_revoked"
    assert await session_sids(d) == [bob.sid]

    fresh = await connect(d, d.token("alice"))  # minted after the revocation
    assert fresh.sio.connected


async def test_revocations_survive_a_restart(
    make_daemon: Callable[..., DaemonProcess], connect: Callable[..., Awaitable[Probe]]
) -> None:
    d = make_daemon()
    token = d.token("alice")
    jti = jwt.decode(token, options={"verify_signature": False})["jti"]
    await admin(d, "POST", "/api/v1/tokens/revoke", {"jti": jti})
    d.stop()
    d.start()
    assert (await connect(d, token)).code == "token_revoked"


async def test_too_many_sessions_per_user(
    make_daemon: Callable[..., DaemonProcess], connect: Callable[..., Awaitable[Probe]]
) -> None:
    d = make_daemon(RTCTL_MAX_SESSIONS_PER_USER="2")
    first = await connect(d, d.token("alice"))
    second = await connect(d, d.token("alice"))
    third = await connect(d, d.token("alice"))
    assert first.sio.connected and second.sio.connected
    assert third.code == "too_many_sessions"
    assert sorted(await session_sids(d)) == sorted([first.sid, second.sid])
    assert (await connect(d, d.token("bob"))).sio.connected  # the limit is per user

    await first.sio.disconnect()

    async def alice_has_one() -> bool:
        users = await admin(d, "GET", "/api/v1/sessions?user=alice")
        return len(users) == 1

    assert await eventually(alice_has_one)
    assert (await connect(d, d.token("alice"))).sio.connected


async def test_connection_rate(
    make_daemon: Callable[..., DaemonProcess], connect: Callable[..., Awaitable[Probe]]
) -> None:
    d = make_daemon(RTCTL_CONNECT_RATE="1")
    token = d.token("alice")
    probes = [await connect(d, token) for _ in range(4)]
    admitted = [p for p in probes if p.sio.connected]
    refused = [p for p in probes if not p.sio.connected]
    assert 1 <= len(admitted) <= 3 and refused  # a burst of 2 at 1 per second
    assert {p.code for p in refused} == {"rate_limited"}
    assert sorted(await session_sids(d)) == sorted(p.sid for p in admitted)

    async def admitted_again() -> bool:
        probe = await connect(d, token)
        if probe.sio.connected:
            return True
        await asyncio.sleep(0.5)
        return False

    assert await eventually(admitted_again, 5)


# public keys --------------------------------------------------------------------------------


async def test_rs256_daemon(
    tmp_path: Path,
    make_daemon: Callable[..., DaemonProcess],
    connect: Callable[..., Awaitable[Probe]],
) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    (tmp_path / "jwt.pub").write_bytes(pem)
    d = make_daemon(
        RTCTL_JWT_PUBLIC_KEY=str(tmp_path / "jwt.pub"),
        RTCTL_JWT_SECRET="",
        RTCTL_JWT_ALGORITHMS="RS256",
    )
    now = int(time.time())
    good = jwt.encode({"sub": "alice", "iat": now, "exp": now + 60}, key, algorithm="RS256")
    probe = await connect(d, good)
    assert probe.sio.connected

    confused = hs256_by_hand({"alg": "HS256", "typ": "JWT"}, {"sub": "mallory"}, pem)
    attacker = await connect(d, confused)
    assert attacker.code == "invalid_token"
    assert await session_sids(d) == [probe.sid]


# grants -------------------------------------------------------------------------------------


async def test_admin_may_join_any_channel(
    daemon: DaemonProcess, connect: Callable[..., Awaitable[Probe]]
) -> None:
    root = await connect(daemon, daemon.token("root", role="admin"))
    plain = await connect(daemon, daemon.token("bob", channels=["general"]))
    ack = await root.sio.call("channel:join", {"channel_id": "secret-ops"}, timeout=5)
    assert ack == {"ok": True, "channel_id": "secret-ops"}
    assert (await plain.sio.call("channel:join", {"channel_id": "general"}, timeout=5))["ok"]
    refused = await plain.sio.call("channel:join", {"channel_id": "secret-ops"}, timeout=5)
    assert refused["ok"] is False and refused["error"]["code"] == "forbidden"
    members = await admin(daemon, "GET", "/api/v1/rooms/channel:secret-ops/members")
    assert [m["user_id"] for m in members] == ["root"]


# expiry while connected ---------------------------------------------------------------------


def token_expiring_in(d: DaemonProcess, seconds: float, user: str = "alice") -> tuple[str, int]:
    exp = int(time.time() + seconds) + 1  # whole seconds, never less than ``seconds`` ahead
    token = jwt.encode(
        {"sub": user, "iat": time.time(), "exp": exp, "jti": f"{user}-{exp}"},
        d.env["RTCTL_JWT_SECRET"],
    )
    return token, exp


async def test_session_ends_when_its_token_expires(
    daemon: DaemonProcess, connect: Callable[..., Awaitable[Probe]]
) -> None:
    token, exp = token_expiring_in(daemon, 1.0)
    probe = await connect(daemon, token)
    assert probe.sio.connected
    assert await probe.gone_within(exp + CLOCK_LEEWAY - time.time() + 3)
    # not before the token's expiry plus the clock leeway also granted at connect
    assert time.time() >= exp + CLOCK_LEEWAY - 0.05
    assert await eventually(lambda: _no_sessions(daemon))


async def _no_sessions(d: DaemonProcess) -> bool:
    return await session_sids(d) == []


async def test_user_join_with_a_fresher_token_extends_the_session(
    daemon: DaemonProcess, connect: Callable[..., Awaitable[Probe]]
) -> None:
    token, exp = token_expiring_in(daemon, 1.0)
    probe = await connect(daemon, token)
    fresh = daemon.token("alice", name="Alice Again", ttl=60)
    ack = await probe.sio.call("user-join", {"auth": {"token": fresh}}, timeout=5)
    assert ack == {"id": "alice", "name": "Alice Again"}
    # outlives the first token (and its leeway)
    assert not await probe.gone_within(exp + CLOCK_LEEWAY - time.time() + 1.0)
    assert probe.sio.connected
    assert await session_sids(daemon) == [probe.sid]


async def test_user_join_with_another_users_token_is_refused(
    daemon: DaemonProcess, connect: Callable[..., Awaitable[Probe]]
) -> None:
    probe = await connect(daemon, daemon.token("alice"))
    ack = await probe.sio.call("user-join", {"auth": {"token": daemon.token("bob")}}, timeout=5)
    assert ack["ok"] is False and ack["error"]["code"] == "forbidden"
    assert probe.errors() and probe.errors()[0]["event"] == "user-join"
    assert probe.errors()[0]["code"] == "forbidden"
    assert probe.sio.connected
    sessions = await admin(daemon, "GET", "/api/v1/sessions")
    assert [(s["sid"], s["user_id"]) for s in sessions] == [(probe.sid, "alice")]
    # the session stays usable as alice
    assert await probe.sio.call("heartbeat", {}, timeout=5) == {"ok": True}


async def test_user_join_with_a_bad_token_keeps_the_session(
    daemon: DaemonProcess, connect: Callable[..., Awaitable[Probe]]
) -> None:
    probe = await connect(daemon, daemon.token("alice"))
    expired = issue_token(daemon.env["RTCTL_JWT_SECRET"], "alice", ttl=-60)
    for bad, code in (("garbage", "invalid_token"), (expired, "token_expired")):
        ack = await probe.sio.call("user-join", {"auth": {"token": bad}}, timeout=5)
        assert ack["error"]["code"] == code
    assert probe.sio.connected
