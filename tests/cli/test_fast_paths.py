"""The CLI's shortcuts give exactly what the general code they stand in for gives.

``rtctl sessions list`` on a large Redis deployment takes shortcuts (bench/RESULTS.md,
Redis section 4): one JSON decode for all stored records, timestamps formatted once
per second, JSON rows encoded by hand, only the invoked command's module built. Each
is checked here against the code it replaces.
"""

from __future__ import annotations

import io
import json
import math
import random
from contextlib import redirect_stdout
from typing import Any

import pytest
import typer.main

from rtctl.cli import main, views
from rtctl.cli.common import Output
from rtctl.cli.output import json_rows, print_json
from rtctl.cli.redis_remote import IsoCache
from rtctl.state.base import SessionRecord, iso
from rtctl.state.redis import _session, _session_json, _sessions


def test_typer_still_reports_bad_values() -> None:
    from typer.testing import CliRunner

    result = CliRunner().invoke(main.build(), ["sessions", "list", "-o", "tsv"])
    assert result.exit_code == 2
    assert "'tsv' is not one of 'table', 'wide', 'json', 'name'" in result.output


def test_only_names_every_top_level_command() -> None:
    full = typer.main.get_command(main.build())
    assert set(full.commands) == set(main.NAMES)  # type: ignore[attr-defined]
    for name in main.NAMES:
        part = typer.main.get_command(main.build(only=name))
        assert name in part.commands  # type: ignore[attr-defined]
        ours, whole = part.commands[name], full.commands[name]  # type: ignore[attr-defined]
        assert _describe(ours) == _describe(whole)


def _describe(command: Any) -> Any:
    params = [(p.name, p.opts, p.secondary_opts, p.default, getattr(p, "help", None))
              for p in command.params]  # fmt: skip
    subs = {n: _describe(c) for n, c in getattr(command, "commands", {}).items()}
    return command.help, command.epilog, params, subs


def test_iso_cache_is_iso() -> None:
    rnd = random.Random(7)
    cache = IsoCache()
    stamps = [rnd.uniform(0, 4e9) for _ in range(20_000)]
    edges = (0.0, 0.0005, 0.0000005, 0.4995, 0.999, 0.9994999, 0.9995, 0.9999995)
    stamps += [math.floor(t) + f for t in stamps[:2000] for f in edges]
    stamps += [math.nextafter(t, 0) for t in stamps[:2000]] + [0.0, 253402300798.9999999]
    for ts in stamps:
        assert cache(ts) == iso(ts), ts
    for odd in (None, 5, -1.5):
        assert cache(odd) == iso(odd)  # type: ignore[arg-type]


def _record(i: int) -> SessionRecord:
    rooms = [f"user:u{i % 7}", "channel:c1"][: i % 3]
    name = f'Üser "{i}"\t'
    return SessionRecord(f"s{i}", f"u{i % 7}", name, "node-1", 1764063672.2355 + i,
                         1764063672.0 + i / 3, rooms)  # fmt: skip


def test_session_rows_are_to_json() -> None:
    from rtctl.cli.redis_remote import _session_json as rows_of

    async def records() -> list[SessionRecord]:
        return [_record(i) for i in range(50)]

    import asyncio

    assert asyncio.run(rows_of(records())) == [_record(i).to_json() for i in range(50)]


def test_sessions_decode_as_one_by_one() -> None:
    raws = [_session_json(_record(i)).encode() for i in range(100)]
    assert _sessions(raws) == [_session(r) for r in raws]
    assert _sessions([r.decode() for r in raws]) == [_session(r) for r in raws]
    assert _sessions([]) == []
    # anything odd takes the one-by-one path, and fails (or not) exactly as it does
    odd = [raws[0], b'{"sid": "x"}']
    with pytest.raises(KeyError):
        _sessions(odd)
    with pytest.raises(json.JSONDecodeError):
        _sessions([raws[0], b"{not json"])
    merged = [b'{"sid": "a", "user_id": "u", "user_name": "n", "node": "n", "rooms": [1',
              b'2], "connected_at": 1, "last_seen_at": 2}', raws[1] + b"," + raws[2]]  # fmt: skip
    with pytest.raises(json.JSONDecodeError):
        _sessions(merged)


@pytest.mark.parametrize(
    "rows",
    [
        [],
        [{"sid": "a"}],
        [_record(i).to_json() for i in range(20)],
        [{"sid": "é\u2028\x00\"\\", "user_id": None, "rooms": [], "node": 3, "user_name": 1.5,
          "connected_at": True, "last_seen_at": {"k": [1, "x"]}, "extra": "dropped"}],
        [{"sid": Output.json, "rooms": ["a", Output.name], "user_id": ["x", 1]}],
    ],
)  # fmt: skip
def test_json_rows_are_print_json(rows: list[dict[str, Any]]) -> None:
    expected = io.StringIO()
    with redirect_stdout(expected):
        print_json([views.SESSION.json_row(r) for r in rows])
    assert json_rows(views.SESSION.fields, rows) == expected.getvalue()
