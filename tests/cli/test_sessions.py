"""``rtctl sessions kick``: confirmation, dry run, ids from stdin, not-found."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import DaemonProcess

pytestmark = pytest.mark.anyio


async def test_kick_needs_yes_off_a_terminal(hub: DaemonProcess, acli: Any, connect: Any) -> None:
    client = await connect(hub.token("kicked-1"))
    refused = await acli("sessions", "kick", client.sid)
    assert refused.code == 2 and "--yes" in refused.err
    dry = await acli("sessions", "kick", "--user", "kicked-1", "--dry-run")
    assert dry.code == 0, dry.err
    assert dry.lines[0].startswith(client.sid + "\t")
    assert "would kick 1" in dry.err
    assert not await client.gone_within(0.3)

    kicked = await acli("sessions", "kick", client.sid, "--yes")
    assert kicked.code == 0, kicked.err
    assert kicked.lines == [f"{client.sid}\tkicked"]
    assert await client.gone_within(5)


async def test_kick_by_user_and_from_stdin(hub: DaemonProcess, acli: Any, connect: Any) -> None:
    a = await connect(hub.token("kicked-2"))
    b = await connect(hub.token("kicked-2"))
    c = await connect(hub.token("kicked-3"))
    by_user = await acli("sessions", "kick", "--user", "kicked-2", "-y", "-o", "json")
    assert by_user.code == 0, by_user.err
    assert sorted(r["sid"] for r in by_user.json()) == sorted([a.sid, b.sid])
    assert {r["result"] for r in by_user.json()} == {"kicked"}
    assert await a.gone_within(5) and await b.gone_within(5)

    piped = await acli("sessions", "kick", "-", "-y", "-q", stdin=f"{c.sid}\nnot-a-sid\n")
    assert piped.code == 3  # one id was not found
    assert piped.lines == [c.sid]  # -q: only what was kicked
    assert "not-a-sid" in piped.err
    assert await c.gone_within(5)


async def test_kick_refusals(acli: Any) -> None:
    assert (await acli("sessions", "kick", "-y")).code == 2  # nothing named
    assert (await acli("sessions", "kick", "x", "--user", "u", "-y")).code == 2
    assert (await acli("sessions", "kick", "--user", "nobody-online", "-y")).code == 3
    missing = await acli("sessions", "kick", "ghost", "-y")
    assert missing.code == 3 and missing.lines == ["ghost\tnot-found"]
    dry = await acli("sessions", "kick", "ghost", "-n")
    assert dry.code == 3 and dry.out == ""


async def test_pool_cleanup_in_embedded_mode_has_no_dead_node(acli: Any) -> None:
    done = await acli("pool", "cleanup", "--yes", "-o", "json")
    assert done.code == 0 and done.out.strip() == "[]"
