"""The CLI's view of a running deployment: one small interface, one class per way in.

``open_remote(settings)`` picks the implementation from ``REMOTES`` (import strings,
so a backend's dependencies load only when it is used). Embedded mode talks to the
daemon's admin HTTP API; Redis mode reads and acts on Redis directly, with no daemon
needed (``rtctl.cli.redis_remote``).

Records are plain dicts in the admin API's JSON shapes (``rtctl.state.base``);
``rtctl.cli.views`` decides what of them is shown.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote, urlencode, urlsplit

from rtctl.config import Settings
from rtctl.errors import BackendUnavailable, ConfigError, OperationFailed, from_http

Record = dict[str, Any]


class Remote(Protocol):
    """What the operator's commands need from the hub; every method may raise
    ``BackendUnavailable``, ``NotFound``, ``UsageError``, ``AuthError`` or ``OperationFailed``."""

    where: str  # for messages: the daemon URL, or the Redis deployment

    def status(self) -> Record: ...
    def nodes(self) -> list[Record]: ...
    def sessions(self, *, user: str | None = None, room: str | None = None) -> list[Record]: ...
    def kick(self, *, sids: list[str] | None = None, user: str | None = None) -> Record:
        """``{"kicked": [sid…], "not_found": [sid…]}``; ``NotFound`` if a user has none."""

    def online_users(self) -> list[Record]: ...
    def rooms(self) -> list[Record]: ...
    def members(self, room: str) -> list[Record]: ...
    def usage(self) -> list[Record]: ...
    def membership(self, room: str, *, user: str, join: bool) -> Record:
        """``{room, user_id, action, sessions: [sid…]}``: every session of the user."""

    def emit(self, event: str, data: Any, *, target: tuple[str, str]) -> Record:
        """``target`` is ``("user"|"room"|"sid", id)``; returns ``{event, to, sessions}``."""

    def call(self, sid: str, event: str, data: Any, timeout: float | None) -> Any:
        """The session's reply to ``event``."""

    def revoke(self, *, jti: str | None = None, user: str | None = None) -> Record:
        """``{revoked, kind, disconnected: [sid…]}``."""

    def revocations(self) -> list[Record]:
        """``{kind: jti|user, id, until, before}`` for each revocation."""

    def unrevoke(self, *, jti: str | None = None, user: str | None = None) -> Record:
        """``{unrevoked, kind}``; ``NotFound`` if it was not revoked."""

    def cleanup(self, *, dry_run: bool) -> Record:
        """``{dry_run, complete, sessions, nodes: [{node, sessions}…]}``."""

    def tasks(self, *, item: str | None = None) -> list[Record]:
        """Running tasks: ``{id, kind, item_id, user_id, node, started_at}``."""

    def stop_tasks(
        self, ids: list[str] | None = None, *, item: str | None = None, all_tasks: bool = False
    ) -> list[Record]:
        """Per task ``{id, result}``: stopped, not-found, owner-gone or pending."""

    def docs(self) -> list[Record]:
        """Every document: ``{id, updates, bytes, updated_at, sessions, …}``."""

    def doc_info(self, doc_id: str) -> Record:
        """One document; ``NotFound`` if there is none."""

    def doc_compact(self, ids: list[str] | None = None, *, all_docs: bool = False) -> list[Record]:
        """Per document ``{id, result, compacted, before_bytes, after_bytes, error}``."""

    def doc_export(self, doc_id: str, fmt: str) -> bytes:
        """The document's state as ``update``, ``json`` or ``text`` (``NotFound``)."""

    def doc_delete(self, doc_id: str, *, dry_run: bool) -> Record:
        """The document as it was, with ``deleted`` and ``dry_run``; ``OperationFailed``
        while sessions are in it."""

    def follow(self, room: str) -> Iterator[Record]:
        """Events delivered to ``room`` from now on: first ``{watching: true}`` (nothing
        after it is missed), then ``{at, room, event, data}`` each, and ``{idle: true}``
        after 5 s without one, until the caller stops."""

    def task_so_far(self, task_id: str) -> Record:
        """``{task_id, chat_id, message_id, user_id, content, seq, done}``; ``NotFound``."""


REQUEST_TIMEOUT = 10.0  # seconds to connect and answer; past it the daemon counts as unreachable
LONG_TIMEOUT = 120.0  # requests that merge whole documents (compact, export)

REMOTES: dict[str, str] = {
    "embedded": "rtctl.cli.remote:AdminApiRemote",
    "redis": "rtctl.cli.redis_remote:RedisRemote",
}


def open_remote(settings: Settings) -> Remote:
    module, _, attr = REMOTES["embedded" if settings.embedded else "redis"].partition(":")
    cls = getattr(importlib.import_module(module), attr)
    remote: Remote = cls.from_settings(settings)
    return remote


