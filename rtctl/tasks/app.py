"""The public API for apps embedding the hub: ``rtctl serve --app module:attr``.

``attr`` is called once at start-up with an ``App``, before the daemon listens::

    # myapp.py                           rtctl serve --app myapp:setup
    import rtctl

    async def shout(ctx: rtctl.TaskContext) -> None:
        for word in ctx.data["text"].split():
            await ctx.emit("chat:completion", {"delta": word.upper()})
        await ctx.emit("chat:completion", {"done": True})

    def setup(app: rtctl.App) -> None:
        app.task_kind("shout", shout, models=["shout"])   # chat:completion with model "shout"

        async def on_poke(sid: str, user: rtctl.Identity, data: object) -> dict:
            task_id = await app.start_task("shout", user.user_id, item_id="chat-1",
                                           data={"text": str(data)})
            return {"task_id": task_id}

        app.event("app:poke", on_poke)

A task kind is ``async run(ctx: TaskContext)``: it streams with ``ctx.emit(type, data)``
and is cancelled (``asyncio.CancelledError``) when stopped; the hub records, lists
and stops it like any other. An event handler answers the client's ack; raising an
``rtctl.RtctlError`` refuses the event with its code.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any

from rtctl.errors import ConfigError, UsageError
from rtctl.hub import payload
from rtctl.tasks.runner import TaskKind, TaskRunner

if TYPE_CHECKING:
    from rtctl.auth import Identity
    from rtctl.hub.sessions import SessionPool
    from rtctl.hub.transport import Transport
    from rtctl.tasks.chat import ChatCompletions

AppEventHandler = Callable[[str, "Identity", Any], Awaitable[Any]]
BUILTIN_EVENTS = frozenset({
    "user-join", "heartbeat", "channel:join", "channel:leave", "join-channels",
    "events:channel", "usage", "chat:completion",
})  # fmt: skip


class App:
    """What an app may do with the hub it is loaded into."""

    def __init__(
        self,
        runner: TaskRunner,
        chat: ChatCompletions,
        pool: SessionPool,
        transport: Transport,
        register_event: Callable[[str, Callable[[str, Any], Awaitable[Any]]], None],
    ) -> None:
        self._runner, self._chat, self._pool = runner, chat, pool
        self._transport, self._register_event = transport, register_event

    def task_kind(self, name: str, run: TaskKind, *, models: Iterable[str] = ()) -> None:
        """Register a task kind; ``chat:completion`` with one of ``models`` starts it."""
        if name in self._runner.kinds:
            raise UsageError(f"task kind {name!r} is already registered")
        self._runner.register_kind(name, run)
        for model in models:
            self._chat.models[model] = name

    def event(self, name: str, handler: AppEventHandler) -> None:
        """Serve a client event: ``handler(sid, identity, data)`` returns the ack."""
        payload.event_name(name)
        if name in BUILTIN_EVENTS or name.startswith("ydoc:"):
            raise UsageError(f"event {name!r} is the hub's own")

        async def handle(sid: str, data: Any) -> Any:
            return await handler(sid, self._pool.identity(sid), data)

        self._register_event(name, handle)

    async def start_task(
        self,
        kind: str,
        user_id: str,
        *,
        item_id: str | None = None,
        message_id: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> str:
        """Start a task on this node for ``user_id``; returns its id."""
        record = await self._runner.start(kind, user_id, item_id=item_id,
                                          message_id=message_id, data=data)  # fmt: skip
        return record.id

    async def stop_task(self, task_id: str) -> bool:
        """Stop one of this node's tasks; False if it runs no such task."""
        return await self._runner.stop(task_id)

    async def emit(self, event: str, data: Any, *, to: str) -> None:
        """Emit to a room (``user:<id>``, ``channel:<id>``) or a session id, anywhere."""
        await self._transport.emit(payload.event_name(event), data, to=to)


def load_app(spec: str, app: App) -> None:
    """Import ``module:attr`` and call it with ``app`` (ConfigError if that fails)."""
    module_name, _, attr = spec.partition(":")
    try:
        target = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"app: cannot load {spec!r}: {exc}") from None
    if not callable(target):
        raise ConfigError(f"app: {spec!r} is not callable")
    result = target(app)
    if inspect.isawaitable(result):
        if inspect.iscoroutine(result):
            result.close()
        raise ConfigError(f"app: {spec!r} must be a plain function, not a coroutine")
