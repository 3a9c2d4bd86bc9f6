"""Exporting a document snapshot: a Yjs v1 update rendered as JSON or plain text.

The update is loaded into a document model by ``rtctl.docs.ymodel``, which infers
each root's kind (Text, Map, Array, XmlFragment) from its content.

JSON (``export_json``) follows Yjs ``toJSON()`` of the typed root: Text → its string
(formatting and embeds dropped), Map → object, Array → list, XmlFragment → the
``toString()`` markup. Nested shared types take their own ``toJSON()``. Values that
JSON cannot carry as Yjs has them are mapped as ``JSON.stringify`` would, except:

* binary (``Uint8Array``) → a base64 string (standard alphabet, padded);
* a BigInt → a Python ``int`` (``JSON.stringify`` would throw);
* a sub-document → ``{"subdoc": guid}``;
* ``undefined`` → omitted from an object, ``null`` in a list; NaN and ±Infinity → ``null``.

A root whose every item was deleted and garbage collected exports as ``[]``. Input that
does not decode or integrate raises ``MalformedUpdate``.
"""

from __future__ import annotations

import base64
import math
from typing import Any

from rtctl.docs.yjs import MalformedUpdate
from rtctl.docs.ymodel import (
    EMBED,
    FORMAT,
    MAX_TYPE_DEPTH,
    MAX_VALUE_DEPTH,
    STRING,
    TYPE,
    UNDEFINED,
    SubDoc,
    YType,
    load_types,
)

__all__ = ["export_json", "export_prosemirror", "export_text", "root_kinds"]

_LINE_BREAKS = frozenset({"hard_break", "hardbreak", "br"})


# rendering ---------------------------------------------------------------------------------


def _list_values(t: YType) -> list[Any]:
    out: list[Any] = []
    n = t.start
    while n is not None:
        if n.countable and not n.deleted:
            out.extend(n.values())
        n = n.right
    return out


def _map_values(t: YType) -> dict[str, Any]:
    return {k: item.values()[-1] for k, item in t.map.items() if not item.deleted and item.values()}


def _text_string(t: YType) -> str:
    parts = []
    n = t.start
    while n is not None:
        if not n.deleted and n.kind == STRING:
            parts.append(n.content)
        n = n.right
    return "".join(parts)


def _check_depth(depth: int) -> None:
    if depth > MAX_TYPE_DEPTH:
        raise MalformedUpdate("shared types are nested too deeply")


def _type_json(t: YType, depth: int) -> Any:
    _check_depth(depth)
    kind = t.kind
    if kind == "text":
        return _text_string(t)
    if kind in ("map", "xmlhook"):
        out = {}
        for k, v in _map_values(t).items():
            if v is not UNDEFINED:
                out[k] = _value_json(v, depth + 1, 0)
        return out
    if kind == "array":
        return [_value_json(v, depth + 1, 0) for v in _list_values(t)]
    return _type_string(t, depth)


def _value_json(v: Any, type_depth: int, depth: int) -> Any:
    if depth > MAX_VALUE_DEPTH:
        raise MalformedUpdate("values are nested too deeply")
    if isinstance(v, YType):
        return _type_json(v, type_depth)
    if v is UNDEFINED:
        return None
    if isinstance(v, bytes):
        return base64.b64encode(v).decode("ascii")
    if isinstance(v, float):
        if not math.isfinite(v):
            return None
        if v.is_integer() and abs(v) < 2**53:
            return int(v)
        return v
    if isinstance(v, dict):
        return {
            k: _value_json(x, type_depth, depth + 1) for k, x in v.items() if x is not UNDEFINED
        }
    if isinstance(v, list):
        return [_value_json(x, type_depth, depth + 1) for x in v]
    if isinstance(v, SubDoc):
        return {"subdoc": v.guid}
    return v


def _utf16_key(s: str) -> bytes:
    return s.encode("utf-16-be", "surrogatepass")  # JavaScript compares strings by code unit


def _js_number(v: float) -> str:
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "Infinity" if v > 0 else "-Infinity"
    if v.is_integer() and abs(v) < 1e21:
        return str(int(v))
    text = repr(v)
    if "e" in text:
        mantissa, exp = text.split("e")
        sign = "-" if exp.startswith("-") else "+"
        text = f"{mantissa}e{sign}{exp.lstrip('+-').lstrip('0') or '0'}"
    return text


