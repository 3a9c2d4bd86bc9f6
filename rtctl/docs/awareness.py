"""Awareness (cursors, names) of a document's sessions: ephemeral, relayed as received.

A session may speak for a bounded number of awareness client ids per document; when
it leaves, the others are told that those clients are gone.
"""

from __future__ import annotations

from rtctl.docs import yjs
from rtctl.errors import UsageError

MAX_CLIENTS = 16  # awareness client ids one session may speak for, per document
MAX_BYTES = 64 * 1024


def note(clients: dict[int, int], entries: list[yjs.AwarenessEntry]) -> None:
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
    return yjs.awareness_update(
        [yjs.AwarenessEntry(c, clock + 1, None) for c, clock in clients.items()]
    )
