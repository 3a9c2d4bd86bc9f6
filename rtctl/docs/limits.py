"""Bounds on what a document request may cost, by what it decodes to, not only its bytes.

A Yjs update's bytes say little about its cost: a few hundred kilobytes can hold tens
of thousands of items, each of which the server's copy must integrate and keep, or
tens of thousands of client ids, which every later write to the document pays for
in its state vector. An answer's cost grows with the document: a large state sent
as a JSON array of byte values holds the event loop for seconds. These bounds keep
every request under about 50 ms of loop time at their defaults; what would pass
them is refused with a clear error, before it touches the document.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rtctl.docs import yjs
from rtctl.docs.yjs import TooComplex
from rtctl.errors import PayloadTooLarge, UsageError


@dataclass(frozen=True)
class DocLimits:
    max_items: int = 12_000  # structs (items, deletions, gaps) in one update
    max_doc_clients: int = 8_000  # Yjs client ids one document may hold
    max_array_state: int = 128 * 1024  # largest state answered as a JSON array of bytes

    def inspect(self, update: bytes, state: dict[int, int]) -> yjs.UpdateShape:
        """The update's shape, refused when it would cost more than the bounds allow on
        a document with state vector ``state``."""
        shape = yjs.inspect_update(update, max_structs=self.max_items)
        new = sum(1 for c in shape.structs if c not in state)
        if new and len(state) + new > self.max_doc_clients:
            raise TooComplex(
                f"the update would take the document past {self.max_doc_clients} Yjs client ids"
            )
        return shape

    def check_array_answer(self, size: int) -> None:
        if size > self.max_array_state:
            raise TooComplex(
                f"the state is {size} bytes, too large to send as an array of byte values"
                f" (at most {self.max_array_state}); ask with binary: true"
            )


def payload_bytes(value: Any, limit: int, what: str = "update") -> tuple[bytes, bool]:
    """An update given as a binary attachment or a JSON array of byte values, and
    whether it came binary (the server answers in the form the client used)."""
    if isinstance(value, bytes | bytearray):
        data, binary = bytes(value), True
    elif isinstance(value, list):
        if len(value) > limit:
            raise PayloadTooLarge(f"{what} is larger than {limit} bytes")
        try:  # bytes() checks every element is an int in 0..255, at C speed
            data, binary = bytes(value), False
        except (TypeError, ValueError):
            raise UsageError(f"{what} must be binary or an array of byte values 0-255") from None
    else:
        raise UsageError(f"{what} must be binary or an array of byte values")
    if len(data) > limit:
        raise PayloadTooLarge(f"{what} is larger than {limit} bytes")
    if not data:
        raise UsageError(f"{what} is empty")
    return data, binary
