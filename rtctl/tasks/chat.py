"""The ``chat:completion`` client event and the built-in chat kinds.

``echo`` streams the last user message back word by word (every ``echo_delay``
seconds); ``chat:completion`` relays an OpenAI-compatible upstream
(``POST {upstream_url}/chat/completions`` with ``stream: true``), parsing its
Server-Sent Events. Both send ``events`` of type ``chat:completion`` with
``{content, delta}`` (``content`` is the text so far) and end with ``{done: true,
content}``; an upstream failure is a ``chat:message:error`` event, never a silent hang
(connect and idle timeouts bound every wait).
"""

from __future__ import annotations

import asyncio
import codecs
import json
import re
from typing import Any

from rtctl.errors import OperationFailed, UsageError
from rtctl.hub import payload as p
from rtctl.hub.sessions import SessionPool
from rtctl.tasks.http import UpstreamError, post_stream, sse_events
from rtctl.tasks.runner import TaskContext, TaskRunner

ECHO = "echo"
UPSTREAM = "chat:completion"
MAX_MESSAGES = 1000
MAX_MODEL = 256
UPSTREAM_CONNECT_TIMEOUT = 10.0
UPSTREAM_IDLE_TIMEOUT = 120.0  # seconds without a byte from the upstream before giving up


def _text(content: Any) -> str:
    """A message's text: a string, or the text parts of a list of parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(part.get("text", "")) for part in content
            if isinstance(part, dict) and part.get("type") == "text"
        )  # fmt: skip
    return ""


async def echo(ctx: TaskContext) -> None:
    messages = ctx.data.get("messages") or []
    last = next((m for m in reversed(messages) if isinstance(m, dict)
                 and m.get("role") == "user"), None)  # fmt: skip
    text = _text(last.get("content")) if last else ""
    content = ""
    for word in re.findall(r"\S+\s*", text):
        await asyncio.sleep(ctx.settings.echo_delay)
        content += word
        await ctx.emit("chat:completion", {"content": content, "delta": word})
    await ctx.emit("chat:completion", {"done": True, "content": content})


async def upstream(ctx: TaskContext) -> None:
    s = ctx.settings
    url = s.upstream_url.rstrip("/") + "/chat/completions"
    body = json.dumps({"model": ctx.data.get("model"), "messages": ctx.data.get("messages"),
                       "stream": True}).encode()  # fmt: skip
    headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
    if s.upstream_api_key:
        headers["Authorization"] = f"Bearer {s.upstream_api_key}"
    content = ""
    try:
        async with post_stream(url, body, headers, connect_timeout=UPSTREAM_CONNECT_TIMEOUT,
                               idle_timeout=UPSTREAM_IDLE_TIMEOUT) as response:  # fmt: skip
            if response.status != 200:
                detail = (await response.read(2000)).decode(errors="replace")
                raise UpstreamError(f"the upstream answered HTTP {response.status}: "
                                    f"{_error_text(detail)}")  # fmt: skip
            buffer, finished = "", False
            # a character's bytes may be split across reads: decode them as one stream
            decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
            async for chunk in response.chunks():
                buffer += decoder.decode(chunk)
                events, buffer = sse_events(buffer)
                for event in events:
                    if event == "[DONE]":
                        finished = True
                        break
                    delta = _delta(event)
                    if delta:
                        content += delta
                        await ctx.emit("chat:completion", {"content": content, "delta": delta})
                if finished:
                    break
            if not finished and not content:
                raise UpstreamError("the upstream ended the stream without an answer")
    except UpstreamError as exc:
        await ctx.emit("chat:message:error", {"error": {"content": exc.message}})
        return
    await ctx.emit("chat:completion", {"done": True, "content": content})


def _delta(event: str) -> str:
    try:
        chunk = json.loads(event)
    except ValueError:
        return ""
    if isinstance(chunk, dict) and isinstance(chunk.get("error"), dict | str):
        error = chunk["error"]
        raise UpstreamError(str(error.get("message", error) if isinstance(error, dict) else error))
    try:
        piece = chunk["choices"][0]["delta"].get("content")
    except (KeyError, IndexError, TypeError, AttributeError):
        return ""
    return piece if isinstance(piece, str) else ""


def _error_text(body: str) -> str:
    try:
        data = json.loads(body)
        error = data.get("error") if isinstance(data, dict) else None
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
    except ValueError:
        pass
    return " ".join(body.split())[:300] or "(no body)"


class ChatCompletions:
    """The ``chat:completion`` client event: picks the kind by model and starts a task."""

    def __init__(self, runner: TaskRunner, pool: SessionPool) -> None:
        self.runner = runner
        self.pool = pool
        self.models: dict[str, str] = {ECHO: ECHO}  # model -> kind (apps add theirs)
        runner.register_kind(ECHO, echo)
        runner.register_kind(UPSTREAM, upstream)

    def kind_for(self, model: str) -> str:
        kind = self.models.get(model)
        if kind is not None:
            return kind
        if not self.runner.settings.upstream_url:
            raise OperationFailed(
                f"model {model!r} needs an upstream and none is configured "
                "(set RTCTL_UPSTREAM_URL), or use model 'echo'",
                code="no_upstream",
            )
        return UPSTREAM

    async def handle(self, sid: str, data: Any) -> dict[str, Any]:
        body = p.obj(data)
        chat_id = p.ident(body, "chat_id")
        message_id = p.opt_ident(body, "message_id")
        model = body.get("model")
        if not isinstance(model, str) or not model or len(model) > MAX_MODEL:
            raise UsageError(f"model must be a name of 1 to {MAX_MODEL} characters")
        messages = body.get("messages")
        if (not isinstance(messages, list) or not messages or len(messages) > MAX_MESSAGES
                or not all(isinstance(m, dict) for m in messages)):  # fmt: skip
            raise UsageError(f"messages must be a list of 1 to {MAX_MESSAGES} objects")
        if body.get("stream", True) is not True:
            raise UsageError("only streaming completions are supported (stream: true)")
        deltas = body.get("deltas", False)
        if not isinstance(deltas, bool):
            raise UsageError("deltas must be true or false")
        identity = self.pool.identity(sid)
        kind = self.kind_for(model)
        record = await self.runner.start(
            kind, identity.user_id, item_id=chat_id, message_id=message_id,
            data={"model": model, "messages": messages, "sid": sid}, deltas=deltas,
        )  # fmt: skip
        return {"task_id": record.id}

    def events(self) -> dict[str, Any]:
        return {"chat:completion": self.handle}
