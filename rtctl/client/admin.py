"""The Python client over a daemon's admin API: kept-alive connections, and emits to
users and rooms queued and sent in order, many per request to ``/api/v1/emit/batch``
(``rtctl.client.outbox``)."""

from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import quote, urlencode

from rtctl import errors
from rtctl.client.outbox import Outbox
from rtctl.errors import BackendUnavailable, from_http
from rtctl.hooks.http import KeptAliveHttp

API = "/api/v1"
MAX_BATCH = 2000
MAX_QUEUED = 20_000
MAX_IN_FLIGHT = 4  # connections kept: one carries the emits, others calls and listings
log = logging.getLogger("rtctl.client")
_dumps = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode


class AdminWay:
    def __init__(self, url: str, admin_token: str | None, timeout: float) -> None:
        self.url = url.rstrip("/")
        self.http = KeptAliveHttp(self.url, timeout=timeout, max_idle=MAX_IN_FLIGHT)
        self.headers = {"Accept": "application/json"}
        if admin_token:
            self.headers["Authorization"] = f"Bearer {admin_token}"
        self.outbox: Outbox[str] = Outbox(
            self._send, max_batch=MAX_BATCH, max_queued=MAX_QUEUED, give_up=timeout
        )

    async def request(
        self, method: str, path: str, body: Any = None, timeout: float | None = None
    ) -> Any:
        payload = b"" if body is None else json.dumps(body).encode()
        return await self._post_raw(path, payload, method, timeout)

    async def _post_raw(
        self, path: str, payload: bytes, method: str = "POST", timeout: float | None = None
    ) -> Any:
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
            raise from_http(answer.status, data, self.url)
        return data

    # emits ---------------------------------------------------------------------------------

    async def emit(self, item: dict[str, Any]) -> None:
        """Queue an emit to a user or room (sent in order, in batches)."""
        try:
            encoded = _dumps(item)
        except (TypeError, ValueError) as exc:
            raise errors.UsageError(f"data is not JSON: {exc}") from None
        await self.outbox.put(encoded)

    async def emit_now(self, item: dict[str, Any]) -> None:
        """An emit to one session, which may not exist: its answer is awaited."""
        await self.request("POST", "/emit", item)

    async def _send(self, batch: list[str]) -> None:
        body = ('{"emits":[' + ",".join(batch) + "]}").encode()
        answer = await self._post_raw("/emit/batch", body)
        failed = [r["error"] for r in answer["results"] if isinstance(r, dict) and "error" in r]
        if failed:  # checked before queueing: only a daemon that changed its mind refuses
            log.warning("%d emits refused by the daemon: %s", len(failed), failed[0])

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

    async def flush(self) -> None:
        await self.outbox.flush()

    async def close(self) -> None:
        try:
            await self.outbox.close()
        finally:
            self.http.close()
