"""Revocations outlive the loss of Redis.

Revocations live in Redis, and a Redis that restarts empty (no persistence, a failover
to an empty replica, FLUSHALL) would forget them: revoked tokens would be accepted
again. Each daemon therefore keeps a mirror of them, in memory and in its data dir,
and tells a lost dataset from a changed one by an epoch key it finds in Redis:

- the epoch is the one the daemon knows: the mirror follows Redis (revocations made
  and taken back anywhere in the deployment);
- there is no epoch: Redis lost its data (or is new). The mirror is written back,
  then a new epoch is set (if no other daemon set one first) and adopted;
- another epoch: another daemon restored first. The mirror is written back too
  (revocations only add up), then the epoch is adopted.

A revocation taken back while Redis is away may come back with the mirror: the safe
side. ``sync`` runs with the node's refresh, every few seconds.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from pathlib import Path
from typing import Any

from rtctl.state.base import RevocationRecord

log = logging.getLogger("rtctl.state")
MIRROR_FILE = "revocations-mirror.json"


class RevocationKeeper:
    def __init__(self, state: Any, data_dir: Path | None) -> None:
        self.state = state  # a RedisState
        self.epoch_key = f"{state.keys.prefix}:epoch"
        self.path = data_dir / MIRROR_FILE if data_dir is not None else None
        self.mirror: list[RevocationRecord] = self._load()
        self.epoch: str | None = None
        self.restored = 0  # revocations written back after a loss

    async def sync(self) -> None:
        epoch = _text(await self.state.redis.get(self.epoch_key))
        if epoch is not None and epoch == self.epoch:
            await self._follow()
            return
        if self.mirror:
            await self._restore(lost=epoch is None)
        if epoch is None:
            await self.state.redis.set(self.epoch_key, os.urandom(8).hex(), nx=True)
            epoch = _text(await self.state.redis.get(self.epoch_key))
        self.epoch = epoch
        await self._follow()

    async def _follow(self) -> None:
        current = await self.state.list_revocations()
        if [r.to_json() for r in current] != [r.to_json() for r in self.mirror]:
            self.mirror = current
            await asyncio.to_thread(self._save)

    async def _restore(self, *, lost: bool) -> None:
        for r in self.mirror:
            if r.kind == "jti" and r.until is not None:
                await self.state.revoke_jti(r.id, r.until)
            elif r.kind == "user" and r.before is not None:
                await self.state.revoke_user(r.id, r.before)
        self.restored += len(self.mirror)
        if lost:
            log.warning("Redis lost its revocations: %d written back from this node's mirror",
                        len(self.mirror))  # fmt: skip

    def _load(self) -> list[RevocationRecord]:
        if self.path is None or not self.path.exists():
            return []
        try:
            rows = json.loads(self.path.read_text())
            return [RevocationRecord(str(r["kind"]), str(r["id"]), r.get("until"), r.get("before"))
                    for r in rows]  # fmt: skip
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring damaged %s: %s", self.path, exc)
            return []

    def _save(self) -> None:
        if self.path is None:
            return
        rows = [{"kind": r.kind, "id": r.id, "until": r.until, "before": r.before}
                for r in self.mirror]  # fmt: skip
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with open(fd, "w") as fh:
            fh.write(json.dumps(rows))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)


def _text(value: Any) -> str | None:
    return value.decode() if isinstance(value, bytes) else value
