"""Admin API routes an app's backend uses (SPEC §9): membership of a user's sessions,
batches of emits (what ``rtctl.Client`` sends), and starting tasks for a user.

A batch carries many emits in one request, so an app streaming tokens to many users
costs one round trip per batch, not per token. Its emits are fire-and-forget like an
app's emits to a room: they are delivered to whoever is in the room now, and the
answer says per emit only whether it was accepted.
"""

from __future__ import annotations

import asyncio
from typing import Any

from rtctl import errors
from rtctl.hub.operator import Operator
from rtctl.hub.transport import user_room
from rtctl.server.router import Request, Response, Router

API = "/api/v1"
MAX_BATCH = 10_000
USER_SCHEMA = {"type": "object", "required": ["user"], "properties": {"user": {"type": "string"}}}


def declare_app_routes(r: Router, op: Operator) -> None:
    for action in ("join", "leave"):
        _membership_route(r, op, action)
    _task_route(r, op)

    @r.route(
        "POST",
        f"{API}/emit/batch",
        "Emit many events, each to a user, room or session; per emit ok or error",
        body={
            "type": "object",
            "required": ["emits"],
            "properties": {"emits": {"type": "array", "items": {"type": "object"}}},
        },
    )
    async def emit_batch(req: Request) -> Response:
        emits = req.json().get("emits")
        if not isinstance(emits, list) or len(emits) > MAX_BATCH:
            raise errors.UsageError(f"emits must be a list of at most {MAX_BATCH} objects")
        results: list[dict[str, Any]] = [{"ok": True}] * len(emits)
        by_sid = []
        for i, item in enumerate(emits):
            try:
                event, data, kind, target = _one_emit(item)
                if kind == "sid":
                    by_sid.append((i, event, data, target))
                else:
                    await op.emit_to_room(event, data, room=target)
            except errors.RtctlError as exc:
                results[i] = {"error": exc.to_dict()}
        if by_sid:  # each is a round trip to the session's node: all at once
            done = await asyncio.gather(
                *(op.emit(e, d, to=t) for _, e, d, t in by_sid), return_exceptions=True
            )
            for (i, *_), outcome in zip(by_sid, done, strict=True):
                if isinstance(outcome, errors.RtctlError):
                    results[i] = {"error": outcome.to_dict()}
                elif isinstance(outcome, BaseException):
                    raise outcome
        return Response.json({"results": results})


def _task_route(r: Router, op: Operator) -> None:
    @r.route(
        "POST",
        f"{API}/tasks",
        "Start a task for a user; its events go to the user's sessions",
        body={
            "type": "object",
            "required": ["kind", "user"],
            "properties": {
                "kind": {"type": "string"},
                "user": {"type": "string"},
                "item_id": {"type": "string"},
                "message_id": {"type": "string"},
                "payload": {"type": "object"},
            },
        },
    )
    async def start_task(req: Request) -> Response:
        body = req.json()
        if not isinstance(body.get("kind"), str) or not isinstance(body.get("user"), str):
            raise errors.UsageError("kind and user must be strings")
        task = await op.start_task(
            body["kind"], user_id=body["user"], item_id=body.get("item_id"),
            message_id=body.get("message_id"), payload=body.get("payload"),
        )  # fmt: skip
        return Response.json(task)


def _one_emit(item: Any) -> tuple[str, Any, str, str]:
    if not isinstance(item, dict):
        raise errors.UsageError("each emit must be an object")
    given = [k for k in ("user", "room", "sid") if item.get(k) is not None]
    if len(given) != 1 or not isinstance(item[given[0]], str):
        raise errors.UsageError("give exactly one of user, room or sid, as a string")
    kind, value = given[0], item[given[0]]
    event = item.get("event")
    if not isinstance(event, str):
        raise errors.UsageError("event must be a string")
    return event, item.get("data"), kind, user_room(value) if kind == "user" else value


def _membership_route(r: Router, op: Operator, action: str) -> None:
    verb = "in" if action == "join" else "out of"

    @r.route(
        "POST",
        f"{API}/rooms/{{room}}/{action}",
        f"Put every session of a user, on every node, {verb} a room",
        body=USER_SCHEMA,
    )
    async def membership(req: Request) -> Response:
        user = req.json().get("user")
        if not isinstance(user, str):
            raise errors.UsageError("user must be a string")
        result = await op.membership(req.params["room"], user_id=user, join=action == "join")
        return Response.json(result)