class AdminApiRemote:
    """The admin HTTP API of an embedded daemon, over the standard library's http.client
    (httpx or requests would cost more start-up time than the whole command)."""

    API = "/api/v1"

    def __init__(
        self,
        url: str,
        token: str | None,
        token_from: str,
        *,
        call_timeout: float = 10.0,
        timeout: float = REQUEST_TIMEOUT,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"url: {url!r} is not an http:// or https:// URL")
        self.where, self._parts = url, parts
        self._token, self._token_from = token, token_from
        self._call_timeout = call_timeout
        self._timeout = timeout
        self._long = max(LONG_TIMEOUT, timeout)  # stops and compactions: longer than a listing

    @classmethod
    def from_settings(cls, settings: Settings) -> AdminApiRemote:
        from rtctl import keystore  # hmac, secrets: not for commands that never get here

        token = keystore.admin_token(settings)
        if settings.admin_token:
            origin = settings.sources.get("admin_token", "configuration")
        else:
            origin = f"file {Path(settings.data_path) / keystore.ADMIN_TOKEN_FILE}"
        return cls(settings.url, token, origin, call_timeout=settings.call_timeout,
                   timeout=settings.request_timeout)  # fmt: skip

    def status(self) -> Record:
        result: Record = self._request("GET", "/status")
        return result

    def nodes(self) -> list[Record]:
        return self._list("/nodes")

    def sessions(self, *, user: str | None = None, room: str | None = None) -> list[Record]:
        query = {k: v for k, v in (("user", user), ("room", room)) if v is not None}
        return self._list("/sessions" + (f"?{urlencode(query)}" if query else ""))

    def kick(self, *, sids: list[str] | None = None, user: str | None = None) -> Record:
        body = {"user": user} if user is not None else {"sids": sids or []}
        result: Record = self._request("POST", "/sessions/kick", body)
        return result

    def online_users(self) -> list[Record]:
        return self._list("/users/online")

    def rooms(self) -> list[Record]:
        return self._list("/rooms")

    def members(self, room: str) -> list[Record]:
        return self._list(f"/rooms/{quote(room, safe='')}/members")

    def usage(self) -> list[Record]:
        return self._list("/usage")

    def membership(self, room: str, *, user: str, join: bool) -> Record:
        action = "join" if join else "leave"
        path = f"/rooms/{quote(room, safe='')}/{action}"
        result: Record = self._request("POST", path, {"user": user})
        return result

    def emit(self, event: str, data: Any, *, target: tuple[str, str]) -> Record:
        kind, value = target
        result: Record = self._request("POST", "/emit", {"event": event, "data": data, kind: value})
        return result

    def call(self, sid: str, event: str, data: Any, timeout: float | None) -> Any:
        body = {"event": event, "sid": sid, "data": data, "timeout": timeout}
        # The HTTP request must outlive the call it waits for.
        wait = (self._call_timeout if timeout is None else timeout) + self._timeout
        return self._request("POST", "/call", body, timeout=wait).get("reply")

    def revoke(self, *, jti: str | None = None, user: str | None = None) -> Record:
        body = {"jti": jti} if jti is not None else {"user": user}
        result: Record = self._request("POST", "/tokens/revoke", body)
        return result

    def revocations(self) -> list[Record]:
        return self._list("/tokens/revocations")

    def unrevoke(self, *, jti: str | None = None, user: str | None = None) -> Record:
        body = {"jti": jti} if jti is not None else {"user": user}
        result: Record = self._request("POST", "/tokens/unrevoke", body)
        return result

    def cleanup(self, *, dry_run: bool) -> Record:
        result: Record = self._request("POST", "/pool/cleanup", {"dry_run": dry_run})
        return result

    def tasks(self, *, item: str | None = None) -> list[Record]:
        return self._list("/tasks" + (f"?{urlencode({'item': item})}" if item is not None else ""))

    def stop_tasks(
        self, ids: list[str] | None = None, *, item: str | None = None, all_tasks: bool = False
    ) -> list[Record]:
        body: Record = (
            {"all": True} if all_tasks else {"item": item} if item is not None else {"ids": ids}
        )
        result = self._request("POST", "/tasks/stop", body, timeout=self._long)
        if not isinstance(result, dict) or not isinstance(result.get("results"), list):
            raise OperationFailed(f"unexpected answer from {self.where}{self.API}/tasks/stop")
        results: list[Record] = result["results"]
        return results

    def docs(self) -> list[Record]:
        return self._list("/docs")

    def doc_info(self, doc_id: str) -> Record:
        result: Record = self._request("GET", f"/docs/{quote(doc_id, safe='')}")
        return result

    def doc_compact(self, ids: list[str] | None = None, *, all_docs: bool = False) -> list[Record]:
        body: Record = {"all": True} if all_docs else {"ids": ids or []}
        # a compaction merges whole documents: give it longer than a listing
        result = self._request("POST", "/docs/compact", body, timeout=self._long)
        if not isinstance(result, dict) or not isinstance(result.get("results"), list):
            raise OperationFailed(f"unexpected answer from {self.where}{self.API}/docs/compact")
        results: list[Record] = result["results"]
        return results

    def doc_export(self, doc_id: str, fmt: str) -> bytes:
        path = f"/docs/{quote(doc_id, safe='')}/export?{urlencode({'format': fmt})}"
        data: bytes = self._request("GET", path, timeout=self._long, raw=True)
        return data

    def doc_delete(self, doc_id: str, *, dry_run: bool) -> Record:
        path = f"/docs/{quote(doc_id, safe='')}" + ("?dry_run=1" if dry_run else "")
        result: Record = self._request("DELETE", path)
        return result

    def follow(self, room: str) -> Iterator[Record]:
        import http.client

        conn = self._connection(http.client, self._timeout)
        try:
            conn.request("GET", self._path("/tail?" + urlencode({"room": room})),
                         headers=self._headers())  # fmt: skip
            response = conn.getresponse()
            if response.status != 200:
                self._raise(response.status, response.read())
            if conn.sock is not None:
                conn.sock.settimeout(None)  # events may be minutes apart
            while line := response.readline():
                record = json.loads(line)
                if isinstance(record, dict) and isinstance(record.get("error"), dict):
                    raise OperationFailed(str(record["error"].get("message")))
                yield record
        except (OSError, http.client.HTTPException, ValueError) as exc:
            reason = str(exc) or type(exc).__name__
            raise BackendUnavailable(f"lost the rtctl daemon at {self.where}: {reason}") from None
        finally:
            conn.close()
        raise BackendUnavailable(f"the rtctl daemon at {self.where} ended the stream")

    def task_so_far(self, task_id: str) -> Record:
        result: Record = self._request("GET", f"/tasks/{quote(task_id, safe='')}/so_far")
        return result

    def _list(self, path: str) -> list[Record]:
        result = self._request("GET", path)
        if not isinstance(result, list):
            raise OperationFailed(f"unexpected answer from {self.where}{self.API}{path}")
        return result

    def _request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        timeout: float | None = None,
        raw: bool = False,
    ) -> Any:
        """The answer's JSON (its bytes with ``raw``); an error answer raises."""
        headers = self._headers()
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        try:
            status, content = self._exchange(method, path, headers, payload, timeout)
        except Exception as exc:  # OSError, http.client.HTTPException
            if not isinstance(exc, OSError) and type(exc).__module__ != "http.client":
                raise
            reason = str(exc) or type(exc).__name__  # a bare timeout has no message
            raise BackendUnavailable(
                f"cannot reach the rtctl daemon at {self.where}: {reason}"
            ) from None
        if status == 200 and raw:
            return content
        if status != 200:
            self._raise(status, content)
        try:
            return json.loads(content) if content else None
        except ValueError:
            return None

    def _exchange(
        self, method: str, path: str, headers: dict[str, str], payload: bytes | None,
        timeout: float | None,
    ) -> tuple[int, bytes]:  # fmt: skip
        """One request: over a plain socket to an http:// daemon (http.client's imports
        cost a command ~20 ms), through http.client for https://."""
        wait = timeout or self._timeout
        plain = all(" " <= ch < "\x7f" for v in headers.values() for ch in v)
        if self._parts.scheme == "http" and plain:
            from rtctl.cli.http11 import exchange

            return exchange(self._parts.hostname or "", self._parts.port or 80, method,
                            self._path(path), headers, payload, wait)  # fmt: skip
        import http.client

        conn = self._connection(http.client, wait)
        try:
            conn.request(method, self._path(path), payload, headers)
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def _connection(self, http_client: Any, timeout: float) -> Any:
        parts = self._parts
        cls = http_client.HTTPSConnection if parts.scheme == "https" else http_client.HTTPConnection
        return cls(parts.hostname or "", parts.port, timeout=timeout)

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json", "User-Agent": "rtctl-cli"}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        return headers

    def _path(self, path: str) -> str:
        return self._parts.path.rstrip("/") + self.API + path

    def _raise(self, status: int, content: bytes) -> None:
        """The error an answer other than 200 stands for."""
        try:
            data = json.loads(content) if content else None
        except ValueError:
            data = None
        error = from_http(status, data, self.where)
        if status == 401:
            error.message = self._explain_refusal(error.message)
        raise error

    def _explain_refusal(self, message: str) -> str:
        if self._token is None:
            return (
                f"{message}: no admin token found (not configured, and no {self._token_from}); "
                "set RTCTL_ADMIN_TOKEN or --admin-token, or run as the daemon's user"
            )
        return f"{message}: {self.where} refused the admin token from {self._token_from}"
