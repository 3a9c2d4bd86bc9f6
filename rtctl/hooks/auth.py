"""The auth hook: the hub asks the app who a token is and what it may join (SPEC §9).

On connect and on ``user-join`` the hub POSTs ``{token, sid, headers}`` to
``auth_hook_url``. The app answers ``200 {user: {id, name, role}, channels: [ids],
docs: [patterns], docs_ro: [patterns]}``, or ``401``/``403`` to refuse. Answers
(refusals too) are cached per token in the state backend, so every node of a
deployment shares them and a reconnect storm costs the app one call per token,
not one per connection; concurrent asks for one token on a node share one call.

Changing a user's rooms from the app (``rooms join|leave --user``) makes the user's
cached answers stale at once: each cached answer carries the user's generation,
which such a change increments.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from rtctl.auth import MAX_GRANTS, MAX_ID_LENGTH, valid_id
from rtctl.errors import AuthError, BackendUnavailable, Forbidden, UsageError
from rtctl.hooks.http import KeptAliveHttp

log = logging.getLogger("rtctl.hooks")

FORWARDED_HEADERS = ("user-agent", "x-forwarded-for")


@dataclass(frozen=True)
class Grants:
    """What the app says of a token: who it is (fields it leaves out stay the token's)
    and what it may join, on top of the token's own grants."""

    user_id: str | None = None
    name: str | None = None
    role: str | None = None
    channels: tuple[str, ...] = ()
    docs: tuple[str, ...] = ()
    docs_ro: tuple[str, ...] = ()

    @classmethod
    def parse(cls, body: Any) -> Grants:
        if not isinstance(body, dict):
            raise UsageError("the answer must be a JSON object")
        user = body.get("user") or {}
        if not isinstance(user, dict):
            raise UsageError("'user' must be an object")
        user_id = None if user.get("id") is None else valid_id(user["id"], "user.id")
        name, role = user.get("name"), user.get("role")
        for field, value in (("name", name), ("role", role)):
            if value is not None and not isinstance(value, str):
                raise UsageError(f"user.{field} must be a string")
        return cls(
            user_id,
            name[:MAX_ID_LENGTH] if name else None,
            role or None,
            _ids(body, "channels"),
            _ids(body, "docs"),
            _ids(body, "docs_ro"),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "user": {"id": self.user_id, "name": self.name, "role": self.role},
            "channels": list(self.channels),
            "docs": list(self.docs),
            "docs_ro": list(self.docs_ro),
        }


def _ids(body: dict[str, Any], name: str) -> tuple[str, ...]:
    raw = body.get(name) or []
    if not isinstance(raw, list) or len(raw) > MAX_GRANTS:
        raise UsageError(f"{name!r} must be a list of at most {MAX_GRANTS} ids")
    return tuple(valid_id(v, name) for v in raw)


class HookCache(Protocol):
    """Cached answers by token digest, and per-user generations that make them stale."""

    async def get(self, digest: str) -> dict[str, Any] | None: ...
    async def put(self, digest: str, entry: dict[str, Any], ttl: float) -> None: ...
    async def generation(self, user_id: str) -> int: ...
    async def bump(self, user_id: str) -> None: ...


@dataclass
class HookStats:
    calls: int = 0  # requests sent to the app
    hits: int = 0  # answers served from the cache (or from a call another ask started)
    failures: int = 0  # calls the app did not answer in time, or answered badly


class AuthHook:
    def __init__(self, poster: KeptAliveHttp, cache: HookCache, *, ttl: float) -> None:
        self.poster = poster
        self.cache = cache
        self.ttl = ttl
        self.stats = HookStats()
        self._inflight: dict[str, asyncio.Future[dict[str, Any]]] = {}

    async def identify(self, token: str, sid: str, headers: Mapping[str, str]) -> Grants:
        """The app's grants for ``token``; ``AuthError``/``Forbidden`` when it refuses,
        ``BackendUnavailable`` (code ``unavailable``) when it does not answer."""
        digest = hashlib.sha256(token.encode()).hexdigest()
        shared = self._inflight.get(digest)
        if shared is not None:  # another connect with this token is finding out: share it
            self.stats.hits += 1
            return _outcome(await asyncio.shield(shared))
        return _outcome(await self._find_once(digest, token, sid, headers))

    async def _cached(self, digest: str) -> dict[str, Any] | None:
        try:
            entry = await self.cache.get(digest)
            if entry is None:
                return None
            user = entry.get("user")
            if user is not None and entry.get("gen") != await self.cache.generation(user):
                return None
            return entry
        except BackendUnavailable:
            return None  # no cache now: ask the app

    async def _find_once(
        self, digest: str, token: str, sid: str, headers: Mapping[str, str]
    ) -> dict[str, Any]:
        """The cached answer, else the app's; those asking meanwhile share this one."""
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._inflight[digest] = future
        try:
            entry = await self._cached(digest)
            if entry is not None:
                self.stats.hits += 1
            else:
                entry = await self._ask(digest, token, sid, headers)
            future.set_result(entry)
            return entry
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning without sharers
            raise
        finally:
            del self._inflight[digest]

    async def _ask(
        self, digest: str, token: str, sid: str, headers: Mapping[str, str]
    ) -> dict[str, Any]:
        body = {
            "token": token,
            "sid": sid,
            "headers": {h: headers[h] for h in FORWARDED_HEADERS if h in headers},
        }
        self.stats.calls += 1
        try:
            answer = await self.poster.post(json.dumps(body).encode())
        except BackendUnavailable as exc:
            self.stats.failures += 1
            raise BackendUnavailable(f"the auth hook does not answer: {exc.message}") from None
        if answer.status not in (200, 401, 403):
            self.stats.failures += 1
            raise BackendUnavailable(f"the auth hook answered HTTP {answer.status}")
        entry: dict[str, Any] = {"status": answer.status}
        if answer.status == 200:
            try:
                grants = Grants.parse(json.loads(answer.body))
            except (ValueError, UsageError) as exc:
                self.stats.failures += 1
                reason = exc.message if isinstance(exc, UsageError) else "not JSON"
                log.warning("the auth hook's answer is invalid: %s", reason)
                raise BackendUnavailable(f"the auth hook's answer is invalid: {reason}") from None
            entry["grants"] = grants.to_json()
            if grants.user_id is not None:
                entry["user"] = grants.user_id
        await self._remember(digest, entry)
        return entry

    async def _remember(self, digest: str, entry: dict[str, Any]) -> None:
        try:
            if "user" in entry:
                entry["gen"] = await self.cache.generation(entry["user"])
            await self.cache.put(digest, entry, self.ttl)
        except BackendUnavailable:
            pass  # answered all the same; the next ask asks the app again


def _outcome(entry: dict[str, Any]) -> Grants:
    status = entry.get("status")
    if status == 401:
        raise AuthError("the app refused the token")
    if status == 403:
        raise Forbidden("the app refused the token")
    return Grants.parse(entry.get("grants"))
