"""``-w/--watch`` on listings: the listing, then each change as it happens.

The listing is read again every ``INTERVAL`` seconds (the same request as without
``--watch``, so it works alike embedded and on Redis, with or without a daemon) and
compared by id with the one before. Each change is a line: on a terminal and in
tab-separated output ``ADDED``, ``MODIFIED`` or ``DELETED`` before the row's columns;
with ``-o json`` one object ``{type, object}`` per line; with ``-o name`` the type and
the id. A field in the view's ``volatile`` (a heartbeat time) changing alone is no news.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

from rtctl.cli.common import Invocation
from rtctl.cli.output import cell, inert, json_line, print_rows
from rtctl.cli.views import View

INTERVAL = 1.0  # seconds between two readings

Rows = list[dict[str, Any]]


def show(inv: Invocation, view: View, fetch: Callable[[], Rows], empty: str) -> None:
    """A listing; with ``--watch``, followed by its changes until interrupted."""
    if not inv.watch:
        print_rows(inv, view, fetch(), empty)
        return
    try:
        rows = fetch()
        if inv.format in ("table", "wide"):
            print_rows(inv, view, rows, empty)  # then each change as a line
        else:
            for row in rows:
                _change(inv, view, "ADDED", row)
        _follow(inv, view, fetch, rows)
    except KeyboardInterrupt:
        return  # the way out of a watch: not an error


def _follow(inv: Invocation, view: View, fetch: Callable[[], Rows], rows: Rows) -> None:
    known = {str(r.get(view.id_field)): r for r in rows}
    while True:
        time.sleep(INTERVAL)
        current = {str(r.get(view.id_field)): r for r in fetch()}
        for key in sorted(current.keys() - known.keys()):
            _change(inv, view, "ADDED", current[key])
        for key in sorted(current.keys() & known.keys()):
            if _news(view, known[key], current[key]):
                _change(inv, view, "MODIFIED", current[key])
        for key in sorted(known.keys() - current.keys()):
            _change(inv, view, "DELETED", known[key])
        known = current


def _news(view: View, before: dict[str, Any], after: dict[str, Any]) -> bool:
    return any(before.get(f) != after.get(f) for f in view.fields if f not in view.volatile)


def _change(inv: Invocation, view: View, kind: str, row: dict[str, Any]) -> None:
    fmt = inv.format
    if fmt == "json":
        line = json_line({"type": kind, "object": view.json_row(row)})
    elif fmt == "name":
        line = f"{kind}\t{inert(str(row.get(view.id_field, '')))}\n"
    else:
        fields = [c.field for c in view.visible(wide=fmt in ("wide", "plain-wide"))]
        line = "\t".join([kind, *(cell(row.get(f), plain=True) for f in fields)]) + "\n"
    sys.stdout.write(line)
    sys.stdout.flush()
