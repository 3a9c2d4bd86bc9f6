"""The tasks of one node: start, run, stop, and their records in the state backend.

A task runs as an asyncio task. Its record is in the backend while it runs (the
owner refreshes it with its node heartbeat, so a dead owner's tasks leave every
listing within ``node_ttl``); stopping it cancels the asyncio task, which closes
whatever it holds (an upstream HTTP connection) at once, then tells the user's room
``chat:tasks:cancel``. The user's room gets ``chat:active {active}`` when the first
task of a chat starts and when its last one ends, deployment-wide.

A user runs at most ``max_tasks_per_user`` tasks across the deployment (counted from
the backend's listing); a task outlives its user's sessions and counts until it ends.

Stops reach a task through the owner's command channel (op ``tasks_stop``); a
durable stop intent in the backend covers an owner cut off from Redis for a moment:
it finds the intent on its next refresh.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from rtctl.auth import valid_id
from rtctl.config import Settings
from rtctl.errors import NotFound, RateLimited, RtctlError, UsageError
from rtctl.hub.peers import Command
from rtctl.hub.transport import Transport, user_room
from rtctl.state.base import StateBackend, TaskRecord

log = logging.getLogger("rtctl.tasks")

STOP_WAIT = 5.0  # seconds a stop waits for the cancelled task to finish its cleanup


@dataclass
class SoFar:
    """What a task has streamed, for a session that comes back for it (``task:resume``):
    the number of events sent (``seq``) and the reply's text (``content``)."""

    seq: int = 0
    content: str = ""
    done: bool = False
    deltas: bool = False  # text events carry only the new text (the starter asked)

    def add(self, type: str, data: Any) -> Any:
        """Count one event; an object payload goes out with its ``seq``."""
        self.seq += 1
        if not isinstance(data, dict):
            return data
        out = {**data, "seq": self.seq}
        if type == "chat:completion":
            before = self.content
            if isinstance(data.get("content"), str):
                self.content = data["content"]
            elif isinstance(data.get("delta"), str):
                self.content += data["delta"]
            self.done = self.done or data.get("done") is True
            if self.deltas and not self.done:
                if "delta" not in out and self.content.startswith(before):
                    out["delta"] = self.content[len(before) :]
                if "delta" in out:
                    out.pop("content", None)  # the text so far: quadratic over a reply
        return out


@dataclass
class TaskContext:
    """What a task kind's ``run(ctx)`` gets: who and what it runs for, and a way to
    stream events to the user's room (``events`` with ``chat_id`` and ``message_id``)."""

    id: str
    kind: str
    user_id: str
    item_id: str | None
    message_id: str | None
    data: dict[str, Any]
    settings: Settings
    _emit: Callable[[str, Any, str], Awaitable[None]] = field(repr=False)
    _so_far: SoFar = field(default_factory=SoFar, repr=False)

    async def emit(self, type: str, data: Any) -> None:
        """Send ``events`` ``{chat_id, message_id, task_id, data: {type, data}}`` to
        ``user:<id>``; an object ``data`` gains ``seq``, the event's number in the task's
        stream (two tasks of one chat, or of no chat, stay apart by ``task_id``)."""
        data = self._so_far.add(type, data)
        body: dict[str, Any] = {"task_id": self.id, "data": {"type": type, "data": data}}
        if self.item_id is not None:
            body["chat_id"] = self.item_id
        if self.message_id is not None:
            body["message_id"] = self.message_id
        await self._emit("events", body, user_room(self.user_id))


TaskKind = Callable[[TaskContext], Awaitable[None]]


@dataclass
class _Running:
    record: TaskRecord
    ctx: TaskContext
    task: asyncio.Task[None] | None = None
    stopping: bool = False


