"""A Yjs document model read from a v1 update, for export.

A Yjs update does not say what type a root is: ``doc.getText("a")`` and
``doc.getMap("a")`` are decided by the reader, not stored. pycrdt 0.14 cannot help
either (``Doc._doc.roots(txn)`` maps every root name of a freshly loaded update to
``None``: yrs leaves them ``TypeRef::Undefined``). So this module decodes the update
itself (with the bounded ``rtctl.docs.yjs.Decoder``), integrates its structs the way
Yjs does (the YATA ordering of ``Item.integrate``, item splitting, the delete set),
and infers each root's kind from what it holds:

* a list item with string, format or embed content: **Text**;
* otherwise a list item whose content is an XmlElement, XmlText or XmlHook: **XmlFragment**;
* otherwise an item with a key (``parentSub``): **Map**;
* otherwise: **Array**.

A root whose every item was deleted and garbage collected holds nothing to infer
from and is loaded as an Array, even if it was a Text. Everything is bounded: every
count and length is checked by the decoder, nesting is limited, and any input that
does not decode or integrate (including an update that depends on history it does not
contain) raises ``MalformedUpdate``. ``rtctl.docs.export`` renders the result.
"""

from __future__ import annotations

import json
import struct
from bisect import bisect_right
from operator import attrgetter
from typing import Any

from rtctl.docs.yjs import Decoder, MalformedUpdate, utf16_length

MAX_TYPE_DEPTH = 100  # shared types nested in shared types
MAX_VALUE_DEPTH = 200  # JSON values nested in values (lib0 "any" is bounded lower already)

# content kinds (low five bits of an item's info byte)
_GC, _DELETED, _JSON, _BINARY, STRING, EMBED, FORMAT, TYPE, _ANY, _DOC, _SKIP = range(11)
_TYPE_KINDS = ("array", "map", "text", "xmlelement", "xmlfragment", "xmlhook", "xmltext")
_XML_CHILD_KINDS = frozenset({"xmlelement", "xmltext", "xmlhook"})


