"""The admin HTTP API, health probes and metrics, served beside Socket.IO.

Every ``/api/v1`` route needs ``Authorization: Bearer <admin token>`` (compared in
constant time). Errors are ``{"error": {"code", "message"}}`` with the status below.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from rtctl import errors
from rtctl._version import __version__
from rtctl.docs.operator import EXPORT_CONTENT_TYPES, EXPORT_FORMATS, DocOperator, export_format
from rtctl.hub.operator import Operator
from rtctl.hub.transport import user_room
from rtctl.server.admin_app import declare_app_routes
from rtctl.server.logs import audit, kept
from rtctl.server.metrics import Metrics
from rtctl.server.router import Receive, Request, Response, Router, Scope, Send, send_response

log = logging.getLogger("rtctl.admin")

# One table: error class -> HTTP status (most specific first).
HTTP_STATUS: list[tuple[type[errors.RtctlError], int]] = [
    (errors.PayloadTooLarge, 413),
    (errors.RateLimited, 429),
    (errors.UsageError, 400),
    (errors.ConfigError, 400),
    (errors.Forbidden, 403),
    (errors.AuthError, 401),
    (errors.NotFound, 404),
    (errors.OperationFailed, 409),
    (errors.BackendUnavailable, 503),
]

API = "/api/v1"
# The app's own traffic (its emits, its tasks), not operators' actions: not audited
DATA_PLANE = frozenset({f"{API}/emit/batch", f"{API}/tasks"})
FLAG_VALUES = {"1": True, "true": True, "0": False, "false": False}
TARGET_SCHEMA = {"user": {"type": "string"}, "room": {"type": "string"}, "sid": {"type": "string"}}


def error_response(exc: errors.RtctlError) -> Response:
    status = next((s for cls, s in HTTP_STATUS if isinstance(exc, cls)), 500)
    return Response.json({"error": exc.to_dict()}, status)


def _target(body: dict[str, Any]) -> str:
    given = [k for k in ("user", "room", "sid") if body.get(k) is not None]
    if len(given) != 1:
        raise errors.UsageError("give exactly one of user, room or sid")
    key = given[0]
    value = body[key]
    if not isinstance(value, str):
        raise errors.UsageError(f"{key} must be a string")
    return user_room(value) if key == "user" else value


def _flag(query: dict[str, str], key: str) -> bool:
    """A boolean query parameter: absent, ``0``/``false`` or ``1``/``true``."""
    value = query.get(key, "0").lower()
    if value not in FLAG_VALUES:
        raise errors.UsageError(f"{key} must be 1 or 0 (true or false)")
    return FLAG_VALUES[value]


def _str_list(body: dict[str, Any], key: str) -> list[str]:
    value = body.get(key)
    if (
        not isinstance(value, list)
        or not all(isinstance(v, str) for v in value)
        or len(value) > 10_000
    ):
        raise errors.UsageError(f"{key} must be a list of at most 10000 strings")
    return value


def _audit(scope: Scope, template: str, request: Request | None, response: Response) -> None:
    """Who did what through the admin API, and how it went (rtctl.server.logs)."""
    client = scope.get("client") or ("?", 0)
    body: Any = None
    if request is not None:
        try:
            body = request.json()
        except errors.RtctlError:
            body = None
    target = {**request.params, **kept(body)} if request is not None else {}
    result = "ok" if response.status < 400 else f"HTTP {response.status}"
    audit(f"admin API {client[0]}:{client[1]}", f"{scope['method']} {template}", target, result)


class AdminApp:
    def __init__(
        self,
        operator: Operator,
        node_id: str,
        metrics: Metrics,
        admin_token: str,
        ready: Callable[[], tuple[bool, str]],
        max_body: int,
        cleanup: Callable[[bool], Awaitable[dict[str, Any]]],
        docs: DocOperator,
    ) -> None:
        self.operator, self.node_id, self.cleanup = operator, node_id, cleanup
        self.docs = docs
        self.metrics, self.ready = metrics, ready
        self._token = admin_token.encode()
        self.router = Router("rtctl admin API", __version__, max_body)
        self._declare()
        self._declare_docs()
        declare_app_routes(self.router, operator)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return  # lifespan is handled by the Socket.IO ASGI app; websockets never land here
        # Match the undecoded path, so an encoded '/' in a room name stays in its segment;
        # the router decodes each path parameter once.
        raw_path = scope.get("raw_path")
        path = raw_path.decode("latin-1") if raw_path else scope["path"]
        route, params, path_exists = self.router.match(scope["method"], path)
        if route is None:
            code, status = ("method_not_allowed", 405) if path_exists else ("no_route", 404)
            message = "method not allowed" if path_exists else "no such route"
            await send_response(
                send, Response.json({"error": {"code": code, "message": message}}, status)
            )
            return
        if not route.public and not self._authorized(scope):
            # from the headers alone: a client without the token never makes us hold a body
            # (the server discards the rest of the body as it arrives, holding none of it;
            # closing at once would reset the connection under a client still sending,
            # and it would never read this answer)
            await send_response(
                send, error_response(errors.AuthError("missing or wrong admin token"))
            )
            return
        request = None
        try:
            request = await self.router.read_request(scope, receive, params)
            response = await route.handler(request)
        except errors.RtctlError as exc:
            response = error_response(exc)
        except Exception:
            log.exception("admin API %s %s failed", scope.get("method"), scope.get("path"))
            response = Response.json(
                {"error": {"code": "internal", "message": "internal error"}}, 500
            )
        if route.method != "GET" and route.template not in DATA_PLANE:
            _audit(scope, route.template, request, response)
        await send_response(send, response, receive)

    def _authorized(self, scope: Scope) -> bool:
        """Whether the request's ``Authorization`` header carries the admin token."""
        header = next((v for k, v in scope["headers"] if k.lower() == b"authorization"), b"")
        scheme, _, token = header.partition(b" ")
        return scheme.lower() == b"bearer" and hmac.compare_digest(token.strip(), self._token)

    def _declare(self) -> None:
        """The probes, the reads and the operator's actions (documents, tokens and the
        app's routes have declarations of their own)."""
        self._declare_probes()
        self._declare_reads()
        self._declare_kick()
        self._declare_actions()
        self._declare_tasks()

    def _declare_probes(self) -> None:
        """Health, readiness, metrics and the OpenAPI document: public."""
        r, op = self.router, self.operator

        @r.route("GET", "/healthz", "Liveness: 200 while the process runs", public=True)
        async def healthz(req: Request) -> Response:
            return Response.json({"status": "ok"})

        @r.route(
            "GET",
            "/readyz",
            "Readiness: 200 when accepting clients and the backend answers",
            public=True,
        )
        async def readyz(req: Request) -> Response:
            ok, reason = self.ready()
            if ok:
                try:
                    await op.state.ping()
                except errors.BackendUnavailable as exc:
                    ok, reason = False, exc.message
            return Response.json(
                {"status": "ready" if ok else "unavailable", "reason": reason}, 200 if ok else 503
            )

        @r.route("GET", "/metrics", "Prometheus metrics", public=True)
        async def metrics(req: Request) -> Response:
            return Response.text(self.metrics.render(), content_type="text/plain; version=0.0.4")

        @r.route("GET", f"{API}/openapi.json", "This document", public=True)
        async def openapi(req: Request) -> Response:
            return Response.json(r.openapi())

    def _declare_reads(self) -> None:
        """The deployment as it is."""
        r, op = self.router, self.operator

        @r.route("GET", f"{API}/status", "Health of the deployment")
        async def status(req: Request) -> Response:
            ok, reason = self.ready()
            nodes = await op.nodes()
            return Response.json(
                {
                    "ready": ok,
                    "reason": reason,
                    "backend": op.state.name,
                    "version": __version__,
                    "node": self.node_id,
                    "nodes": [n.to_json() for n in nodes],
                    "sessions": sum(n.sessions for n in nodes),
                    "users": len(await op.online_users()),
                    "rooms": len(await op.rooms_list()),
                }
            )

        @r.route("GET", f"{API}/nodes", "Daemons of the deployment")
        async def nodes(req: Request) -> Response:
            return Response.json([n.to_json() for n in await op.nodes()])

        @r.route(
            "GET",
            f"{API}/sessions",
            "Sessions, optionally of one user or room",
            query={"user": "string", "room": "string"},
        )
        async def sessions(req: Request) -> Response:
            found = await op.sessions(user_id=req.query.get("user"), room=req.query.get("room"))
            return Response.json([s.to_json() for s in found])

    def _declare_kick(self) -> None:
        """Disconnecting sessions."""
        r, op = self.router, self.operator

        @r.route(
            "POST",
            f"{API}/sessions/kick",
            "Disconnect sessions by id or all of a user's",
            body={
                "type": "object",
                "properties": {"sids": {"type": "array"}, "user": {"type": "string"}},
            },
        )
        async def kick(req: Request) -> Response:
            body = req.json()
            if ("sids" in body) == ("user" in body):
                raise errors.UsageError("give exactly one of sids or user")
            if "user" in body:
                if not isinstance(body["user"], str):
                    raise errors.UsageError("user must be a string")
                return Response.json(await op.kick(user_id=body["user"]))
            return Response.json(await op.kick(sids=_str_list(body, "sids")))

        @r.route("GET", f"{API}/users/online", "Users with at least one session")
        async def users_online(req: Request) -> Response:
            return Response.json([u.to_json() for u in await op.online_users()])

        @r.route("GET", f"{API}/rooms", "Rooms and their member counts")
        async def rooms(req: Request) -> Response:
            return Response.json([room.to_json() for room in await op.rooms_list()])

        @r.route("GET", f"{API}/rooms/{{room}}/members", "Sessions in a room")
        async def room_members(req: Request) -> Response:
            return Response.json([s.to_json() for s in await op.room_members(req.params["room"])])

        @r.route("GET", f"{API}/usage", "Models in use and by which sessions")
        async def usage(req: Request) -> Response:
            return Response.json([u.to_json() for u in await op.usage()])

    def _declare_actions(self) -> None:
        """Emits and server-to-client calls."""
        r, op = self.router, self.operator

        @r.route(
            "POST",
            f"{API}/emit",
            "Emit an event to a user, room or session",
            body={
                "type": "object",
                "required": ["event"],
                "properties": {"event": {"type": "string"}, "data": {}, **TARGET_SCHEMA},
            },
        )
        async def emit(req: Request) -> Response:
            body = req.json()
            target = _target(body)
            count = await op.emit(body.get("event"), body.get("data"), to=target)  # type: ignore[arg-type]
            return Response.json({"event": body["event"], "to": target, "sessions": count})

        @r.route(
            "POST",
            f"{API}/call",
            "Call a session (server-to-client RPC) and return its reply",
            body={
                "type": "object",
                "required": ["event", "sid"],
                "properties": {
                    "event": {"type": "string"},
                    "sid": {"type": "string"},
                    "data": {},
                    "timeout": {"type": "number"},
                },
            },
        )
        async def call(req: Request) -> Response:
            body = req.json()
            timeout = body.get("timeout")
            if timeout is not None and (
                isinstance(timeout, bool) or not isinstance(timeout, int | float)
            ):
                raise errors.UsageError("timeout must be a number of seconds")
            if not isinstance(body.get("sid"), str):
                raise errors.UsageError("sid must be a string")
            reply = await op.call(body["sid"], body.get("event"), body.get("data"), timeout)  # type: ignore[arg-type]
            return Response.json({"sid": body["sid"], "reply": reply})

    def _declare_tasks(self) -> None:
        """Removing dead nodes' leftovers, and tasks: list and stop."""
        r, op = self.router, self.operator

        @r.route(
            "POST",
            f"{API}/pool/cleanup",
            "Remove dead nodes' sessions now (or count them, with dry_run)",
            body={"type": "object", "properties": {"dry_run": {"type": "boolean"}}},
        )
        async def cleanup(req: Request) -> Response:
            dry_run = req.json().get("dry_run", False)
            if not isinstance(dry_run, bool):
                raise errors.UsageError("dry_run must be true or false")
            return Response.json(await self.cleanup(dry_run))

        @r.route(
            "GET",
            f"{API}/tasks",
            "Running tasks on every node, optionally of one item (chat)",
            query={"item": "string"},
        )
        async def tasks(req: Request) -> Response:
            found = await op.tasks(item_id=req.query.get("item"))
            return Response.json([t.to_json() for t in found])

        @r.route(
            "POST",
            f"{API}/tasks/stop",
            "Stop tasks by id, of one item, or all; per id stopped, not-found, owner-gone"
            " or pending",
            body={
                "type": "object",
                "properties": {
                    "ids": {"type": "array"},
                    "item": {"type": "string"},
                    "all": {"type": "boolean"},
                },
            },
        )
        async def tasks_stop(req: Request) -> Response:
            body = req.json()
            given = [k for k in ("ids", "item", "all") if k in body]
            if len(given) != 1:
                raise errors.UsageError("give exactly one of ids, item or all")
            if "all" in body:
                if body["all"] is not True:
                    raise errors.UsageError("all must be true")
                results = await op.stop_tasks(all_tasks=True)
            elif "item" in body:
                if not isinstance(body["item"], str):
                    raise errors.UsageError("item must be a string")
                results = await op.stop_tasks(item_id=body["item"])
            else:
                results = await op.stop_tasks(_str_list(body, "ids"))
            return Response.json({"results": results})

    def _declare_docs(self) -> None:
        r, docs = self.router, self.docs

        @r.route("GET", f"{API}/docs", "Collaborative documents and the sessions in each")
        async def docs_list(req: Request) -> Response:
            return Response.json(await docs.list())

        @r.route(
            "POST",
            f"{API}/docs/compact",
            "Fold documents' update logs into their snapshots",
            body={
                "type": "object",
                "properties": {"ids": {"type": "array"}, "all": {"type": "boolean"}},
            },
        )
        async def docs_compact(req: Request) -> Response:
            body = req.json()
            if ("ids" in body) == ("all" in body):
                raise errors.UsageError("give exactly one of ids or all")
            if "all" in body:
                if body["all"] is not True:
                    raise errors.UsageError("all must be true")
                return Response.json({"results": await docs.compact(all_docs=True)})
            ids = _str_list(body, "ids")
            if not ids:
                raise errors.UsageError("ids must name at least one document")
            return Response.json({"results": await docs.compact(ids)})

        @r.route("GET", f"{API}/docs/{{id}}", "One document and the sessions in it")
        async def docs_info(req: Request) -> Response:
            return Response.json(await docs.info(req.params["id"]))

        @r.route(
            "GET",
            f"{API}/docs/{{id}}/export",
            f"A document's whole state as {', '.join(EXPORT_FORMATS)} (default update)",
            query={"format": "string"},
        )
        async def docs_export(req: Request) -> Response:
            fmt = export_format(req.query.get("format", "update"))
            data = await docs.export(req.params["id"], fmt)
            return Response(200, data, EXPORT_CONTENT_TYPES[fmt])

        @r.route(
            "DELETE",
            f"{API}/docs/{{id}}",
            "Delete a document nobody is in (or check that it could be, with dry_run=1)",
            query={"dry_run": "boolean"},
        )
        async def docs_delete(req: Request) -> Response:
            dry_run = _flag(req.query, "dry_run")
            return Response.json(await docs.delete(req.params["id"], dry_run=dry_run))
