"""A small ASGI router for the admin API: JSON in, JSON out, and its OpenAPI document.

Routes are declared with a method, a path template (``/rooms/{room}``), a summary
and the shape of their body and query; the same declarations produce the OpenAPI
document, so the two cannot drift.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote

from rtctl.errors import PayloadTooLarge, UsageError

BODY_TIMEOUT = 10.0  # seconds to receive a whole request body
Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


@dataclass
class Request:
    method: str
    path: str
    params: dict[str, str]
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict[str, Any]:
        if not self.body:
            return {}
        try:
            data = json.loads(self.body, parse_constant=_reject_constant)
        except (ValueError, RecursionError):  # RecursionError: nesting deeper than Python's stack
            raise UsageError("request body is not valid JSON") from None
        if not isinstance(data, dict):
            raise UsageError("request body must be a JSON object")
        return data


def _reject_constant(name: str) -> Any:
    """``NaN`` and ``Infinity`` are not JSON, though Python's parser accepts them."""
    raise ValueError(f"{name} is not valid JSON")


@dataclass
class Response:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    # sends the body itself, piece by piece, until it is done or the client leaves
    stream: Callable[[Send, Receive], Awaitable[None]] | None = None

    @classmethod
    def json(cls, data: Any, status: int = 200) -> Response:
        return cls(status, json.dumps(data, separators=(",", ":")).encode())

    @classmethod
    def text(cls, text: str, status: int = 200, content_type: str = "text/plain") -> Response:
        return cls(status, text.encode(), f"{content_type}; charset=utf-8")


Handler = Callable[[Request], Awaitable[Response]]


@dataclass
class Route:
    method: str
    template: str
    handler: Handler
    summary: str
    public: bool
    query: dict[str, str]
    body: dict[str, Any] | None
    pattern: re.Pattern[str] = field(init=False)

    def __post_init__(self) -> None:
        regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", self.template)
        self.pattern = re.compile(f"^{regex}$")


class Router:
    def __init__(self, title: str, version: str, max_body: int) -> None:
        self.title, self.version, self.max_body = title, version, max_body
        self.routes: list[Route] = []

    def route(
        self,
        method: str,
        template: str,
        summary: str,
        *,
        public: bool = False,
        query: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
    ) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.routes.append(Route(method, template, handler, summary, public, query or {}, body))
            return handler

        return register

    def match(self, method: str, path: str) -> tuple[Route | None, dict[str, str], bool]:
        """(route, path params, whether the path exists under another method)."""
        path_exists = False
        for route in self.routes:
            m = route.pattern.match(path)
            if m:
                path_exists = True
                if route.method == method:
                    return route, {k: unquote(v) for k, v in m.groupdict().items()}, True
        return None, {}, path_exists

    async def read_request(self, scope: Scope, receive: Receive, params: dict[str, str]) -> Request:
        chunks: list[bytes] = []
        try:
            # a body that never completes must not hold a handler (or a drain) forever
            async with asyncio.timeout(BODY_TIMEOUT):
                await self._read_body(receive, chunks)
        except TimeoutError:
            raise UsageError(f"request body not received within {BODY_TIMEOUT:g}s") from None
        query = {
            k: v[-1] for k, v in parse_qs(scope.get("query_string", b"").decode("latin-1")).items()
        }
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        return Request(scope["method"], scope["path"], params, query, headers, b"".join(chunks))

    async def _read_body(self, receive: Receive, chunks: list[bytes]) -> None:
        size = 0
        while True:
            message = await receive()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                raise PayloadTooLarge(f"request body is larger than {self.max_body} bytes")
            chunks.append(chunk)
            if not message.get("more_body"):
                return

    def openapi(self) -> dict[str, Any]:
        paths: dict[str, Any] = {}
        for r in self.routes:
            op: dict[str, Any] = {"summary": r.summary, "responses": {"200": {"description": "OK"}}}
            params = [
                {"name": n, "in": "path", "required": True, "schema": {"type": "string"}}
                for n in r.pattern.groupindex
            ]
            params += [
                {"name": n, "in": "query", "required": False, "schema": {"type": t}}
                for n, t in r.query.items()
            ]
            if params:
                op["parameters"] = params
            if r.body is not None:
                op["requestBody"] = {
                    "required": True,
                    "content": {"application/json": {"schema": r.body}},
                }
            if not r.public:
                op["security"] = [{"bearer": []}]
                op["responses"]["401"] = {"description": "missing or wrong admin token"}
            paths.setdefault(r.template, {})[r.method.lower()] = op
        return {
            "openapi": "3.0.3",
            "info": {"title": self.title, "version": self.version},
            "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
            "paths": paths,
        }


async def send_response(send: Send, response: Response, receive: Receive | None = None) -> None:
    if response.stream is not None and receive is not None:
        headers = [(b"content-type", response.content_type.encode()), *response.headers]
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        await response.stream(send, receive)
        with contextlib.suppress(Exception):  # a client that stopped reading: not waited on
            await asyncio.wait_for(
                send({"type": "http.response.body", "body": b"", "more_body": False}), 1.0
            )
        return
    headers = [
        (b"content-type", response.content_type.encode()),
        (b"content-length", str(len(response.body)).encode()),
        *response.headers,
    ]
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": response.body})