class _Turns:
    """One lock per user, kept while anyone holds or awaits it."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def of(self, user_id: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(user_id, (asyncio.Lock(), 0))
        self._locks[user_id] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[user_id]
            if users == 1:
                del self._locks[user_id]
            else:
                self._locks[user_id] = (lock, users - 1)


_NO_TURN = contextlib.nullcontext()


class TaskRunner:
    def __init__(
        self, state: StateBackend, transport: Transport, node_id: str, settings: Settings
    ) -> None:
        self.state = state
        self.transport = transport
        self.node_id = node_id
        self.settings = settings
        self.kinds: dict[str, TaskKind] = {}
        self._running: dict[str, _Running] = {}
        self._turns = _Turns()
        self.stop_intent_ttl = max(60.0, settings.node_ttl * 4)

    def register_kind(self, name: str, run: TaskKind) -> None:
        if not isinstance(name, str) or not name or len(name) > 64:
            raise UsageError("a task kind is named by 1 to 64 characters")
        self.kinds[name] = run

    def local(self) -> list[TaskRecord]:
        return [r.record for r in self._running.values()]

    def __len__(self) -> int:
        return len(self._running)

    async def start(
        self,
        kind: str,
        user_id: str,
        *,
        item_id: str | None = None,
        message_id: str | None = None,
        data: dict[str, Any] | None = None,
        deltas: bool = False,
    ) -> TaskRecord:
        run = self.kinds.get(kind)
        if run is None:
            raise UsageError(f"unknown task kind {kind!r}")
        # a user's starts on this node take their turn until each is among _running, so
        # concurrent ones cannot all take the last place under the cap
        async with self._turns.of(user_id) if self.settings.max_tasks_per_user else _NO_TURN:
            await self._within_quota(user_id)
            record = TaskRecord(uuid.uuid4().hex, kind, user_id, self.node_id, time.time(),
                                item_id, message_id)  # fmt: skip
            first = item_id is not None and not await self._item_busy(item_id)
            ctx = TaskContext(record.id, kind, user_id, item_id, message_id, dict(data or {}),
                              self.settings, self._emit, SoFar(deltas=deltas))  # fmt: skip
            running = _Running(record, ctx)
            self._running[record.id] = running  # before the backend: a refresh must keep it
        try:
            await self.state.add_task(record)
        except BaseException:
            self._running.pop(record.id, None)
            raise
        if first:
            await self._active(running, True)
        running.task = asyncio.create_task(self._run(running, run), name=f"task-{record.id}")
        return record

    async def _within_quota(self, user_id: str) -> None:
        """Refuse a start past ``max_tasks_per_user`` running tasks of the user across the
        deployment: their tasks as the backend lists them, and this node's (some may not
        be recorded yet). Tasks of a user with no session left count too."""
        limit = self.settings.max_tasks_per_user
        if not limit:
            return
        listed = await self.state.list_tasks()
        ids = {t.id for t in listed if t.user_id == user_id}
        ids |= {r.record.id for r in self._running.values() if r.record.user_id == user_id}
        count = len(ids)
        if count >= limit:
            raise RateLimited(
                f"user {user_id} already has {count} running tasks (limit {limit}); "
                "stop one or wait for one to end",
                code="too_many_tasks",
            )

    async def _item_busy(self, item_id: str, skip: str | None = None) -> bool:
        if any(r.record.item_id == item_id and r.record.id != skip
               for r in self._running.values()):  # fmt: skip
            return True
        try:
            found = await self.state.list_tasks(item_id=item_id)
        except RtctlError:
            return False
        return any(t.id != skip for t in found)

    async def _run(self, running: _Running, run: TaskKind) -> None:
        record = running.record
        limit = self.settings.task_timeout
        deadline = asyncio.timeout(limit or None)
        try:
            async with deadline:
                await run(running.ctx)
        except asyncio.CancelledError:
            if not running.stopping:
                raise
        except Exception as exc:
            if isinstance(exc, TimeoutError) and deadline.expired():
                log.warning("task %s (%s) of user %s ran past task_timeout (%gs); ended",
                            record.id, record.kind, record.user_id, limit)  # fmt: skip
                message = f"the task ran past task_timeout ({limit:g}s)"
            else:
                log.exception("task %s (%s) failed", record.id, record.kind)
                message = exc.message if isinstance(exc, RtctlError) else "the task failed"
            with contextlib.suppress(Exception):
                await running.ctx.emit("chat:message:error", {"error": {"content": message}})
        finally:
            self._running.pop(record.id, None)
            try:
                await self.state.remove_task(record.id, self.node_id)
            except Exception as exc:  # the next refresh removes it from the backend
                log.warning("could not remove task %s from the backend: %s", record.id, exc)
            if record.item_id is not None and not await self._item_busy(record.item_id):
                with contextlib.suppress(Exception):
                    await self._active(running, False)

    async def _emit(self, event: str, data: Any, to: str) -> None:
        await self.transport.emit(event, data, to=to)

    async def _active(self, running: _Running, active: bool) -> None:
        """Whether the chat has a running task; with the task's message_id, since an event
        about a chat carries both (Open WebUI drops one whose message it does not know)."""
        record = running.record
        data = {"type": "chat:active", "data": {"active": active}}
        body: dict[str, Any] = {"chat_id": record.item_id, "data": data}
        if running.ctx.message_id is not None:
            body["message_id"] = running.ctx.message_id
        await self._emit("events", body, user_room(record.user_id))

    def so_far(self, task_id: str) -> dict[str, Any] | None:
        """What one of this node's tasks has streamed: ``{task_id, chat_id, message_id,
        content, seq, done}``; None if it runs no such task."""
        running = self._running.get(task_id)
        if running is None:
            return None
        so_far = running.ctx._so_far
        return {"task_id": task_id, "chat_id": running.record.item_id,
                "message_id": running.ctx.message_id, "user_id": running.record.user_id,
                "content": so_far.content, "seq": so_far.seq, "done": so_far.done,
                "deltas": so_far.deltas}  # fmt: skip

    async def handle_so_far(self, command: Command) -> dict[str, Any]:
        """Op ``tasks_so_far {id}`` -> ``{so_far}`` (or ``not_found``)."""
        task_id = valid_id(command.get("id"), "task id")
        found = self.so_far(task_id)
        if found is None:
            raise NotFound(f"task {task_id} is not running")
        return {"so_far": found}

    async def stop(self, task_id: str) -> bool:
        """Cancel one of this node's tasks; False if it runs no such task."""
        running = self._running.get(task_id)
        if running is None or running.task is None or running.stopping:
            return False
        running.stopping = True
        running.task.cancel()  # it runs no further step but its cleanup: no token follows
        record = running.record
        body: dict[str, Any] = {"data": {"type": "chat:tasks:cancel",
                                         "data": {"task_id": record.id}}}  # fmt: skip
        if record.item_id is not None:
            body["chat_id"] = record.item_id
        if running.ctx.message_id is not None:
            body["message_id"] = running.ctx.message_id
        with contextlib.suppress(Exception):  # the cancel first, then the cleanup's chat:active
            await self._emit("events", body, user_room(record.user_id))
        await asyncio.wait({running.task}, timeout=STOP_WAIT)
        return True

    async def stop_all(self) -> int:
        """Stop every task of this node (draining); how many were stopped."""
        ids = list(self._running)
        done = await asyncio.gather(*(self.stop(t) for t in ids), return_exceptions=True)
        return sum(1 for d in done if d is True)

    async def refresh(self) -> None:
        """With the node heartbeat: keep this node's records, pick up stop intents."""
        await self.state.refresh_tasks(self.node_id, self.local())
        wanted = await self.state.take_stop_requests(self.node_id, list(self._running))
        for task_id in wanted:
            log.info("stopping task %s (a stop intent from while we were away)", task_id)
            await self.stop(task_id)

    async def handle_start(self, command: Command) -> dict[str, Any]:
        """Op ``tasks_start {kind, user, item_id?, message_id?, payload?}`` -> ``{task}``:
        the app starts a task for a user (its stream goes to the user's sessions)."""
        kind, payload = command.get("kind"), command.get("payload")
        if not isinstance(kind, str) or not kind:
            raise UsageError("kind must be a task kind's name")
        if payload is not None and not isinstance(payload, dict):
            raise UsageError("payload must be an object")
        item, message = command.get("item_id"), command.get("message_id")
        record = await self.start(
            kind, valid_id(command.get("user"), "user"),
            item_id=None if item is None else valid_id(item, "item"),
            message_id=None if message is None else valid_id(message, "message id"),
            data=payload,
        )  # fmt: skip
        return {"task": record.to_json()}

    async def handle_command(self, command: Command) -> dict[str, Any]:
        """Op ``tasks_stop {ids}`` -> ``{stopped: [...], not_found: [...]}``."""
        ids = command.get("ids")
        if not isinstance(ids, list):
            raise UsageError("tasks_stop needs ids")
        ids = [valid_id(t, "task id") for t in ids]
        stopped = [t for t in ids if await self.stop(t)]
        missing = [t for t in ids if t not in stopped]
        with contextlib.suppress(RtctlError):
            await self.state.take_stop_requests(self.node_id, ids)  # done: drop the intents
        return {"stopped": stopped, "not_found": missing}
