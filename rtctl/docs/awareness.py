"""Awareness (cursors, names) of a document's sessions: ephemeral, relayed as received.

y-protocols awareness updates are read from untrusted bytes with ``rtctl.docs.yjs``'s
bounded decoder.

A session may speak for a bounded number of awareness client ids per document; when
it leaves, the others are told that those clients are gone.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from rtctl.docs import yjs
from rtctl.errors import UsageError

MAX_CLIENTS = 16  # awareness client ids one session may speak for, per document
MAX_BYTES = 64 * 1024


@dataclass(frozen=True)
class AwarenessEntry:
    client: int
    clock: int
    state: Any  # None: the client is gone


def read(update: bytes, *, max_entries: int = 1024) -> list[AwarenessEntry]:
    d = yjs.Decoder(bytes(update))
    n = d.count()
    if n > max_entries:
        raise yjs.MalformedUpdate(f"an awareness update may carry at most {max_entries} clients")
    entries = []
    for _ in range(n):
        client = d.uint()
        clock = d.uint()
        text = d.string()
        try:
            state = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise yjs.MalformedUpdate("awareness state is not JSON") from exc
        entries.append(AwarenessEntry(client, clock, state))
    if not d.done():
        raise yjs.MalformedUpdate("trailing bytes after the awareness update")
    return entries


def encode(entries: list[AwarenessEntry]) -> bytes:
    out = bytearray()
    yjs.write_uint(out, len(entries))
    for e in entries:
        yjs.write_uint(out, e.client)
        yjs.write_uint(out, e.clock)
        yjs.write_string(out, json.dumps(e.state, separators=(",", ":")))
    return bytes(out)


def note(clients: dict[int, int], entries: list[AwarenessEntry]) -> None:
    """Record the clients (id -> clock) one session announces or removes."""
    for e in entries:
        if e.state is None:
            clients.pop(e.client, None)
        elif e.client in clients or len(clients) < MAX_CLIENTS:
            clients[e.client] = e.clock
        else:
            raise UsageError(f"a session may announce at most {MAX_CLIENTS} awareness clients")


def gone(clients: dict[int, int]) -> bytes:
    """The awareness update that removes a departed session's clients."""
    return encode([AwarenessEntry(c, clock + 1, None) for c, clock in clients.items()])
