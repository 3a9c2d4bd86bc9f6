"""What a client library would never send, sent over a bare WebSocket."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

from tests.conftest import DaemonProcess

pytestmark = pytest.mark.anyio


async def _closed_within(ws: Any, seconds: float) -> bool:
    """True once the server closes the connection (Engine.IO close or socket close)."""
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            try:
                message = await asyncio.wait_for(ws.recv(), 0.2)
            except TimeoutError:
                continue
            if message == "1":
                return True
            if message == "2":  # ping
                await ws.send("3")
    except ConnectionClosed:
        return True
    return False


def _url(d: DaemonProcess) -> str:
    return f"ws://127.0.0.1:{d.port}/socket.io/?EIO=4&transport=websocket"


async def test_a_connection_that_never_authenticates_is_closed(make_daemon: Any) -> None:
    d: DaemonProcess = make_daemon(RTCTL_CONNECT_TIMEOUT="1")
    async with ws_connect(_url(d)) as idle:
        assert (await idle.recv()).startswith("0")  # Engine.IO open, then nothing from us
        started = time.monotonic()
        assert await _closed_within(idle, 5.0)
        assert time.monotonic() - started >= 0.5  # the timeout, not an immediate refusal
    async with ws_connect(_url(d)) as good:  # an authenticated one outlives the timeout
        await good.recv()
        await good.send("40" + json.dumps({"token": d.token("alice")}))
        assert (await good.recv()).startswith("40{")
        assert not await _closed_within(good, 2.0)


async def test_nan_is_not_json_and_is_never_relayed(daemon: DaemonProcess) -> None:
    async with ws_connect(_url(daemon)) as ws:
        await ws.recv()
        await ws.send("40" + json.dumps({"token": daemon.token("alice", channels=["c"])}))
        assert (await ws.recv()).startswith("40{")
        await ws.send('421["channel:join",{"channel_id":"c"}]')
        assert (await ws.recv()).startswith("431[")
        await ws.send('422["events:channel",{"channel_id":"c","data":{"type":"t","data":NaN}}]')
        assert await _closed_within(ws, 5.0)  # a malformed packet closes that connection
    status, sessions = daemon.http("GET", "/api/v1/sessions")
    assert status == 200 and sessions == []
