"""A local OpenAI-compatible upstream for tests: streams slowly, records its clients.

``POST /v1/chat/completions`` answers Server-Sent Events, one word of the last user
message every ``delay`` seconds; a request whose last message is ``fail`` gets HTTP
500; one whose last message starts with ``bytes:`` gets the rest of it back as raw
UTF-8 (not JSON's ``\\u`` escapes), one byte per write, so multi-byte characters
arrive split across reads. ``disconnected`` records when a client hung up mid-stream.
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
        if last.startswith("bytes:"):
            await self._byte_by_byte(response, last.removeprefix("bytes:"))
            return response
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

    async def _byte_by_byte(self, response: web.StreamResponse, text: str) -> None:
        stream = b""
        for word in text.split(" "):
            chunk = {"choices": [{"delta": {"content": word + " "}}]}
            stream += f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n".encode()
        for i in range(len(stream)):
            await response.write(stream[i : i + 1])  # one HTTP chunk, one read, per byte
            await asyncio.sleep(0.002)
        await response.write(b"data: [DONE]\n\n")
        self.finished += 1
