"""``rtctl emit`` and ``rtctl call`` reach real Socket.IO clients."""

from __future__ import annotations

from typing import Any

import pytest

from tests.cli.conftest import Cli
from tests.conftest import DaemonProcess

pytestmark = pytest.mark.anyio

NOTE = '{"data": {"type": "notification", "data": {"content": "hi"}}}'


async def test_emit_to_a_user_reaches_the_client(
    hub: DaemonProcess, acli: Any, connect: Any
) -> None:
    client = await connect(hub.token("emitted"))
    sent = await acli("emit", "events", NOTE, "--user", "emitted")
    assert sent.code == 0, sent.err
    assert sent.out == ""  # a message, not data
    assert "1 session" in sent.err
    [payload] = await client.received("events")
    assert payload == {"data": {"type": "notification", "data": {"content": "hi"}}}

    by_sid = await acli("emit", "ping", "-", "--sid", client.sid, "-o", "json", stdin="[1, 2]")
    assert by_sid.json() == {"event": "ping", "to": client.sid, "sessions": 1}
    assert await client.received("ping") == [[1, 2]]

    by_room = await acli("emit", "hello", '"text"', "--room", "user:emitted", "-q")
    assert (by_room.code, by_room.out, by_room.err) == (0, "", "")
    assert await client.received("hello") == ["text"]


async def test_call_prints_the_reply(hub: DaemonProcess, acli: Any, connect: Any) -> None:
    client = await connect(hub.token("called"))

    @client.sio.on("question")
    async def answer(data: Any) -> Any:
        return {"answer": data["n"] * 2}

    reply = await acli("call", "question", '{"n": 21}', "--sid", client.sid)
    assert reply.code == 0, reply.err
    assert reply.json() == {"answer": 42}

    @client.sio.on("silent")
    async def ignore(data: Any = None) -> None:
        await client.sio.sleep(5)

    late = await acli("call", "silent", "--sid", client.sid, "--timeout", "0.3")
    assert late.code == 1 and "did not answer" in late.err


def test_emit_refusals(cli: Cli) -> None:
    nobody = cli("emit", "events", "{}", "--user", "nobody-online")
    assert nobody.code == 3
    bad_json = cli("emit", "events", "{not json", "--user", "x")
    assert bad_json.code == 2 and "not valid JSON" in bad_json.err
    bare_word = cli("emit", "events", "hello", "--user", "x")
    assert bare_word.code == 2
    assert cli("emit", "events", "{}").code == 2  # no target
    assert cli("emit", "events", "{}", "--user", "a", "--room", "b").code == 2
    assert cli("emit", "connect", "{}", "--sid", "x").code == 2  # reserved event name
    assert cli("call", "events", "{}", "--sid", "no-such-sid").code == 3
    assert cli("call", "events", "{}").code == 2  # --sid is required
