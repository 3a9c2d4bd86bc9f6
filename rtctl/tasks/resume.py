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
from rtctl.hub.peers import Peers, raise_for_error
from rtctl.hub.sessions import SessionPool
from rtctl.state.base import StateBackend, TaskRecord
from rtctl.tasks.runner import TaskRunner

ASK_TIMEOUT = 5.0  # seconds the owning node has to say what its task streamed


class TaskResume:
    def __init__(
        self, runner: TaskRunner, pool: SessionPool, state: StateBackend, peers: Peers
    ) -> None:
        self.runner, self.pool, self.state, self.peers = runner, pool, state, peers

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
        so_far = await self.so_far(record)
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

    async def so_far(self, record: TaskRecord) -> dict[str, Any]:
        """What the task has streamed, asked of the node that runs it."""
        if record.node == self.runner.node_id:
            local = self.runner.so_far(record.id)
            if local is None:
                raise NotFound(f"task {record.id} has ended")
            return local
        reply = await self.peers.request(record.node, "tasks_so_far", {"id": record.id},
                                         ASK_TIMEOUT)  # fmt: skip
        if reply is None:
            raise NotFound(f"task {record.id} has ended: its node is gone")
        so_far = raise_for_error(reply).get("so_far")
        if not isinstance(so_far, dict):
            raise NotFound(f"task {record.id} has ended")
        return so_far
