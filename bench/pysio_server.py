"""Plain python-socketio baseline doing the bench subset of SPEC §4.

Same work as bench/ref_server.js: auth.token required, channel:join, events:channel relay,
heartbeat ack, GET /readyz; served by uvicorn with uvloop + httptools. ``build`` also makes
the AsyncRedisManager node of bench/redis_node.py.
Usage: python bench/pysio_server.py PORT [WS_IMPL]   (uvicorn --ws: auto, websockets, wsproto)
"""

from __future__ import annotations

import sys
from typing import Any

import socketio
import uvicorn


def build(
    client_manager: Any = None, *, token_is_user: bool = False
) -> tuple[socketio.AsyncServer, socketio.ASGIApp]:
    """The server and its ASGI app; with ``token_is_user`` each token names its own user
    (room ``user:<token>``), else every client is user ``bench``."""
    sio = socketio.AsyncServer(
        async_mode="asgi", transports=["websocket"], cors_allowed_origins=[],
        client_manager=client_manager,
    )  # fmt: skip
    users: dict[str, dict[str, str]] = {}

    async def http_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Answer /readyz and /healthz; everything else that is not Socket.IO is a 404."""
        ok = scope["type"] == "http" and scope["path"] in ("/readyz", "/healthz")
        await send({"type": "http.response.start", "status": 200 if ok else 404, "headers": []})
        await send({"type": "http.response.body", "body": b"ok\n" if ok else b""})

    @sio.event
    async def connect(sid: str, environ: dict[str, Any], auth: Any) -> None:
        if not isinstance(auth, dict) or not auth.get("token"):
            raise socketio.exceptions.ConnectionRefusedError("unauthorized")
        user = str(auth["token"]) if token_is_user else "bench"
        users[sid] = {"id": user, "name": user}
        await sio.enter_room(sid, f"user:{user}")

    @sio.event
    async def disconnect(sid: str, reason: str = "") -> None:
        users.pop(sid, None)

    @sio.on("channel:join")
    async def channel_join(sid: str, payload: dict[str, Any]) -> dict[str, bool]:
        await sio.enter_room(sid, f"channel:{payload.get('channel_id')}")
        return {"ok": True}

    @sio.on("events:channel")
    async def events_channel(sid: str, payload: dict[str, Any]) -> None:
        room = f"channel:{payload.get('channel_id')}"
        if room in sio.rooms(sid):
            await sio.emit("events:channel", {**payload, "user": users[sid]}, room=room)

    @sio.on("heartbeat")
    async def heartbeat(sid: str, payload: Any = None) -> dict[str, bool]:
        return {"ok": True}

    return sio, socketio.ASGIApp(sio, other_asgi_app=http_app)


if __name__ == "__main__":
    _, app = build()
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=int(sys.argv[1]),
        loop="uvloop",
        http="httptools",
        ws=sys.argv[2] if len(sys.argv) > 2 else "auto",
        log_level="warning",
        access_log=False,
        lifespan="off",
    )
