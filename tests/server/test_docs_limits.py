"""A document request is bounded by what it decodes to, not only by its bytes (SPEC §8):
items and deleted ranges per update, client ids per document, a state sent as an array.
What would pass a bound is refused with `too_complex` and changes nothing."""

from __future__ import annotations

from typing import Any

import pycrdt
import pytest

from rtctl.docs import yjs
from tests.conftest import DaemonProcess
from tests.server.live_client import connect
from tests.server.test_docs_events import Editor, grants

pytestmark = pytest.mark.anyio


def scattered(n: int) -> bytes:
    """One update of ``n`` one-character items that do not merge (each typed at 0)."""
    doc = pycrdt.Doc()
    text = doc.get("content", type=pycrdt.Text)
    for i in range(n):
        text.insert(0, "ab"[i % 2])
    return doc.get_update()


def many_clients(n: int) -> bytes:
    updates = []
    for i in range(n):
        doc = pycrdt.Doc(client_id=1000 + i)
        doc.get("content", type=pycrdt.Text).insert(0, "x")
        updates.append(doc.get_update())
    return pycrdt.merge_updates(*updates)


async def test_decoded_cost_is_bounded(make_daemon: Any) -> None:
    d: DaemonProcess = make_daemon(RTCTL_DOC_MAX_ITEMS="100", RTCTL_DOC_MAX_CLIENTS="5",
                                   RTCTL_DOC_MAX_ARRAY_STATE="1024")  # fmt: skip
    a = Editor(await connect(d, "alice", **grants()), "note:cost")
    try:
        await a.join()
        for update in (scattered(101), many_clients(6)):
            ack = await a.client.call(
                "ydoc:document:update", {"document_id": "note:cost", "update": update}
            )
            assert ack["ok"] is False and ack["error"]["code"] == "too_complex", ack
        assert (await a.edit(0, "x" * 2000))["seq"] == 1  # still usable
        # a delete set of many ranges is as costly as many items
        other = yjs.load(a.doc.get_update())
        before = other.get_state()
        text = other.get("content", type=pycrdt.Text)
        for i in range(0, 1000, 1):
            del text[i : i + 1]  # every other character: 1000 ranges
        deletes = other.get_update(before)
        assert yjs.inspect_update(deletes).structs == {}
        ack = await a.client.call(
            "ydoc:document:update", {"document_id": "note:cost", "update": deletes}
        )
        assert ack["error"]["code"] == "too_complex", ack
        # four more client ids fit in the document, a fifth... after them does not
        assert (await a.client.call("ydoc:document:update",
                {"document_id": "note:cost", "update": many_clients(4)}))["seq"] == 2  # fmt: skip
        refused = await a.client.call(
            "ydoc:document:state", {"document_id": "note:cost", "binary": False}
        )
        assert (
            refused["error"]["code"] == "too_complex"
            and "binary: true" in refused["error"]["message"]
        )
        ok = await a.client.call(
            "ydoc:document:state", {"document_id": "note:cost", "binary": True}
        )
        assert ok["ok"]
        state = a.client.received("ydoc:document:state")[-1]["state"]
        assert isinstance(state, bytes) and len(state) > 1024
    finally:
        await a.client.close()


async def test_a_large_update_sent_as_an_array_is_relayed_binary(daemon: DaemonProcess) -> None:
    """Sending a large array costs the event loop about 0.25 ms per KiB (python-socketio
    walks it): past 64 KiB the relay goes binary, which a client reads the same way."""
    a = Editor(await connect(daemon, "alice", **grants()), "note:big")
    b = Editor(await connect(daemon, "bob", **grants()), "note:big")
    try:
        await a.join()
        await b.join()
        assert (await a.edit(0, "small"))["ok"]
        assert (await a.edit(0, "y" * 70_000))["ok"]
        await b.client.next_event(
            "ydoc:document:update", lambda _: len(b.client.received("ydoc:document:update")) == 2
        )
        small, large = (u["update"] for u in b.client.received("ydoc:document:update"))
        assert isinstance(small, list) and isinstance(large, bytes) and len(large) > 64 * 1024
        b.take_remote()
        assert str(b.text) == str(a.text)
    finally:
        await a.client.close()
        await b.client.close()
