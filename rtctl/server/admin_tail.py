"""Following the deployment live through the admin API: ``GET /api/v1/tail`` streams the
events delivered to a room, one JSON object per line (``rtctl events tail``, ``rtctl
tasks tail`` on an embedded daemon), and ``GET /api/v1/tasks/{id}/so_far`` says what a
running task has streamed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

from rtctl import errors
from rtctl.auth import valid_id
from rtctl.hub.operator import Operator
from rtctl.hub.transport import user_room
from rtctl.server.router import Receive, Request, Response, Router, Send
from rtctl.server.taps import Taps, Watch
from rtctl.state import wire
from rtctl.state.base import iso

API = "/api/v1"
IDLE = 5.0  # seconds without an event before an idle line
SEND_TIMEOUT = 10.0  # a client that takes no line for so long has stopped reading


def declare_tail_routes(r: Router, taps: Taps, op: Operator) -> None:
    @r.route(
        "GET", f"{API}/tail",
        "Events as this daemon delivers them to a room or a user's sessions, one JSON "
        "object per line ({at, room, event, data}), until the client hangs up",
        query={"room": "string", "user": "string"},
    )  # fmt: skip
    async def tail(req: Request) -> Response:
        room, user = req.query.get("room"), req.query.get("user")
        if (room is None) == (user is None):
            raise errors.UsageError("give room or user, not both")
        watched = valid_id(room, "room") if room is not None else user_room(valid_id(user, "user"))
        taps.check_room_for_one_more()  # 429 now, not in a stream already answered 200
        return Response(200, b"", "application/x-ndjson", stream=_follow(taps, watched))

    @r.route("GET", f"{API}/tasks/{{id}}/so_far", "What a running task has streamed so far")
    async def so_far(req: Request) -> Response:
        return Response.json(await op.task_so_far(req.params["id"]))


def _follow(taps: Taps, room: str) -> Any:
    async def stream(send: Send, receive: Receive) -> None:
        try:
            taps.check_room_for_one_more()  # (no await between this and watch())
        except errors.RtctlError as exc:  # others took the last places, or the daemon stops
            await _line(send, {"error": exc.to_dict()})
            return
        with taps.watch(room) as watch:
            # the first line says the watch is on: nothing delivered after it is missed
            await _line(send, {"at": iso(time.time()), "room": room, "watching": True})
            relay = asyncio.ensure_future(_relay(send, watch, room))
            gone = asyncio.ensure_future(_hang_up(receive))
            stop = asyncio.ensure_future(taps.stopped.wait())
            try:
                await asyncio.wait([relay, gone, stop], return_when=asyncio.FIRST_COMPLETED)
                if stop.done() and not relay.done():
                    relay.cancel()
                    stopping = {"code": "draining", "message": "the daemon is stopping"}
                    with contextlib.suppress(Exception):
                        await _line(send, {"error": stopping}, timeout=1.0)
            finally:
                for task in (relay, gone, stop):
                    task.cancel()

    return stream


async def _relay(send: Send, watch: Watch, room: str) -> None:
    """Until the watcher falls behind or stops reading (each line has SEND_TIMEOUT)."""
    while True:
        try:
            packets = watch.take(await asyncio.wait_for(watch.queue.get(), IDLE))
        except TimeoutError:  # quiet: a line anyway, so the client knows the stream lives
            await _line(send, {"at": iso(time.time()), "room": room, "idle": True})
            continue
        if packets is None:
            behind = {"code": "too_slow", "message": "the watcher fell too far behind"}
            await _line(send, {"error": behind})
            return
        found = wire.event_of(str(packets[0].data)) if packets else None
        if found is not None:
            event, args = found
            data = args[0] if len(args) == 1 else args
            await _line(send, {"at": iso(time.time()), "room": room, "event": event, "data": data})


async def _hang_up(receive: Receive) -> None:
    with contextlib.suppress(Exception):
        while (await receive())["type"] != "http.disconnect":
            pass


async def _line(send: Send, record: dict[str, Any], timeout: float = SEND_TIMEOUT) -> None:
    body = json.dumps(record, separators=(",", ":"), default=str).encode() + b"\n"
    await asyncio.wait_for(
        send({"type": "http.response.body", "body": body, "more_body": True}), timeout
    )
