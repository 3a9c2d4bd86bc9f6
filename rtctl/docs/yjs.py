"""The Yjs wire formats the hub reads: lib0 encoding, v1 updates, state vectors,
y-protocols sync and awareness messages, and merging a snapshot with its log.

The hub never trusts an update's bytes. ``inspect_update`` walks every struct and
the delete set with bounds on each count and length, and reports which clocks the
update covers, so that after applying it to the server's copy the hub can tell
whether it integrated or would sit *pending* (it depends on history the server
lacks). pycrdt keeps pending structs invisibly and ``Doc.get_update()`` drops them,
so a pending update must never be stored or compacted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pycrdt

from rtctl.errors import PayloadTooLarge, UsageError

MAX_COUNT = 1 << 24  # bound on any count or length read from untrusted bytes
MAX_DEPTH = 64  # nesting of lib0 "any" values

# y-protocols sync message types
SYNC_STEP1 = 0
SYNC_STEP2 = 1
SYNC_UPDATE = 2

# Item content kinds (the low five bits of a struct's info byte)
_GC, _DELETED, _JSON, _BINARY, _STRING, _EMBED, _FORMAT, _TYPE, _ANY, _DOC, _SKIP = (
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10,
)  # fmt: skip
_XML_ELEMENT, _XML_HOOK = 3, 5  # type refs that carry a name


_CLIENT_IDS: dict[bytes, int] = {}  # 8-byte varint encodings seen -> their value


class MalformedUpdate(UsageError):
    code = "invalid_update"


class TooComplex(PayloadTooLarge):
    """An update or answer that would cost the hub more than its bounds allow."""

    code = "too_complex"


class Decoder:
    """A lib0 reader over untrusted bytes: every read is bounded, every overrun refused."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def done(self) -> bool:
        return self.pos >= len(self.data)

    def byte(self) -> int:
        if self.pos >= len(self.data):
            raise MalformedUpdate("unexpected end of data")
        b = self.data[self.pos]
        self.pos += 1
        return b

    def uint(self) -> int:
        data, pos = self.data, self.pos
        if pos < len(data) and data[pos] < 0x80:  # the common one-byte case, inline
            self.pos = pos + 1
            return data[pos]
        # Client ids are random 53-bit numbers: 8-byte varints, read over and over.
        key = data[pos : pos + 8]
        cached = _CLIENT_IDS.get(key)
        if cached is not None:
            self.pos = pos + 8
            return cached
        start, value, shift, end = pos, 0, 0, len(data)
        while pos < end:
            b = data[pos]
            pos += 1
            value |= (b & 0x7F) << shift
            if b < 0x80:
                self.pos = pos
                if pos - start == 8:
                    if len(_CLIENT_IDS) >= 4096:
                        _CLIENT_IDS.clear()
                    _CLIENT_IDS[key] = value
                return value
            shift += 7
            if shift > 63:
                raise MalformedUpdate("variable-length integer is too long")
        raise MalformedUpdate("unexpected end of data")

    def sint(self) -> int:
        b = self.byte()
        value = b & 0x3F
        negative = b & 0x40
        shift = 6
        while b & 0x80:
            b = self.byte()
            value |= (b & 0x7F) << shift
            shift += 7
            if shift > 70:
                raise MalformedUpdate("variable-length integer is too long")
        return -value if negative else value

    def count(self) -> int:
        n = self.uint()
        if n > MAX_COUNT:
            raise MalformedUpdate(f"count {n} is out of bounds")
        return n

    def take(self, n: int) -> bytes:
        if n > len(self.data) - self.pos:
            raise MalformedUpdate("unexpected end of data")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def buf(self) -> bytes:
        return self.take(self.count())

    def string(self) -> str:
        n = self.uint()
        pos = self.pos
        if n > len(self.data) - pos:
            raise MalformedUpdate("unexpected end of data")
        self.pos = pos + n
        try:
            return self.data[pos : pos + n].decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MalformedUpdate("string is not UTF-8") from exc

    def any(self, depth: int = 0) -> Any:
        """Read (and bound) a lib0 "any" value. A validator: numbers other than
        integers come back as placeholders."""
        if depth > MAX_DEPTH:
            raise MalformedUpdate("value is nested too deeply")
        kind = self.byte()
        if kind in (127, 126):
            return None
        if kind == 125:
            return self.sint()
        if kind == 124:
            self.take(4)
            return 0.0
        if kind in (123, 122):
            self.take(8)
            return 0
        if kind in (121, 120):
            return kind == 120
        if kind == 119:
            return self.string()
        if kind == 118:
            return {self.string(): self.any(depth + 1) for _ in range(self.count())}
        if kind == 117:
            return [self.any(depth + 1) for _ in range(self.count())]
        if kind == 116:
            return self.buf()
        raise MalformedUpdate(f"unknown value type {kind}")


