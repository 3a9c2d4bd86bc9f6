"""A local OpenAI-compatible upstream for tests: streams slowly, records its clients.

``POST /v1/chat/completions`` answers Server-Sent Events, one word of the last user
message every ``delay`` seconds; a request whose last message is ``fail`` gets HTTP
500. ``disconnected`` records when a client hung up mid-stream.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from aiohttp import web

from tests.conftest import free_port


class Upstream:
    def __init__(self, delay: float = 0.1, words: int = 200) -> None:
        self.delay, self.words = delay, words
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.disconnected: list[float] = []
        self.finished = 0
        self.port = free_port()
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def start(self) -> Upstream:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._complete)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _complete(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(body)
        self.headers.append(dict(request.headers))
        last = body["messages"][-1]["content"]
        if last == "fail":
            return web.json_response({"error": {"message": "model overloaded"}}, status=500)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        try:
            for i in range(self.words):
                chunk = {"choices": [{"delta": {"content": f"w{i} "}}]}
                await response.write(f"data: {json.dumps(chunk)}\n\n".encode())
                await asyncio.sleep(self.delay)
                if request.transport is None or request.transport.is_closing():
                    raise ConnectionResetError
            await response.write(b"data: [DONE]\n\n")
            self.finished += 1
        except (ConnectionResetError, asyncio.CancelledError):
            self.disconnected.append(time.monotonic())
            raise
        return response
