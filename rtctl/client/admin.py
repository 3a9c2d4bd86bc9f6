"""The Python client over a daemon's admin API: kept-alive connections, and emits
batched (every emit made in one turn of the event loop goes in one request to
``/api/v1/emit/batch``; while batches are in flight, the next ones fill up)."""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import quote, urlencode

from rtctl import errors
from rtctl.errors import BackendUnavailable, OperationFailed, RtctlError
from rtctl.hooks.http import JsonPoster

API = "/api/v1"
MAX_BATCH = 1000
MAX_IN_FLIGHT = 8  # batches sent at once, each on its own connection


def error_from(status: int, body: Any, where: str) -> RtctlError:
    from rtctl.cli.errors import from_http

    return from_http(status, body, where)


def error_of(error: dict[str, Any]) -> RtctlError:
    """The exception of an error by its code (one emit of a batch)."""
    code, message = str(error.get("code", "failed")), str(error.get("message", ""))
    cls = next((c for c in _ERRORS if c.code == code), OperationFailed)
    return cls(message, code=code)


_ERRORS: list[type[RtctlError]] = [
    errors.NotFound, errors.UsageError, errors.PayloadTooLarge, errors.RateLimited,
    errors.AuthError, errors.Forbidden, errors.BackendUnavailable,
]  # fmt: skip


class AdminWay:
    def __init__(self, url: str, admin_token: str | None, timeout: float) -> None:
        self.url = url.rstrip("/")
        self.http = JsonPoster(self.url, timeout=timeout, max_idle=MAX_IN_FLIGHT)
        self.headers = {"Accept": "application/json"}
        if admin_token:
            self.headers["Authorization"] = f"Bearer {admin_token}"
        self._pending: list[tuple[dict[str, Any], asyncio.Future[None]]] = []
        self._in_flight: set[asyncio.Task[None]] = set()
        self._scheduled = False

    async def request(
        self, method: str, path: str, body: Any = None, timeout: float | None = None
    ) -> Any:
        payload = b"" if body is None else json.dumps(body).encode()
        target = self.http.base_path + API + path
        try:
            answer = await self.http.request(method, target, payload, self.headers, timeout)
        except BackendUnavailable as exc:
            raise BackendUnavailable(f"cannot reach the rtctl daemon at {self.url}: "
                                     f"{exc.message}") from None  # fmt: skip
        try:
            data = json.loads(answer.body) if answer.body else None
        except ValueError:
            data = None
        if answer.status != 200:
            raise error_from(answer.status, data, self.url)
        return data

    # emits ---------------------------------------------------------------------------------

    async def emit(self, item: dict[str, Any]) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)
        await future

    def _flush(self) -> None:
        self._scheduled = False
        while self._pending and len(self._in_flight) < MAX_IN_FLIGHT:
            batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
            task = asyncio.ensure_future(self._send(batch))
            self._in_flight.add(task)
            task.add_done_callback(self._sent)

    def _sent(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        if self._pending and not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    async def _send(self, batch: list[tuple[dict[str, Any], asyncio.Future[None]]]) -> None:
        try:
            answer = await self.request("POST", "/emit/batch", {"emits": [i for i, _ in batch]})
            results = answer["results"]
            if len(results) != len(batch):
                raise OperationFailed("the daemon answered a batch of emits with another count")
        except BaseException as exc:
            failure = exc if isinstance(exc, Exception) else OperationFailed("emit cancelled")
            for _, future in batch:
                if not future.done():
                    future.set_exception(failure)
            return
        for (_, future), result in zip(batch, results, strict=True):
            if future.done():
                continue
            error = result.get("error") if isinstance(result, dict) else None
            if error:
                future.set_exception(error_of(error))
            else:
                future.set_result(None)

    # the rest --------------------------------------------------------------------------------

    async def call(self, sid: str, event: str, data: Any, timeout: float) -> Any:
        body = {"event": event, "sid": sid, "data": data, "timeout": timeout}
        answer = await self.request("POST", "/call", body, timeout=timeout + 10.0)
        return answer.get("reply")

    async def sessions(self, user: str | None, room: str | None) -> list[dict[str, Any]]:
        query = {k: v for k, v in (("user", user), ("room", room)) if v is not None}
        found: list[dict[str, Any]] = await self.request(
            "GET", "/sessions" + (f"?{urlencode(query)}" if query else "")
        )
        return found

    async def membership(self, room: str, user: str, join: bool) -> list[str]:
        path = f"/rooms/{quote(room, safe='')}/{'join' if join else 'leave'}"
        answer = await self.request("POST", path, {"user": user})
        return list(answer["sessions"])

    async def start_task(self, fields: dict[str, Any]) -> dict[str, Any]:
        task: dict[str, Any] = await self.request("POST", "/tasks", fields)
        return task

    async def stop_tasks(self, body: dict[str, Any]) -> list[dict[str, str]]:
        answer = await self.request("POST", "/tasks/stop", body)
        return list(answer["results"])

    async def close(self) -> None:
        if self._in_flight:
            await asyncio.gather(*self._in_flight, return_exceptions=True)
        self.http.close()