def write_uint(out: bytearray, value: int) -> None:
    while value > 0x7F:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    out.append(value)


def write_buf(out: bytearray, data: bytes) -> None:
    write_uint(out, len(data))
    out += data


def write_string(out: bytearray, text: str) -> None:
    write_buf(out, text.encode("utf-8"))


@dataclass
class UpdateShape:
    """What a v1 update touches: per client the clock range of its structs, and its deletions."""

    structs: dict[int, tuple[int, int]] = field(default_factory=dict)  # client -> (start, end)
    deletes: dict[int, int] = field(default_factory=dict)  # client -> highest deleted clock + 1
    refs: dict[int, int] = field(default_factory=dict)  # client -> highest referenced clock + 1
    skips: dict[int, int] = field(default_factory=dict)  # client -> end of a gap it skips
    struct_count: int = 0

    def integrates_into(self, state: dict[int, int]) -> bool:
        """True when applying the update to a document with this state vector leaves
        nothing pending: no gap before its structs, and every item it builds on or
        deletes is either in the document or in the update itself."""
        if any(state.get(c, 0) < end for c, end in self.skips.items()):
            return False  # a gap the document does not fill
        after = dict(state)
        for c, (start, end) in self.structs.items():
            if start > state.get(c, 0):
                return False
            after[c] = max(after.get(c, 0), end)
        return all(after.get(c, 0) >= end for c, end in self.refs.items()) and all(
            after.get(c, 0) >= end for c, end in self.deletes.items()
        )

    def covered_by(self, state: dict[int, int]) -> bool:
        """True when a document with this state vector holds everything the update refers to."""
        return all(state.get(c, 0) >= end for c, (_, end) in self.structs.items()) and all(
            state.get(c, 0) >= end for c, end in self.deletes.items()
        )

    def _ref(self, d: Decoder) -> None:
        client = d.uint()
        clock = d.uint()
        if self.refs.get(client, 0) <= clock:
            self.refs[client] = clock + 1


def utf16_length(text: str) -> int:
    if text.isascii():
        return len(text)
    return len(text.encode("utf-16-le")) // 2


def _content_length(d: Decoder, kind: int) -> int:
    if kind == _DELETED:
        return d.count()
    if kind == _JSON:
        n = d.count()
        for _ in range(n):
            _json(d.string())
        return n
    if kind == _BINARY:
        d.buf()
        return 1
    if kind == _STRING:
        return utf16_length(d.string())
    if kind == _EMBED:
        _json(d.string())
        return 1
    if kind == _FORMAT:
        d.string()
        _json(d.string())
        return 1
    if kind == _TYPE:
        ref = d.uint()
        if ref > 6:
            raise MalformedUpdate(f"unknown type reference {ref}")
        if ref in (_XML_ELEMENT, _XML_HOOK):
            d.string()
        return 1
    if kind == _ANY:
        n = d.count()
        for _ in range(n):
            d.any()
        return n
    if kind == _DOC:
        d.string()
        d.any()
        return 1
    raise MalformedUpdate(f"unknown content type {kind}")


