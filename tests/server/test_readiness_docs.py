"""/readyz follows the document store (SPEC §1): a store that fails to write takes the
daemon out of rotation until it writes again, embedded (SQLite) and on Redis."""

from __future__ import annotations

import asyncio
import resource
import signal
from typing import Any

import pytest

from tests.conftest import DaemonProcess
from tests.redis_server import RedisServer
from tests.server.live_client import LiveClient, connect, until
from tests.server.test_docs_events import Editor, grants

pytestmark = pytest.mark.anyio


async def readyz(d: DaemonProcess) -> tuple[int, Any]:
    return await asyncio.to_thread(d.http, "GET", "/readyz", auth=False)


async def status_is(d: DaemonProcess, wanted: int) -> bool:
    return (await readyz(d))[0] == wanted


def send_later(editor: Editor, text: str) -> asyncio.Future[Any]:
    """An edit whose ack may wait for the store: it is sent now, awaited later."""
    editor.text.insert(len(editor.text), text)
    update = editor.outbox.pop()
    return asyncio.ensure_future(editor.client.call(
        "ydoc:document:update", {"document_id": editor.doc_id, "update": list(update)},
        timeout=40,
    ))  # fmt: skip


async def joined(client: LiveClient, doc_id: str) -> Editor:
    editor = Editor(client, doc_id)
    await editor.join()
    assert (await editor.edit(0, "start;"))["ok"]
    return editor


async def test_a_store_that_cannot_write_makes_the_daemon_unready(make_daemon: Any) -> None:
    """Embedded: every file write of the daemon fails (a file size limit of one byte, as
    a full disk would), so the SQLite store's appends fail; /readyz answers 503 with
    the reason, then 200 once the store writes again, and the held edit lands."""
    d: DaemonProcess = make_daemon()
    assert d.proc is not None
    a = await joined(await connect(d, "alice", **grants()), "note:disk")
    try:
        assert await status_is(d, 200)
        soft, hard = resource.prlimit(d.proc.pid, resource.RLIMIT_FSIZE)
        resource.prlimit(d.proc.pid, resource.RLIMIT_FSIZE, (1, hard))
        try:
            pending = send_later(a, "during;")
            await until(lambda: status_is(d, 503), timeout=5, what="/readyz 503")
            status, body = await readyz(d)
            assert status == 503 and "document store" in body["reason"], body
            assert not pending.done()  # held, not refused
        finally:
            resource.prlimit(d.proc.pid, resource.RLIMIT_FSIZE, (soft, hard))
        await until(lambda: status_is(d, 200), timeout=5, what="/readyz 200 again")
        ack = await pending
        assert ack["ok"] and ack["seq"] == 2, ack
    finally:
        await a.client.close()


async def test_redis_stopped_makes_the_daemon_unready_until_it_is_back(
    make_daemon: Any, redis_server: RedisServer
) -> None:
    """Redis mode: redis-server stopped (SIGSTOP: connections hang, nothing is refused)
    while an edit waits on the document store; /readyz is 503 within the store's socket
    timeout, and 200 again soon after SIGCONT."""
    d: DaemonProcess = make_daemon(RTCTL_REDIS_URL=redis_server.url)
    assert redis_server.proc is not None
    a = await joined(await connect(d, "alice", **grants()), "note:paused")
    try:
        assert await status_is(d, 200)
        redis_server.proc.send_signal(signal.SIGSTOP)
        try:
            pending = send_later(a, "during;")
            await until(lambda: status_is(d, 503), timeout=15, what="/readyz 503")
        finally:
            redis_server.proc.send_signal(signal.SIGCONT)
        await until(lambda: status_is(d, 200), timeout=10, what="/readyz 200 again")
        ack = await pending
        assert ack["ok"] and ack["seq"] == 2, ack
    finally:
        await a.client.close()
