"""No writer is ever forked (SPEC §5), with real clients against real daemons: document
traffic is paced rather than refused, a backlog past its bound reconnects the session,
an update whose history is missing is held while its writer is asked for what it lacks,
and a store that does not answer slows writers down instead of losing their edits."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from typing import Any

import pycrdt
import pytest

from rtctl.docs import awareness, yjs
from tests.conftest import DaemonProcess
from tests.redis_server import RedisServer
from tests.server.live_client import LiveClient, connect, until
from tests.server.test_docs_events import Editor, grants

pytestmark = pytest.mark.anyio


def detached_updates(*texts: str) -> list[bytes]:
    """Updates of a document the hub has never seen, each building on the one before."""
    doc = pycrdt.Doc()
    out: list[bytes] = []
    doc.observe(lambda e: out.append(e.update))
    text = doc.get("content", type=pycrdt.Text)
    for t in texts:
        text += t
    return out


async def send(client: LiveClient, doc_id: str, update: bytes, timeout: float = 10.0) -> Any:
    return await client.call(
        "ydoc:document:update", {"document_id": doc_id, "update": list(update)}, timeout=timeout
    )


def metric(d: DaemonProcess, name: str) -> float:
    status, text = d.http("GET", "/metrics", auth=False)
    assert status == 200
    (line,) = [line for line in text.splitlines() if line.startswith(name + " ")]
    return float(line.split()[1])


async def test_doc_updates_are_paced_not_refused(make_daemon: Any) -> None:
    d: DaemonProcess = make_daemon(RTCTL_DOC_RATE="40", RTCTL_DOC_BURST="5", RTCTL_RATE_LIMIT="5",
                                   RTCTL_RATE_BURST="5")  # fmt: skip
    a = Editor(await connect(d, "alice", **grants()), "note:pace")
    watcher = Editor(await connect(d, "bob", **grants()), "note:pace")
    try:
        await a.join()
        await watcher.join()
        for i in range(60):
            a.text.insert(len(a.text), f"{i};")
        started = time.monotonic()
        acks = await asyncio.gather(*(send(a.client, "note:pace", u) for u in a.outbox))
        elapsed = time.monotonic() - started
        assert all(ack["ok"] for ack in acks), [a for a in acks if not a["ok"]]
        assert [ack["seq"] for ack in acks] == list(range(1, 61))  # in the order sent
        assert elapsed >= (60 - 5) / 40 * 0.8  # slowed down to the pace
        # awareness has its own budget (the ordinary event rate), untouched by the writes
        aw = awareness.encode([awareness.AwarenessEntry(77, 1, {"user": "alice"})])
        ack = await a.client.call(
            "ydoc:awareness:update", {"document_id": "note:pace", "update": list(aw)}
        )
        assert ack == {"ok": True}
        await until(lambda: len(watcher.client.received("ydoc:document:update")) == 60)
        watcher.take_remote()
        assert str(watcher.text) == str(a.text)
        assert a.client.received("error") == []
    finally:
        await a.client.close()
        await watcher.client.close()


async def test_a_backlog_past_its_bound_reconnects_the_session(make_daemon: Any) -> None:
    d: DaemonProcess = make_daemon(RTCTL_DOC_RATE="5", RTCTL_DOC_BURST="1",
                                   RTCTL_DOC_BACKLOG_BYTES="65536")  # fmt: skip
    a = Editor(await connect(d, "alice", **grants()), "note:flood")
    try:
        await a.join()
        for i in range(200):
            a.text.insert(len(a.text), f"{i};" * 20)
        for update in a.outbox:  # no waiting for acks: the backlog builds up
            await a.client.sio.emit(
                "ydoc:document:update", {"document_id": "note:flood", "update": list(update)}
            )
        await a.client.wait_disconnected(10)
    finally:
        await a.client.close()
    assert metric(d, "rtctl_doc_reconnects_total") == 1
    again = Editor(await connect(d, "alice", **grants()), "note:flood")
    try:
        await again.join()  # the hub is fine, and what it took is stored
    finally:
        await again.client.close()


async def test_missing_history_is_asked_for_then_stored(daemon: DaemonProcess) -> None:
    """A client without ydoc:sync gets an empty state (Open WebUI's provider answers it
    with its whole document); the held update is stored once its history arrives."""
    a = Editor(await connect(daemon, "alice", **grants()), "note:held")
    watcher = Editor(await connect(daemon, "bob", **grants()), "note:held")
    try:
        await a.join()
        await watcher.join()
        one, two = detached_updates("one", "two")
        held = asyncio.ensure_future(send(a.client, "note:held", two))
        request = await a.client.next_event(
            "ydoc:document:state", lambda s: len(a.client.received("ydoc:document:state")) > 1
        )
        assert a.client.received("ydoc:document:state")[-1]["state"] == list(yjs.EMPTY_UPDATE)
        assert request["document_id"] == "note:held"
        assert not held.done()
        assert (await send(a.client, "note:held", one))["seq"] == 1
        assert (await held)["seq"] == 2
        await until(lambda: len(watcher.client.received("ydoc:document:update")) == 2)
        watcher.take_remote()
        assert str(watcher.text) == "onetwo"
        assert a.client.received("error") == []
        assert metric(daemon, "rtctl_doc_history_requests_total") >= 1
        assert metric(daemon, "rtctl_doc_held_updates") == 0
    finally:
        await a.client.close()
        await watcher.client.close()


async def test_missing_history_is_asked_for_with_sync_step1(daemon: DaemonProcess) -> None:
    client = await connect(daemon, "alice", **grants())
    try:
        await Editor(client, "note:sy").join()
        sv = yjs.sync_message(yjs.SYNC_STEP1, yjs.EMPTY_UPDATE[:1])  # an empty state vector
        await client.call("ydoc:sync", {"document_id": "note:sy", "message": list(sv)})
        one, two, three = detached_updates("one", "two", "three")
        held = asyncio.ensure_future(send(client, "note:sy", three))
        step1s = lambda: [  # noqa: E731
            m
            for m in client.received("ydoc:sync")
            if yjs.read_sync_message(bytes(m["message"]))[0] == yjs.SYNC_STEP1
        ]
        await until(lambda: len(step1s()) >= 2, what="the hub's sync step 1")
        step2 = yjs.sync_message(yjs.SYNC_STEP2, pycrdt.merge_updates(one, two))
        reply = await client.call("ydoc:sync", {"document_id": "note:sy", "message": list(step2)})
        assert reply["ok"] and reply["seq"] == 1
        assert (await held)["seq"] == 2
    finally:
        await client.close()


async def test_a_client_without_sync_is_asked_for_what_it_made_away(
    daemon: DaemonProcess,
) -> None:
    """Open WebUI's editor sends an edit only as it is made, and only while connected:
    after a join the hub asks such a client for its document (an empty state), and what
    it made while away goes in. A client that speaks ydoc:sync is not asked."""
    owui = await connect(daemon, "alice", **grants())
    syncer = await connect(daemon, "bob", **grants())
    try:
        await Editor(syncer, "note:away").join()
        sv = yjs.sync_message(yjs.SYNC_STEP1, b"\x00")
        await syncer.call("ydoc:sync", {"document_id": "note:away", "message": list(sv)})
        offline = pycrdt.Doc()
        offline.get("content", type=pycrdt.Text).insert(0, "typed while away")
        await Editor(owui, "note:away").join()
        await owui.next_event(
            "ydoc:document:state", lambda _: len(owui.received("ydoc:document:state")) == 2
        )
        assert owui.received("ydoc:document:state")[1]["state"] == list(yjs.EMPTY_UPDATE)
        ack = await send(owui, "note:away", offline.get_update())  # its whole document
        assert ack["ok"] and ack["seq"] == 1
        await asyncio.sleep(1.5)
        assert len(syncer.received("ydoc:document:state")) == 1  # asked for nothing
        step1s = [m for m in syncer.received("ydoc:sync")
                  if yjs.read_sync_message(bytes(m["message"]))[0] == yjs.SYNC_STEP1]  # fmt: skip
        assert len(step1s) == 1  # only the answer to its own step 1
    finally:
        await owui.close()
        await syncer.close()


async def test_history_that_never_comes_reconnects_the_session(make_daemon: Any) -> None:
    d: DaemonProcess = make_daemon(RTCTL_DOC_BACKLOG_SECONDS="3")  # holds for 1 s
    a = Editor(await connect(d, "alice", **grants()), "note:never")
    try:
        await a.join()
        _, two = detached_updates("one", "two")
        await a.client.sio.emit(
            "ydoc:document:update", {"document_id": "note:never", "update": list(two)}
        )
        await a.client.wait_disconnected(5)
    finally:
        await a.client.close()
    status, info = d.http("GET", "/api/v1/docs")
    assert status == 200
    assert all(doc["id"] != "note:never" for doc in info)  # nothing pending was stored


async def test_redis_stopped_slows_writers_and_loses_nothing(
    make_daemon: Any, redis_server: RedisServer
) -> None:
    common = {"RTCTL_REDIS_URL": redis_server.url}
    d1 = make_daemon(RTCTL_NODE_ID="n1", **common)
    d2 = make_daemon(RTCTL_NODE_ID="n2", **common)
    a = Editor(await connect(d1, "alice", **grants()), "note:pause")
    b = Editor(await connect(d2, "bob", **grants()), "note:pause", binary=True)
    try:
        await a.join()
        await b.join()
        assert (await a.edit(0, "start;"))["ok"]
        assert redis_server.proc is not None
        os.kill(redis_server.proc.pid, signal.SIGSTOP)
        try:
            for i in range(20):
                a.text.insert(len(a.text), f"a{i};")
            pending = [asyncio.ensure_future(send(a.client, "note:pause", u, 30.0))
                       for u in a.outbox]  # fmt: skip
            a.outbox.clear()
            await asyncio.sleep(7)  # past the store's own 5 s socket timeout
            assert not any(p.done() for p in pending)  # slowed down, not refused
        finally:
            os.kill(redis_server.proc.pid, signal.SIGCONT)
        acks = await asyncio.gather(*pending)
        assert all(ack["ok"] for ack in acks), acks
        seqs = [ack["seq"] for ack in acks]
        assert seqs == list(range(2, 22))  # each stored once, in order
        await until(lambda: len(b.client.received("ydoc:document:update")) == 21, timeout=15)
        b.take_remote()
        assert str(b.text) == str(a.text)
        assert a.client.received("error") == [] and not a.client.disconnected.is_set()
    finally:
        await a.client.close()
        await b.client.close()


async def test_an_append_outliving_its_request_is_still_relayed(
    make_daemon: Any, redis_server: RedisServer
) -> None:
    """Redis stopped past the request's deadline: the writer is reconnected, and the
    append that was on its way lands once Redis is back, once, and is relayed then; what
    readers were sent and what the log holds agree."""
    common = {"RTCTL_REDIS_URL": redis_server.url, "RTCTL_DOC_BACKLOG_SECONDS": "3"}
    d1, d2 = make_daemon(RTCTL_NODE_ID="n1", **common), make_daemon(RTCTL_NODE_ID="n2", **common)
    a = Editor(await connect(d1, "alice", **grants()), "note:late")
    b = Editor(await connect(d2, "bob", **grants()), "note:late")
    try:
        await a.join()
        await b.join()
        assert (await a.edit(0, "before;"))["seq"] == 1
        assert redis_server.proc is not None
        os.kill(redis_server.proc.pid, signal.SIGSTOP)
        try:
            a.text.insert(len(a.text), "during;")
            await a.client.sio.emit(
                "ydoc:document:update", {"document_id": "note:late", "update": a.outbox.pop()}
            )
            await a.client.wait_disconnected(8)  # its request outlived the 3 s bound
        finally:
            os.kill(redis_server.proc.pid, signal.SIGCONT)
        relayed = await b.client.next_event(
            "ydoc:document:update",
            lambda _: len(b.client.received("ydoc:document:update")) == 2,
            timeout=15,
        )
        assert relayed["user_id"] == "alice"
        b.take_remote()
        assert str(b.text) == "before;during;"
        status, info = await asyncio.to_thread(d2.http, "GET", "/api/v1/docs/note:late")
        assert status == 200 and info["seq"] == 2  # stored once
    finally:
        await a.client.close()
        await b.client.close()