def _json(text: str) -> None:
    if text == "undefined":
        return
    try:
        json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise MalformedUpdate("embedded JSON does not parse") from exc


def inspect_update(update: bytes, *, max_structs: int = MAX_COUNT) -> UpdateShape:
    """Walk a Yjs v1 update completely; raise ``MalformedUpdate`` on anything off, and
    ``TooComplex`` past ``max_structs`` structs and deleted ranges together (before
    walking the rest)."""
    if not isinstance(update, bytes | bytearray | memoryview):
        raise MalformedUpdate("an update must be bytes")
    d = Decoder(bytes(update))
    shape = UpdateShape()
    for _ in range(d.count()):
        structs = d.count()
        client = d.uint()
        clock = start = d.uint()
        for _ in range(structs):
            info = d.byte()
            kind = info & 0x1F
            if kind == _GC:
                clock += d.count()
            elif kind == _SKIP:
                clock += d.count()
                shape.skips[client] = max(shape.skips.get(client, 0), clock)
            else:
                if info & 0x80:
                    shape._ref(d)  # left origin id
                if info & 0x40:
                    shape._ref(d)  # right origin id
                if not info & 0xC0:  # no origin: the parent is written out
                    if d.uint() == 1:
                        d.string()  # root type name
                    else:
                        shape._ref(d)  # parent item id
                    if info & 0x20:
                        d.string()  # key in a map
                clock += _content_length(d, kind)
            shape.struct_count += 1
            if shape.struct_count > max_structs:
                raise TooComplex(f"the update holds more than {max_structs} structs")
        if structs:
            prev = shape.structs.get(client)
            shape.structs[client] = (min(start, prev[0]), max(clock, prev[1])) if prev else (
                start, clock
            )  # fmt: skip
    for _ in range(d.count()):
        client = d.uint()
        for _ in range(d.count()):
            clock = d.uint()
            length = d.count()
            shape.struct_count += 1  # a deleted range costs an apply about what an item does
            if shape.struct_count > max_structs:
                raise TooComplex(f"the update holds more than {max_structs} structs and ranges")
            if length:
                shape.deletes[client] = max(shape.deletes.get(client, 0), clock + length)
    if not d.done():
        raise MalformedUpdate("trailing bytes after the update")
    return shape


def decode_state_vector(data: bytes) -> dict[int, int]:
    d = Decoder(bytes(data))
    state = {}
    for _ in range(d.count()):
        client = d.uint()
        state[client] = d.uint()
    if not d.done():
        raise MalformedUpdate("trailing bytes after the state vector")
    return state


def doc_state(doc: pycrdt.Doc) -> dict[int, int]:
    return decode_state_vector(doc.get_state())


EMPTY_UPDATE = b"\x00\x00"


def in_kind(data: bytes, binary: bool) -> bytes | list[int]:
    """Bytes in the form a client used: a binary attachment, or an array of byte values."""
    return data if binary else list(data)


# y-protocols -------------------------------------------------------------------------------


def read_sync_message(message: bytes) -> tuple[int, bytes]:
    """A y-protocols sync message: (type, payload). Step 1 carries a state vector,
    step 2 and update carry an update."""
    d = Decoder(bytes(message))
    kind = d.uint()
    if kind not in (SYNC_STEP1, SYNC_STEP2, SYNC_UPDATE):
        raise MalformedUpdate(f"unknown sync message type {kind}")
    payload = d.buf()
    if not d.done():
        raise MalformedUpdate("trailing bytes after the sync message")
    return kind, payload


def sync_message(kind: int, payload: bytes) -> bytes:
    out = bytearray()
    write_uint(out, kind)
    write_buf(out, payload)
    return bytes(out)


# documents ---------------------------------------------------------------------------------


class PendingHistory(UsageError):
    """An update (or a log) refers to history that is not there."""

    code = "invalid_update"