class _Undefined:
    """JavaScript ``undefined``, kept apart from ``null`` (``None``) until rendered."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "undefined"


UNDEFINED = _Undefined()


class _ValueDecoder(Decoder):
    """``Decoder`` whose lib0 "any" values keep floats, BigInts and ``undefined``."""

    __slots__ = ()

    def any(self, depth: int = 0) -> Any:
        if depth > 64:
            raise MalformedUpdate("value is nested too deeply")
        kind = self.byte()
        if kind == 127:
            return UNDEFINED
        if kind == 126:
            return None
        if kind == 125:
            return self.sint()
        if kind == 124:
            return struct.unpack(">f", self.take(4))[0]
        if kind == 123:
            return struct.unpack(">d", self.take(8))[0]
        if kind == 122:
            return struct.unpack(">q", self.take(8))[0]
        if kind in (121, 120):
            return kind == 120
        if kind == 119:
            return self.string()
        if kind == 118:
            out = {}
            for _ in range(self.count()):
                key = self.string()
                out[key] = self.any(depth + 1)
            return out
        if kind == 117:
            return [self.any(depth + 1) for _ in range(self.count())]
        if kind == 116:
            return self.buf()
        raise MalformedUpdate(f"unknown value type {kind}")


class SubDoc:
    __slots__ = ("guid", "opts")

    def __init__(self, guid: str, opts: Any) -> None:
        self.guid = guid
        self.opts = opts


class YType:
    """A shared type: its list (``start``, linked through ``right``) and its keys."""

    __slots__ = ("item", "kind", "map", "name", "start")

    def __init__(self, kind: str | None, name: str = "") -> None:
        self.kind = kind  # None for a root until inferred
        self.name = name  # XmlElement node name, XmlHook hook name, or the root name
        self.start: _Item | None = None
        self.map: dict[str, _Item] = {}  # key -> the item holding its current value
        self.item: _Item | None = None  # the item this type is the content of (None: root)


ID = tuple[int, int]


class _GCStruct:
    __slots__ = ("client", "clock", "length")
    deleted = True

    def __init__(self, client: int, clock: int, length: int) -> None:
        self.client = client
        self.clock = clock
        self.length = length


class _Item:
    __slots__ = (
        "client",
        "clock",
        "content",
        "deleted",
        "kind",
        "left",
        "length",
        "origin",
        "parent",
        "parent_ref",
        "parent_sub",
        "right",
        "right_origin",
    )

    def __init__(self, client: int, clock: int, kind: int, content: Any, length: int) -> None:
        self.client = client
        self.clock = clock
        self.kind = kind
        self.content = content
        self.length = length
        self.origin: ID | None = None
        self.right_origin: ID | None = None
        self.left: _Item | None = None
        self.right: _Item | None = None
        self.parent_ref: str | ID | None = None  # as read: a root name, an item id, or absent
        self.parent: YType | None = None
        self.parent_sub: str | None = None
        self.deleted = False

    @property
    def countable(self) -> bool:
        return self.kind not in (_DELETED, FORMAT)

    @property
    def last_id(self) -> ID:
        return (self.client, self.clock + self.length - 1)

    def values(self) -> list[Any]:
        """Yjs ``content.getContent()``."""
        if self.kind in (_ANY, _JSON):
            return list(self.content)
        if self.kind == STRING:
            return list(self.content)  # per code point; only Text reads strings
        if self.kind in (_BINARY, EMBED, TYPE, _DOC):
            return [self.content]
        return []

    def splice(self, offset: int) -> Any:
        """Split the content at ``offset``: keep the left part, return the right one."""
        if self.kind in (_ANY, _JSON):
            right = self.content[offset:]
            self.content = self.content[:offset]
            return right
        if self.kind == STRING:
            left, right = _split_utf16(self.content, offset)
            self.content = left
            return right
        if self.kind == _DELETED:
            return None
        raise MalformedUpdate("an item of length one cannot be split")


_Struct = _Item | _GCStruct
_clock_of = attrgetter("clock")


def _split_utf16(text: str, offset: int) -> tuple[str, str]:
    """Split at a UTF-16 offset as Yjs ``ContentString.splice`` does, replacing a
    surrogate pair cut in half by U+FFFD on both sides."""
    if len(text) == utf16_length(text):
        return text[:offset], text[offset:]
    units = text.encode("utf-16-le")
    left, right = units[: 2 * offset], units[2 * offset :]
    if left and 0xD8 <= left[-1] <= 0xDB:  # the left part ends on a high surrogate
        left = left[:-2] + "\ufffd".encode("utf-16-le")
        right = "\ufffd".encode("utf-16-le") + right[2:]
    return left.decode("utf-16-le"), right.decode("utf-16-le")


def _parse_json(text: str) -> Any:
    if text == "undefined":
        return UNDEFINED
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise MalformedUpdate("embedded JSON does not parse") from exc


# reading -----------------------------------------------------------------------------------


def _read_content(d: _ValueDecoder, kind: int) -> tuple[Any, int]:
    if kind == _DELETED:
        return None, d.count()
    if kind == _JSON:
        values = [_parse_json(d.string()) for _ in range(d.count())]
        return values, len(values)
    if kind == _BINARY:
        return d.buf(), 1
    if kind == STRING:
        text = d.string()
        return text, utf16_length(text)
    if kind == EMBED:
        return _parse_json(d.string()), 1
    if kind == FORMAT:
        key = d.string()
        return (key, _parse_json(d.string())), 1
    if kind == TYPE:
        ref = d.uint()
        if ref >= len(_TYPE_KINDS):
            raise MalformedUpdate(f"unknown type reference {ref}")
        name = d.string() if ref in (3, 5) else ""
        return YType(_TYPE_KINDS[ref], name), 1
    if kind == _ANY:
        values = [d.any() for _ in range(d.count())]
        return values, len(values)
    if kind == _DOC:
        guid = d.string()
        return SubDoc(guid, d.any()), 1
    raise MalformedUpdate(f"unknown content type {kind}")


def _read_id(d: Decoder) -> ID:
    return d.uint(), d.uint()


def _read_update(update: bytes) -> tuple[dict[int, list[_Struct]], list[tuple[int, int, int]]]:
    if not isinstance(update, bytes | bytearray | memoryview):
        raise MalformedUpdate("an update must be bytes")
    d = _ValueDecoder(bytes(update))
    refs: dict[int, list[_Struct]] = {}
    for _ in range(d.count()):
        n = d.count()
        client = d.uint()
        clock = d.uint()
        structs = refs.setdefault(client, [])
        for _ in range(n):
            info = d.byte()
            kind = info & 0x1F
            if kind == _GC:
                length = d.count()
                structs.append(_GCStruct(client, clock, length))
            elif kind == _SKIP:
                length = d.count()  # a gap: nothing is stored for it
            else:
                origin = _read_id(d) if info & 0x80 else None
                right_origin = _read_id(d) if info & 0x40 else None
                parent_ref: str | ID | None = None
                parent_sub = None
                if not info & 0xC0:
                    parent_ref = d.string() if d.uint() == 1 else _read_id(d)
                    if info & 0x20:
                        parent_sub = d.string()
                content, length = _read_content(d, kind)
                item = _Item(client, clock, kind, content, length)
                item.origin, item.right_origin = origin, right_origin
                item.parent_ref, item.parent_sub = parent_ref, parent_sub
                if length:
                    structs.append(item)
            clock += length
    deletes = []
    for _ in range(d.count()):
        client = d.uint()
        for _ in range(d.count()):
            clock = d.uint()
            length = d.count()
            if length:
                deletes.append((client, clock, length))
    if not d.done():
        raise MalformedUpdate("trailing bytes after the update")
    for structs in refs.values():
        structs.sort(key=_clock_of)  # a client may appear in several sections
    return refs, deletes


# integrating -------------------------------------------------------------------------------


class _Store:
    """The integrated document: per client its structs in clock order, and the roots."""

    def __init__(self) -> None:
        self.clients: dict[int, list[_Struct]] = {}
        self.roots: dict[str, YType] = {}

    def state(self, client: int) -> int:
        structs = self.clients.get(client)
        if not structs:
            return 0
        last = structs[-1]
        return last.clock + last.length

    def find_index(self, client: int, clock: int) -> int:
        structs = self.clients.get(client)
        if structs:
            i = bisect_right(structs, clock, key=_clock_of) - 1
            if i >= 0 and clock < structs[i].clock + structs[i].length:
                return i
        raise MalformedUpdate(f"the update refers to {client}:{clock}, which it does not contain")

    def get(self, id_: ID) -> _Struct:
        index = self.find_index(*id_)
        return self.clients[id_[0]][index]

    def split(self, item: _Item, diff: int) -> _Item:
        """Yjs ``splitItem``: ``item`` keeps ``diff`` units, the rest becomes a new item
        right after it (in the list and in the store)."""
        right = _Item(item.client, item.clock + diff, item.kind, item.splice(diff), 0)
        right.length = item.length - diff
        item.length = diff
        right.origin = (item.client, item.clock + diff - 1)
        right.left, right.right = item, item.right
        right.right_origin = item.right_origin
        right.parent, right.parent_sub = item.parent, item.parent_sub
        right.deleted = item.deleted
        item.right = right
        if right.right is not None:
            right.right.left = right
        if right.parent_sub is not None and right.right is None and right.parent is not None:
            right.parent.map[right.parent_sub] = right
        structs = self.clients[item.client]
        structs.insert(self.find_index(item.client, item.clock) + 1, right)
        return right

    def clean_start(self, id_: ID) -> _Struct:
        s = self.get(id_)
        if isinstance(s, _Item) and s.clock < id_[1]:
            return self.split(s, id_[1] - s.clock)
        return s

    def clean_end(self, id_: ID) -> _Struct:
        s = self.get(id_)
        if isinstance(s, _Item) and id_[1] != s.clock + s.length - 1:
            self.split(s, id_[1] - s.clock + 1)
        return s

    def add(self, s: _Struct) -> None:
        self.clients.setdefault(s.client, []).append(s)

    # Item.getMissing / Item.integrate --------------------------------------------------

    def missing(self, item: _Item) -> int | None:
        for ref in (item.origin, item.right_origin, item.parent_ref):
            if isinstance(ref, tuple) and ref[0] != item.client and ref[1] >= self.state(ref[0]):
                return ref[0]
        return None

    def resolve(self, item: _Item) -> bool:
        """Find the item's neighbours and parent; False when it must become a GC struct."""
        left: _Struct | None = None
        right: _Struct | None = None
        if item.origin is not None:
            left = self.clean_end(item.origin)
            if isinstance(left, _Item):
                item.origin = left.last_id
        if item.right_origin is not None:
            right = self.clean_start(item.right_origin)
            item.right_origin = (right.client, right.clock)
        if isinstance(left, _GCStruct) or isinstance(right, _GCStruct):
            return False
        item.left, item.right = left, right
        ref = item.parent_ref
        if ref is None:
            source = left if left is not None else right
            if source is None:
                return False
            item.parent, item.parent_sub = source.parent, source.parent_sub
        elif isinstance(ref, str):
            item.parent = self.roots.get(ref) or self.roots.setdefault(ref, YType(None, ref))
        else:
            owner = self.get(ref)
            if isinstance(owner, _GCStruct):
                return False
            if owner.kind != TYPE:
                raise MalformedUpdate("an item's parent is not a shared type")
            item.parent = owner.content
        return item.parent is not None

    def integrate(self, item: _Item, offset: int) -> None:
        if offset > 0:
            item.clock += offset
            prev = self.clean_end((item.client, item.clock - 1))
            item.left = prev if isinstance(prev, _Item) else None
            item.origin = (item.client, item.clock - 1)
            item.content = item.splice(offset) if item.kind != _DELETED else None
            item.length -= offset
        if not self.resolve(item):
            self.add(_GCStruct(item.client, item.clock, item.length))
            return
        parent = item.parent
        assert parent is not None
        if (item.left is None and (item.right is None or item.right.left is not None)) or (
            item.left is not None and item.left.right is not item.right
        ):
            left = item.left
            o: _Item | None
            if left is not None:
                o = left.right
            elif item.parent_sub is not None:
                o = parent.map.get(item.parent_sub)
                while o is not None and o.left is not None:
                    o = o.left
            else:
                o = parent.start
            conflicting: set[int] = set()
            before_origin: set[int] = set()
            while o is not None and o is not item.right:
                before_origin.add(id(o))
                conflicting.add(id(o))
                if item.origin == o.origin:
                    if o.client < item.client:
                        left = o
                        conflicting.clear()
                    elif item.right_origin == o.right_origin:
                        break
                elif o.origin is not None and id(self.get(o.origin)) in before_origin:
                    if id(self.get(o.origin)) not in conflicting:
                        left = o
                        conflicting.clear()
                else:
                    break
                o = o.right
            item.left = left
        r: _Item | None
        if item.left is not None:
            item.right = item.left.right
            item.left.right = item
        else:
            if item.parent_sub is not None:
                r = parent.map.get(item.parent_sub)
                while r is not None and r.left is not None:
                    r = r.left
            else:
                r = parent.start
                parent.start = item
            item.right = r
        if item.right is not None:
            item.right.left = item
        elif item.parent_sub is not None:
            parent.map[item.parent_sub] = item
            if item.left is not None:
                item.left.deleted = True  # the key's previous value
        self.add(item)
        if item.kind == _DELETED:
            item.deleted = True
        elif item.kind == TYPE:
            item.content.item = item
        if (parent.item is not None and parent.item.deleted) or (
            item.parent_sub is not None and item.right is not None
        ):
            item.deleted = True

    def integrate_all(self, refs: dict[int, list[_Struct]]) -> None:
        """Yjs ``integrateStructs``: each client's structs in clock order, detouring
        to another client's when an item builds on one of them."""
        queues = {c: (structs, [0]) for c, structs in refs.items()}

        def take(client: int) -> _Struct | None:
            entry = queues.get(client)
            if entry is None or entry[1][0] >= len(entry[0]):
                return None
            structs, pos = entry
            pos[0] += 1
            return structs[pos[0] - 1]

        for client in sorted(queues, reverse=True):
            while (head := take(client)) is not None:
                stack = [head]
                while stack:
                    s = stack[-1]
                    offset = self.state(s.client) - s.clock
                    if offset < 0:
                        raise MalformedUpdate("the update depends on history it does not contain")
                    if isinstance(s, _Item):
                        need = self.missing(s)
                        if need is not None:
                            dep = take(need)
                            if dep is None:
                                raise MalformedUpdate(
                                    "the update depends on history it does not contain"
                                )
                            stack.append(dep)
                            continue
                    stack.pop()
                    if offset >= s.length:
                        continue  # already known
                    if isinstance(s, _Item):
                        self.integrate(s, offset)
                    else:
                        self.add(_GCStruct(s.client, s.clock + offset, s.length - offset))

    def apply_deletes(self, deletes: list[tuple[int, int, int]]) -> None:
        """Yjs ``readAndApplyDeleteSet``; ranges beyond the known state are ignored."""
        for client, clock, length in deletes:
            end = clock + length
            if clock >= self.state(client):
                continue
            structs = self.clients[client]
            index = self.find_index(client, clock)
            s = structs[index]
            if isinstance(s, _Item) and not s.deleted and s.clock < clock:
                self.split(s, clock - s.clock)
                index += 1
            while index < len(structs):
                s = structs[index]
                index += 1
                if s.clock >= end:
                    break
                if isinstance(s, _Item) and not s.deleted:
                    if end < s.clock + s.length:
                        self.split(s, end - s.clock)
                    s.deleted = True


def load_types(update: bytes) -> dict[str, YType]:
    refs, deletes = _read_update(update)
    store = _Store()
    store.integrate_all(refs)
    store.apply_deletes(deletes)
    for root in store.roots.values():
        root.kind = _infer_kind(root)
    return {name: store.roots[name] for name in sorted(store.roots)}  # not in struct order


def _all_items(t: YType) -> list[_Item]:
    out = []
    n = t.start
    while n is not None:
        out.append(n)
        n = n.right
    return out


def _infer_kind(root: YType) -> str:
    items = _all_items(root)
    if any(i.kind in (STRING, FORMAT, EMBED) for i in items):
        return "text"
    if any(i.kind == TYPE and i.content.kind in _XML_CHILD_KINDS for i in items):
        return "xmlfragment"
    if root.map:
        return "map"
    return "array"
