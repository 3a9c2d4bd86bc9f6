"""The Python client: what an app's backend uses instead of an in-process Socket.IO
server (SPEC §9).

``AsyncClient(url=...)`` talks to a daemon's admin API; ``AsyncClient(redis_url=...)``
works straight on the deployment's Redis, with no daemon on hand. ``Client`` is the
same, blocking (it runs an ``AsyncClient`` on a loop of its own, in a thread)::

    from rtctl import Client

    hub = Client(url="http://127.0.0.1:7480", admin_token=TOKEN)
    hub.emit("events", {"chat_id": c, "message_id": m, "data": {...}}, user=user_id)
    hub.join(f"channel:{channel_id}", user=user_id)

An emit to a user or room returns once queued; emits go out in order, hundreds per
round trip (one request, or one Redis script call), and ``flush()`` waits until they
are all out. An emit to one session, and every other method, waits for its answer.
Errors are the ``rtctl`` exceptions: ``NotFound``, ``UsageError``,
``BackendUnavailable``...
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from rtctl.auth import valid_id
from rtctl.errors import UsageError
from rtctl.hub.payload import event_name
from rtctl.hub.transport import user_room

T = TypeVar("T")
DEFAULT_TIMEOUT = 10.0


def _target(user: str | None, room: str | None, sid: str | None) -> tuple[str, str]:
    given = [(k, v) for k, v in (("user", user), ("room", room), ("sid", sid)) if v is not None]
    if len(given) != 1:
        raise UsageError("give exactly one of user, room or sid")
    kind, value = given[0]
    if not isinstance(value, str) or not value:
        raise UsageError(f"{kind} must be a non-empty string")
    return kind, value


class AsyncClient:
    """The hub from an app's asyncio code; use it as ``async with``, or ``await close()``."""

    def __init__(
        self,
        url: str | None = None,
        *,
        redis_url: str | None = None,
        admin_token: str | None = None,
        prefix: str = "rtctl",
        redis_cluster: bool = False,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        if (url is None) == (redis_url is None):
            raise UsageError("give exactly one of url (a daemon) or redis_url (no daemon)")
        self._admin: Any = None
        self._redis: Any = None
        if url is not None:
            from rtctl.client.admin import AdminWay

            self._admin = AdminWay(url, admin_token, timeout)
        else:
            from rtctl.client.redis import RedisWay

            assert redis_url is not None
            self._redis = RedisWay(redis_url, prefix=prefix, cluster=redis_cluster,
                                   timeout=timeout)  # fmt: skip

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def emit(
        self,
        event: str,
        data: Any = None,
        *,
        user: str | None = None,
        room: str | None = None,
        sid: str | None = None,
    ) -> None:
        """Emit ``event`` to every session of a user, to a room, or to one session.

        An emit to a user or room returns once queued: emits go out in order, many
        per round trip, and one that cannot be sent within the client's timeout
        raises from the next ``emit`` or ``flush``. An emit to a session waits for
        the hub, and raises ``NotFound`` if the session is gone."""
        kind, value = _target(user, room, sid)
        event_name(event)
        if kind == "sid":  # the session may be gone: wait for the answer
            if self._admin is not None:
                await self._admin.emit_now({"event": event, "data": data, "sid": value})
            else:
                await self._redis.operator.emit(event, data, to=value)
        elif self._admin is not None:
            await self._admin.emit({"event": event, "data": data, kind: valid_id(value, kind)})
        else:
            await self._redis.emit_to_room(event, data, user_room(value) if user else value)

    async def flush(self) -> None:
        """Wait until every emit made so far has reached the hub; raises what kept one
        from it (an emit to a user or room returns once queued, in order)."""
        await (self._admin or self._redis).flush()

    async def call(
        self, sid: str, event: str, data: Any = None, *, timeout: float = DEFAULT_TIMEOUT
    ) -> Any:
        """Emit ``event`` to one session and return its client's ack."""
        if self._admin is not None:
            return await self._admin.call(sid, event, data, timeout)
        return await self._redis.operator.call(sid, event, data, timeout)

    async def sessions(
        self, *, user: str | None = None, room: str | None = None
    ) -> list[dict[str, Any]]:
        """Sessions on every node: ``{sid, user_id, user_name, node, rooms, …}``."""
        if self._admin is not None:
            found: list[dict[str, Any]] = await self._admin.sessions(user, room)
            return found
        records = await self._redis.operator.sessions(user_id=user, room=room)
        return [r.to_json() for r in records]

    async def join(self, room: str, *, user: str) -> list[str]:
        """Put every session of ``user``, on every node, in ``room``; their session ids."""
        return await self._membership(room, user, True)

    async def leave(self, room: str, *, user: str) -> list[str]:
        """Take every session of ``user``, on every node, out of ``room``."""
        return await self._membership(room, user, False)

    async def _membership(self, room: str, user: str, join: bool) -> list[str]:
        if self._admin is not None:
            sids: list[str] = await self._admin.membership(room, user, join)
            return sids
        result = await self._redis.operator.membership(room, user_id=user, join=join)
        return list(result["sessions"])

    async def start_task(
        self,
        kind: str,
        *,
        user: str,
        item_id: str | None = None,
        message_id: str | None = None,
        payload: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Start a task of ``kind`` for ``user`` (e.g. ``echo`` or an app's kind with a
        chat's ``messages`` in ``payload``); its events stream to the user's sessions.
        Returns its record: ``{id, kind, item_id, message_id, user_id, node, started_at}``."""
        fields = {"kind": kind, "user": user, "item_id": item_id, "message_id": message_id,
                  "payload": payload}  # fmt: skip
        if self._admin is not None:
            task: dict[str, Any] = await self._admin.start_task(fields)
            return task
        return dict(await self._redis.operator.start_task(
            kind, user_id=user, item_id=item_id, message_id=message_id, payload=payload
        ))  # fmt: skip

    async def stop_tasks(
        self, ids: list[str] | None = None, *, item_id: str | None = None
    ) -> list[dict[str, str]]:
        """Stop tasks by id, or every task of an item (a chat); per task ``{id, result}``."""
        if (ids is None) == (item_id is None):
            raise UsageError("give exactly one of ids or item_id")
        if self._admin is not None:
            body: dict[str, Any] = {"ids": ids} if ids is not None else {"item": item_id}
            results: list[dict[str, str]] = await self._admin.stop_tasks(body)
            return results
        return list(await self._redis.operator.stop_tasks(ids, item_id=item_id))

    async def close(self) -> None:
        way = self._admin or self._redis
        await way.close()


class Client:
    """The blocking ``AsyncClient``: same methods, same arguments, for plain scripts and
    threaded apps. Safe to share between threads."""

    def __init__(self, url: str | None = None, **options: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="rtctl-client",
                                        daemon=True)  # fmt: skip
        self._thread.start()
        self._async = self._run(_make(url, options))

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def emit(self, event: str, data: Any = None, **target: str | None) -> None:
        self._run(self._async.emit(event, data, **target))

    def call(
        self, sid: str, event: str, data: Any = None, *, timeout: float = DEFAULT_TIMEOUT
    ) -> Any:
        return self._run(self._async.call(sid, event, data, timeout=timeout))

    def sessions(self, *, user: str | None = None, room: str | None = None) -> list[dict[str, Any]]:
        return self._run(self._async.sessions(user=user, room=room))

    def join(self, room: str, *, user: str) -> list[str]:
        return self._run(self._async.join(room, user=user))

    def leave(self, room: str, *, user: str) -> list[str]:
        return self._run(self._async.leave(room, user=user))

    def start_task(self, kind: str, *, user: str, **fields: Any) -> dict[str, Any]:
        return self._run(self._async.start_task(kind, user=user, **fields))

    def stop_tasks(
        self, ids: list[str] | None = None, *, item_id: str | None = None
    ) -> list[dict[str, str]]:
        return self._run(self._async.stop_tasks(ids, item_id=item_id))

    def flush(self) -> None:
        self._run(self._async.flush())

    def close(self) -> None:
        if self._loop.is_closed():
            return
        self._run(self._async.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()


async def _make(url: str | None, options: dict[str, Any]) -> AsyncClient:
    return AsyncClient(url, **options)  # built on the client's own loop


__all__ = ["AsyncClient", "Client"]