class CopyPolluted(RuntimeError):
    """An update passed the checks but did not integrate; the copy must be rebuilt."""


def apply_checked(doc: pycrdt.Doc, update: bytes, shape: UpdateShape | None = None) -> bool:
    """``apply_with_state`` without a known state: whether the update changed ``doc``."""
    changed, _ = apply_with_state(doc, update, shape)
    return changed


def apply_with_state(
    doc: pycrdt.Doc,
    update: bytes,
    shape: UpdateShape | None = None,
    state: dict[int, int] | None = None,
) -> tuple[bool, dict[int, int]]:
    """Apply an update only if it will integrate completely (nothing left pending);
    return whether it changed the document (False: the document had it all), and the
    document's state vector after it. ``state``: the document's state vector before,
    when the caller knows it (decoding it costs about a microsecond per client id).

    Refuses before touching ``doc`` when the update is malformed or depends on
    history ``doc`` lacks. Should pycrdt still leave something pending, raises
    ``CopyPolluted``: ``doc`` then holds state that is in no log and must be dropped.
    """
    shape = shape or inspect_update(update)
    if not shape.integrates_into(doc_state(doc) if state is None else state):
        raise PendingHistory("the update depends on changes the document does not have")
    changed: list[bool] = []
    subscription = doc.observe(lambda _: changed.append(True))  # fires only on a change
    try:
        doc.apply_update(bytes(update))
    except BaseException as exc:
        # pycrdt refuses structurally invalid updates with ValueError or RuntimeError,
        # and a panic in yrs surfaces as a BaseException; none may escape as a crash
        if not isinstance(exc, Exception) and type(exc).__name__ != "PanicException":
            raise
        raise CopyPolluted(f"pycrdt refused an update that decoded: {exc}") from exc
    finally:
        doc.unobserve(subscription)
    after = doc_state(doc)
    if not shape.covered_by(after):
        raise CopyPolluted("an update did not integrate completely")
    return bool(changed), after


def merge(
    snapshot: bytes | None, updates: list[bytes], clocks: dict[int, int] | None = None
) -> bytes:
    """One update equivalent to ``snapshot`` followed by ``updates``, garbage shed.

    Built by applying everything to a fresh document (linear in the total size,
    unlike ``merge_updates``), then refusing if anything stayed pending: a snapshot
    taken from a document with pending structs would silently drop them. Pending
    shows as a state vector short of what the updates cover: ``clocks`` when the
    caller knows it (the document's clock summary, per client the highest clock + 1
    of every struct and deletion it was ever given, snapshot included; the updates
    were inspected when stored), else found by inspecting every update here.
    """
    doc: pycrdt.Doc = pycrdt.Doc()
    everything = ([snapshot] if snapshot else []) + updates
    wanted: dict[int, int] = {}
    with doc.transaction():  # one transaction: the same document, less overhead per update
        for update in everything:
            if clocks is None:
                shape = inspect_update(update)
                for c, (_, end) in shape.structs.items():
                    wanted[c] = max(wanted.get(c, 0), end)
                for c, end in shape.deletes.items():
                    wanted[c] = max(wanted.get(c, 0), end)
            doc.apply_update(bytes(update))
    if clocks is not None:
        wanted = clocks
    state = doc_state(doc)
    while any(state.get(c, 0) < end for c, end in wanted.items()):
        # A log out of causal order (never written so by rtctl) leaves updates pending
        # that yrs does not always integrate once their history arrives; applying the
        # log again does, as long as each pass makes progress.
        for update in everything:
            doc.apply_update(bytes(update))
        again = doc_state(doc)
        if again == state:
            raise PendingHistory("the log holds updates whose history is missing; not compacted")
        state = again
    return doc.get_update()


def load(update: bytes) -> pycrdt.Doc:
    """A fresh document holding one (trusted) update."""
    doc: pycrdt.Doc = pycrdt.Doc()
    doc.apply_update(bytes(update))
    return doc
