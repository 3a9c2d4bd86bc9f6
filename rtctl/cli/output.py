"""Printing: data to stdout in the chosen format, messages to stderr, confirmation prompts.

Formats (``Invocation.format``):

- ``json``: one JSON document; a listing is one array (``[]`` when empty).
- ``name``: one id per line (``-o name`` or ``-q``).
- ``table`` / ``wide``: a rich table, on a terminal only.
- ``plain`` / ``plain-wide``: what ``table`` / ``wide`` become when stdout is not a
  terminal: one record per line, fields separated by tabs, no header, no colour, no
  truncation; lists joined with commas, absent values empty. The columns are those of
  the table (each command's help lists them), so ``cut -f1`` gives the ids.

Rich is imported only to draw a table on a terminal.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Iterable, Sequence
from json.encoder import encode_basestring
from typing import Any

from rtctl.cli.common import Invocation
from rtctl.cli.views import View
from rtctl.errors import OperationFailed, UsageError

_ENCODER = json.JSONEncoder(ensure_ascii=False)


def print_json(value: Any) -> None:
    """One JSON document. A list prints one element per line: as readable as indenting,
    greppable, and several times faster (an indenting encoder is pure Python)."""
    if isinstance(value, list) and value:
        rows = ",\n".join("  " + json.dumps(row, ensure_ascii=False) for row in value)
        sys.stdout.write(_inert_json("[\n" + rows + "\n]\n"))
    else:
        sys.stdout.write(_inert_json(json.dumps(value, indent=2, ensure_ascii=False) + "\n"))


def _inert_json(encoded: str) -> str:
    """JSON escapes C0 controls itself; DEL, C1 and bidirectional overrides (only ever
    inside strings) are escaped here too, so no output form can drive a terminal."""
    if _UNSAFE_IN_JSON.search(encoded) is None:
        return encoded
    return _UNSAFE_IN_JSON.sub(lambda m: f"\\u{ord(m.group()):04x}", encoded)


def json_rows(fields: Sequence[str], rows: Sequence[dict[str, Any]]) -> str:
    """``print_json([{f: row.get(f) for f in fields} for row in rows])``, to the byte, at a
    third of the cost for large listings: strings and lists of strings, the bulk of every
    record, are encoded here, anything else by ``json``."""
    if not rows:
        return "[]\n"
    enc, other = encode_basestring, _ENCODER.encode
    keys = [(enc(f) + ": ", f) for f in fields]
    lines = []
    for row in rows:
        parts = []
        for key, f in keys:
            v = row.get(f)
            if type(v) is str:
                parts.append(key + enc(v))
            elif type(v) is list and all(type(x) is str for x in v):
                parts.append(key + "[" + ", ".join(map(enc, v)) + "]")
            else:
                parts.append(key + other(v))
        lines.append("  {" + ", ".join(parts) + "}")
    return "[\n" + ",\n".join(lines) + "\n]\n"


def print_rows(inv: Invocation, view: View, rows: Sequence[dict[str, Any]], empty: str) -> None:
    """A listing in the invocation's format; ``empty`` is said (on a terminal) for none."""
    fmt = inv.format
    if fmt == "json":
        sys.stdout.write(_inert_json(json_rows(view.fields, rows)))
    elif fmt == "name":
        _write_lines(inert(str(row.get(view.id_field, ""))) for row in rows)
    elif fmt.startswith("plain"):
        fields = [c.field for c in view.visible(wide=fmt == "plain-wide")]
        _write_lines("\t".join([cell(row.get(f), plain=True) for f in fields]) for row in rows)
    elif not rows:
        say(inv, empty)
    else:
        columns = view.visible(wide=fmt == "wide")
        ids = [i for i, c in enumerate(columns) if c.field == view.id_field]
        _rich_table(
            inv,
            [c.header for c in columns],
            [[row.get(c.field) for c in columns] for row in rows],
            id_column=ids[0] if ids else None,
        )