def _js_string(v: Any, depth: int) -> str:
    """JavaScript ``String(v)``, as Yjs's ``toString()`` of XML types interpolates values."""
    if depth > MAX_VALUE_DEPTH:
        raise MalformedUpdate("values are nested too deeply")
    if isinstance(v, str):
        return v
    if v is None:
        return "null"
    if v is UNDEFINED:
        return "undefined"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return _js_number(v)
    if isinstance(v, list):
        return ",".join("" if x is None or x is UNDEFINED else _js_string(x, depth + 1) for x in v)
    if isinstance(v, bytes):
        return ",".join(str(b) for b in v)
    if isinstance(v, YType):
        return _type_string(v, depth)
    return "[object Object]"


def _js_keys(v: Any) -> list[tuple[str, Any]]:
    """``for (const key in v)`` with ``v[key]``."""
    if isinstance(v, dict):
        return list(v.items())
    if isinstance(v, str | list):
        return [(str(i), x) for i, x in enumerate(v)]
    return []


def _text_delta(t: YType) -> list[tuple[Any, dict[str, Any]]]:
    """Yjs ``YText.toDelta()`` as (insert, attributes) pairs."""
    ops: list[tuple[Any, dict[str, Any]]] = []
    attrs: dict[str, Any] = {}
    pending: list[str] = []

    def pack() -> None:
        if pending:
            ops.append(("".join(pending), dict(attrs)))
            pending.clear()

    n = t.start
    while n is not None:
        if not n.deleted:
            if n.kind == STRING:
                pending.append(n.content)
            elif n.kind in (TYPE, EMBED):
                pack()
                ops.append((n.content, dict(attrs)))
            elif n.kind == FORMAT:
                pack()
                key, value = n.content
                if value is None:
                    attrs.pop(key, None)
                else:
                    attrs[key] = value
        n = n.right
    pack()
    return ops


def _xml_text_string(t: YType, depth: int) -> str:
    out = []
    for insert, attributes in _text_delta(t):
        nodes = sorted(
            (
                (name, sorted(_js_keys(value), key=lambda kv: _utf16_key(kv[0])))
                for name, value in attributes.items()
            ),
            key=lambda node: _utf16_key(node[0]),
        )
        for name, node_attrs in nodes:
            out.append(f"<{name}")
            out.extend(f' {k}="{_js_string(v, depth + 1)}"' for k, v in node_attrs)
            out.append(">")
        out.append(_js_string(insert, depth + 1))
        out.extend(f"</{name}>" for name, _ in reversed(nodes))
    return "".join(out)


def _type_string(t: YType, depth: int) -> str:
    """Yjs ``toString()`` of a shared type (``toJSON()`` of the XML types)."""
    _check_depth(depth)
    kind = t.kind
    if kind == "text":
        return _text_string(t)
    if kind == "xmltext":
        return _xml_text_string(t, depth)
    if kind in ("xmlfragment", "xmlelement"):
        inner = "".join(_js_string(v, depth + 1) for v in _list_values(t))
        if kind == "xmlfragment":
            return inner
        attrs = _map_values(t)
        pairs = "".join(
            f' {k}="{_js_string(attrs[k], depth + 1)}"' for k in sorted(attrs, key=_utf16_key)
        )
        name = t.name.lower()
        return f"<{name}{pairs}>{inner}</{name}>"
    return "[object Object]"  # Map, Array and XmlHook have no toString of their own


# ProseMirror JSON ---------------------------------------------------------------------------


def _pm_node(t: YType, depth: int) -> Any:
    """y-prosemirror's serialisation of one child: an element as a node, a text as a
    list of text nodes with their marks."""
    _check_depth(depth)
    if t.kind in ("xmltext", "text"):
        return [
            {"type": "text", "text": insert,
             "marks": [{"type": k, "attrs": _value_json(v, depth + 1, 0)}
                       for k, v in attributes.items()]}
            if attributes else {"type": "text", "text": insert}
            for insert, attributes in _text_delta(t) if isinstance(insert, str)
        ]  # fmt: skip
    node: dict[str, Any] = {"type": t.name}
    attrs = {k: _value_json(v, depth + 1, 0) for k, v in _map_values(t).items()}
    if attrs:
        node["attrs"] = attrs
    content = _pm_content(t, depth + 1)
    if content:
        node["content"] = content
    return node


