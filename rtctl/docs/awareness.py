"""Awareness (cursors, names) of a document's sessions: ephemeral, relayed as received.

Two forms arrive: y-protocols awareness updates (read from untrusted bytes with
``rtctl.docs.yjs``'s bounded decoder), and UTF-8 JSON text ``{clientID: state}``, which
Open WebUI's editor sends (no clocks; a bare ``{`` cannot start a y-protocols update
the hub takes, which would announce 123 clients).

A session speaks for a bounded number of client ids per document, and only for its
own: an id another session of the document announced is refused. When a session
leaves, the others are told that its clients are gone, in the form it used: a null
state in y-protocols, an empty state ``{}`` in JSON (Open WebUI's cursor plugin reads
every state's fields, and a null one would throw).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from rtctl.docs import yjs
from rtctl.errors import Forbidden, UsageError

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


def parse(update: bytes) -> tuple[list[AwarenessEntry], bool]:
    """An awareness update in either form: its entries, and whether it was JSON text."""
    if not update.startswith(b"{"):
        return read(update, max_entries=MAX_CLIENTS), False
    try:
        states = json.loads(update.decode("utf-8"))
    except (ValueError, RecursionError) as exc:
        raise yjs.MalformedUpdate("awareness text is not JSON") from exc
    if not isinstance(states, dict) or len(states) > MAX_CLIENTS:
        raise yjs.MalformedUpdate(
            f"awareness text must be an object of at most {MAX_CLIENTS} client ids"
        )
    entries = []
    for key, state in states.items():
        if not key.isdigit() or len(key) > 16 or int(key) >= 1 << 53:
            raise yjs.MalformedUpdate(f"awareness client id {key[:32]!r} is not a Yjs client id")
        entries.append(AwarenessEntry(int(key), 0, state))
    return entries, True


def note(
    clients: dict[int, int], entries: list[AwarenessEntry], others: set[int] | None = None
) -> None:
    """Record the clients (id -> clock) one session announces or removes; ``others``:
    the ids other sessions of the document speak for."""
    for e in entries:
        if others and e.client in others:
            raise Forbidden(f"awareness client {e.client} belongs to another session")
        if e.state is None:
            clients.pop(e.client, None)
        elif e.client in clients or len(clients) < MAX_CLIENTS:
            clients[e.client] = e.clock
        else:
            raise UsageError(f"a session may announce at most {MAX_CLIENTS} awareness clients")


def gone(clients: dict[int, int], text: bool = False) -> bytes:
    """The awareness update that removes a departed session's clients, in its form."""
    if text:
        return json.dumps({str(c): {} for c in clients}, separators=(",", ":")).encode()
    return encode([AwarenessEntry(c, clock + 1, None) for c, clock in clients.items()])