def print_fields(inv: Invocation, pairs: Sequence[tuple[str, Any]], as_json: Any) -> None:
    """One object: ``key  value`` lines (tab-separated off a terminal), or ``as_json``."""
    fmt = inv.format
    if fmt == "json":
        print_json(as_json)
    elif fmt.startswith("plain") or fmt == "name":
        for key, value in pairs:
            print(f"{key}\t{cell(value, plain=True)}")
    else:
        width = max(len(k) for k, _ in pairs)
        console = _console(inv)
        for key, value in pairs:
            console.print(f"[bold]{key.ljust(width)}[/bold]  ", end="")
            console.print(cell(value, plain=False), markup=False)


def _write_lines(lines: Iterable[str]) -> None:
    """What ``print`` of each line writes, in one write."""
    out = list(lines)
    if out:
        sys.stdout.write("\n".join(out) + "\n")


def print_ids(ids: Iterable[str]) -> None:
    for item in ids:
        print(inert(item))


def say(inv: Invocation, message: str) -> None:
    """A message for the person at the terminal: stderr, silenced by ``-q``."""
    if not inv.quiet:
        print(message, file=sys.stderr)


def confirm(inv: Invocation, question: str) -> None:
    """Go on if ``--yes`` or the user agrees at a terminal; raise otherwise."""
    if inv.yes:
        return
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise UsageError(f"{question.rstrip('?')}: not a terminal, so pass -y/--yes to confirm")
    sys.stderr.write(f"{question} [y/N] ")
    sys.stderr.flush()
    if sys.stdin.readline().strip().lower() not in ("y", "yes"):
        raise OperationFailed("cancelled")


# What a client chose must print as inert text: no terminal control sequence (C0, DEL,
# C1: ESC and CSI start them), no bidirectional override reordering what follows.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_UNSAFE_IN_JSON = re.compile("[\x7f-\x9f\u202a-\u202e\u2066-\u2069]")  # JSON escapes C0
_LINE_BREAKS = re.compile("[\t\n\r]+")


def inert(text: str) -> str:
    """``text`` with each control character shown as its escape (``\\x1b``); tabs and
    line breaks become one space, so a field never splits a record."""
    if _UNSAFE.search(text) is None:
        return text
    text = _LINE_BREAKS.sub(" ", text)
    return _UNSAFE.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100
                       else f"\\u{ord(m.group()):04x}", text)  # fmt: skip


_UNSAFE_IN_PROSE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def inert_prose(text: str) -> str:
    """Text as written (a streamed reply): its line breaks and tabs kept, every other
    control character shown as its escape, so it cannot drive the terminal."""
    if _UNSAFE_IN_PROSE.search(text) is None:
        return text
    return _UNSAFE_IN_PROSE.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100
                                else f"\\u{ord(m.group()):04x}", text)  # fmt: skip


def json_line(record: Any) -> str:
    """One record as one line of inert JSON."""
    return _inert_json(json.dumps(record, ensure_ascii=False, separators=(",", ":"))) + "\n"


def cell(value: Any, *, plain: bool) -> str:
    if value is None or value == []:
        return "" if plain else "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return inert(",".join(str(v) for v in value))
    return inert(str(value))


def _console(inv: Invocation) -> Any:
    from rich.console import Console

    if inv.no_color or os.environ.get("NO_COLOR"):
        # color_system=None drops every escape code; no_color=True would still print bold.
        return Console(color_system=None, highlight=False, soft_wrap=False)
    return Console(highlight=False, soft_wrap=False)


def _rich_table(
    inv: Invocation, headers: list[str], rows: list[list[Any]], id_column: int | None
) -> None:
    """A table on the terminal. Cells are ``Text``: never read as Rich markup. The id
    column is never folded, so an id can be copied whole; the others give way."""
    from rich.table import Table
    from rich.text import Text

    cells = [[cell(v, plain=False) for v in row] for row in rows]
    table = Table(box=None, pad_edge=False, padding=(0, 2, 0, 0), header_style="bold")
    for i, header in enumerate(headers):
        if i == id_column:
            widest = max([len(header), *(len(row[i]) for row in cells)])
            table.add_column(header, style="cyan" if i == 0 else None, no_wrap=True,
                             min_width=widest)  # fmt: skip
        else:
            table.add_column(header, style="cyan" if i == 0 else None, overflow="fold")
    for row in cells:
        table.add_row(*(Text(c) for c in row))
    _console(inv).print(table)