def _pm_content(t: YType, depth: int) -> list[Any]:
    out: list[Any] = []
    for child in _list_values(t):
        if isinstance(child, YType):
            node = _pm_node(child, depth)
            out.extend(node if isinstance(node, list) else [node])
    return out


# plain text --------------------------------------------------------------------------------


def _inline_text(t: YType, depth: int) -> str:
    """The text inside a text block: its text nodes, inline elements flattened."""
    _check_depth(depth)
    parts = []
    for v in _list_values(t):
        if not isinstance(v, YType):
            continue
        if v.kind in ("xmltext", "text"):
            parts.append(_text_string(v))
        elif v.kind == "xmlelement":
            if v.name.lower() in _LINE_BREAKS:
                parts.append("\n")
            else:
                parts.append(_inline_text(v, depth + 1))
    return "".join(parts)


def _block_lines(t: YType, depth: int) -> list[str]:
    """Lines of an XML fragment or element: an element holding text (or nothing) is
    one block, one line; an element holding only elements contains blocks."""
    _check_depth(depth)
    lines: list[str] = []
    inline: list[str] | None = None
    for v in _list_values(t):
        if not isinstance(v, YType):
            continue
        if v.kind in ("xmltext", "text"):
            inline = inline or []
            inline.append(_text_string(v))
        elif v.kind == "xmlelement":
            if inline is not None:
                lines.append("".join(inline))
                inline = None
            children = [c for c in _list_values(v) if isinstance(c, YType)]
            if children and all(c.kind == "xmlelement" for c in children):
                lines.extend(_block_lines(v, depth + 1))
            else:
                lines.append(_inline_text(v, depth + 1))
    if inline is not None:
        lines.append("".join(inline))
    return lines


# public ------------------------------------------------------------------------------------


def root_kinds(update: bytes) -> dict[str, str]:
    """Each root's inferred kind: ``text``, ``map``, ``array`` or ``xmlfragment``."""
    return {name: str(t.kind) for name, t in _guarded_load(update).items()}


def _guarded_load(update: bytes) -> dict[str, YType]:
    try:
        return load_types(update)
    except RecursionError as exc:
        raise MalformedUpdate("the update is nested too deeply") from exc


def export_json(update: bytes) -> dict[str, Any]:
    """Every root of the document as JSON, keyed by root name in name order (see the
    module docstring for how kinds are inferred and values mapped)."""
    roots = _guarded_load(update)
    try:
        return {name: _type_json(t, 0) for name, t in roots.items()}
    except RecursionError as exc:
        raise MalformedUpdate("the document is nested too deeply") from exc


def export_prosemirror(update: bytes) -> dict[str, Any]:
    """Every XML fragment root as ProseMirror JSON (``{type: "doc", content}``), as
    y-prosemirror's ``yXmlFragmentToProsemirrorJSON`` gives it: what an editor app
    built on ProseMirror or Tiptap stores (Open WebUI's notes: ``content.json``)."""
    roots = _guarded_load(update)
    try:
        return {
            name: {"type": "doc", "content": _pm_content(t, 1)}
            for name, t in sorted(roots.items())
            if t.kind == "xmlfragment"
        }
    except RecursionError as exc:
        raise MalformedUpdate("the document is nested too deeply") from exc


def export_text(update: bytes) -> str:
    """The plain text of every Text root and XML fragment, roots in name order and
    separated by a blank line. A fragment gives one line per text block (a ProseMirror
    paragraph, heading, list item's paragraph...), hard breaks as newlines."""
    roots = _guarded_load(update)
    parts = []
    try:
        for name in sorted(roots):
            t = roots[name]
            if t.kind == "text":
                parts.append(_text_string(t))
            elif t.kind == "xmlfragment":
                parts.append("\n".join(_block_lines(t, 0)))
    except RecursionError as exc:
        raise MalformedUpdate("the document is nested too deeply") from exc
    return "\n\n".join(parts)
