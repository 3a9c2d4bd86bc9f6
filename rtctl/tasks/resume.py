"""``task:resume``: a session that was not there (a page reload, another device, a
reconnect to another node) picks up a running task's stream.

Every event a task sends carries ``seq``, its number in the task's stream. The session
asks by ``task_id`` or ``chat_id`` and gets in the ack what the task has streamed so far
(``content``, ``seq``), from whichever node runs it. It is in its user's room already,
so the live tail reaches it too: a client keeps the ack's text and applies only events
whose ``seq`` is above the ack's; nothing is missing and nothing counts twice, whatever
order the ack and the first live events arrive in.
"""

from __future__ import annotations

from typing import Any

from rtctl.errors import NotFound, UsageError
from rtctl.hub import payload as p
from rtctl.hub.operator import Operator
from rtctl.hub.sessions import SessionPool
from rtctl.state.base import TaskRecord


class TaskResume:
    def __init__(self, pool: SessionPool, operator: Operator) -> None:
        self.pool, self.operator, self.state = pool, operator, operator.state

    def events(self) -> dict[str, Any]:
        return {"task:resume": self.handle}

    async def handle(self, sid: str, data: Any) -> dict[str, Any]:
        """``{task_id}`` or ``{chat_id}`` -> ``{task_id, chat_id, message_id, content,
        seq, done}``; ``not_found`` when the user runs no such task (any more)."""
        body = p.obj(data)
        task_id, chat_id = p.opt_ident(body, "task_id"), p.opt_ident(body, "chat_id")
        if (task_id is None) == (chat_id is None):
            raise UsageError("task:resume needs task_id or chat_id, not both")
        user_id = self.pool.identity(sid).user_id
        record = await self._find(user_id, task_id, chat_id)
        so_far = await self.operator.task_so_far(record.id)  # asked of the node running it
        so_far.pop("user_id", None)
        return so_far

    async def _find(self, user_id: str, task_id: str | None, chat_id: str | None) -> TaskRecord:
        if task_id is not None:
            found = await self.state.find_task(task_id)
            if found is not None and found[1] and found[0].user_id == user_id:
                return found[0]
            raise NotFound(f"no running task {task_id} of yours")
        mine = [t for t in await self.state.list_tasks(item_id=chat_id) if t.user_id == user_id]
        if not mine:
            raise NotFound(f"no running task for chat {chat_id}")
        return max(mine, key=lambda t: t.started_at)  # the newest: the reply being written
