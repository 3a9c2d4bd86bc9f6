"""The dashboard in a real headless Chromium against a real daemon: log in with the
admin token, watch a client appear, stop its task, compact and export its document,
kick it; a client-chosen name that looks like markup shows as text. A screenshot of
each page is kept in .artifacts/dashboard/."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ADMIN, ROOT, DaemonProcess
from tests.dashboard.browser import Browser, Page, chromium
from tests.redis_server import RedisServer
from tests.server.live_client import connect, until
from tests.server.test_docs_events import Editor, grants
from tests.tasks.test_tasks_embedded import LONG

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(chromium() is None, reason="chromium is not installed"),
]
ARTIFACTS = ROOT / ".artifacts" / "dashboard"
EVIL = "<img src=x onerror=alert(1)>"


@pytest.fixture
async def page(tmp_path: Path) -> AsyncIterator[Page]:
    browser = await asyncio.to_thread(Browser, tmp_path)
    try:
        yield await asyncio.to_thread(browser.page)
    finally:
        await asyncio.to_thread(browser.close)


async def run(fn: Any, *args: Any) -> Any:
    """A browser step, off the event loop the socket clients need."""
    return await asyncio.to_thread(fn, *args)


def row_of(ident: str) -> str:
    return f"document.querySelector('tr[data-id={json.dumps(ident)}]')"


async def test_an_operator_works_the_dashboard(
    make_daemon: Any, page: Page, tmp_path: Path
) -> None:
    d: DaemonProcess = make_daemon(RTCTL_NODE_TTL="3", RTCTL_ECHO_DELAY="0.05")
    await run(page.goto, d.url + "/admin")
    await run(page.eval, f"document.getElementById('token').value = {json.dumps(ADMIN)};"
                         "document.getElementById('login').requestSubmit()")  # fmt: skip
    await run(page.wait, "document.querySelector('#nodes-table td:not(.empty)')")
    await run(page.screenshot, ARTIFACTS / "overview.png")

    mallory = await connect(d, "mallory", name=EVIL)
    alice = await connect(d, "alice", **grants())
    try:
        await run(page.eval, "location.hash = '#sessions'")
        cell = await run(page.wait, f"{row_of(mallory.sid)}?.children[2].textContent")
        assert cell == EVIL  # as text
        assert await run(page.eval, "document.querySelectorAll('main img').length") == 0
        await run(page.screenshot, ARTIFACTS / "sessions.png")
        for view in ("users", "rooms"):
            await run(page.eval, f"location.hash = '#{view}'")
            await run(page.wait, f"document.querySelector('#{view}-table td:not(.empty)')")
            await run(page.screenshot, ARTIFACTS / f"{view}.png")

        asked = [{"role": "user", "content": LONG}]
        task = await alice.call("chat:completion", {"chat_id": "c1", "model": "echo",
                                                    "messages": asked})  # fmt: skip
        await run(page.eval, "location.hash = '#tasks'")
        await run(page.wait, row_of(task["task_id"]))
        await run(page.screenshot, ARTIFACTS / "tasks.png")
        await run(page.eval, f"{row_of(task['task_id'])}.querySelector('button').click()")
        await alice.next_event("events", lambda e: e["data"]["type"] == "chat:tasks:cancel")
        await run(page.wait, f"!{row_of(task['task_id'])}")

        editor = Editor(alice, "note:dash")
        await editor.join()
        for word in ("one ", "two ", "three "):
            await editor.edit(len(str(editor.text)), word)
        await run(page.eval, "location.hash = '#documents'")
        await run(page.wait, row_of("note:dash"))
        await run(page.screenshot, ARTIFACTS / "documents.png")
        compact = f"{row_of('note:dash')}.querySelectorAll('button')[1].click()"
        await run(page.eval, compact)
        await until(lambda: d.http("GET", "/api/v1/docs/note:dash")[1]["updates"] == 0,
                    what="the compaction")  # fmt: skip
        exported = await run(page.eval, f"""(async () => {{
            const token = sessionStorage.getItem('rtctl-admin-token');
            const r = await fetch('/api/v1/docs/note:dash/export?format=json',
                                  {{headers: {{Authorization: 'Bearer ' + token}}}});
            {row_of('note:dash')}.querySelectorAll('button')[0].click();
            return r.json(); }})()""")  # fmt: skip
        assert exported["content"] == "one two three "
        assert (await run(page.eval, "document.getElementById('status').textContent")) != ""
        assert not (
            await run(page.eval, "document.getElementById('status').textContent")
        ).startswith("error")

        await run(page.eval, "location.hash = '#sessions'")
        await run(page.wait, row_of(mallory.sid))
        await run(page.eval, f"{row_of(mallory.sid)}.querySelector('button').click()")
        await mallory.wait_disconnected()
        await run(page.wait, f"!{row_of(mallory.sid)}")

        await run(page.eval, "location.hash = '#overview'")  # the charts, a while later
        await run(page.wait, "document.querySelectorAll('#nodes-table td')[4]?.textContent !== '-'")
        assert await run(page.eval, "document.getElementById('login').hidden") is True
        await run(page.screenshot, ARTIFACTS / "overview-later.png")
    finally:
        await mallory.close()
        await alice.close()


async def test_a_wrong_token_stays_at_the_door(daemon: DaemonProcess, page: Page) -> None:
    await run(page.goto, daemon.url + "/admin")
    await run(page.eval, "document.getElementById('token').value = 'wrong';"
                         "document.getElementById('login').requestSubmit()")  # fmt: skip
    error = await run(page.wait, "document.getElementById('login-error').textContent")
    assert "refused" in error
    assert await run(page.eval, "document.getElementById('tabs').hidden") is True
    headers = daemon.http("GET", "/admin/dashboard.js", auth=False)
    assert headers[0] == 200
    assert daemon.http("GET", "/admin/admin_token", auth=False)[0] == 404


async def test_any_node_shows_the_whole_deployment(
    make_daemon: Any, redis_server: RedisServer, page: Page
) -> None:
    env = {"RTCTL_REDIS_URL": redis_server.url, "RTCTL_PREFIX": "dash", "RTCTL_NODE_TTL": "3"}
    a, b = make_daemon(RTCTL_NODE_ID="node-a", **env), make_daemon(RTCTL_NODE_ID="node-b", **env)
    on_b = await connect(b, "bob")
    try:
        await run(page.goto, a.url + "/admin")
        await run(page.eval, f"document.getElementById('token').value = {json.dumps(ADMIN)};"
                             "document.getElementById('login').requestSubmit()")  # fmt: skip
        await run(page.wait, f"{row_of('node-a')} && {row_of('node-b')}")
        await run(page.eval, "location.hash = '#sessions'")
        node = await run(page.wait, f"{row_of(on_b.sid)}?.children[3].textContent")
        assert node == "node-b"  # a session on the other daemon, seen from this one
        await run(page.screenshot, ARTIFACTS / "sessions-redis.png")
    finally:
        await on_b.close()
