"""``rtctl docs`` (SPEC §5, §7) as users run it: a real ``rtctl`` process against a real
daemon (embedded) or a real redis-server (Redis mode, with and without a daemon), with
documents written by real Socket.IO clients or by a RedisDocStore, checked with pycrdt."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pycrdt
import pytest

from rtctl.cli import views
from tests.cli.conftest import Cli, Run, cli_env, run_cli
from tests.cli.test_terminal import on_terminal
from tests.conftest import ROOT, DaemonProcess, free_port
from tests.redis_server import RedisServer
from tests.server.live_client import LiveClient, connect, until

pytestmark = pytest.mark.anyio

DOC_FIELDS = ["id", "updates", "bytes", "updated_at", "sessions"]
BAD_IDS = ["_starts-with-punctuation", "has/slash", "has space", "x" * 201]


class Writer:
    """A pycrdt document whose every change goes to the hub as a Yjs v1 update."""

    def __init__(self) -> None:
        self.doc: pycrdt.Doc = pycrdt.Doc()
        self.text = self.doc.get("content", type=pycrdt.Text)
        self.meta = self.doc.get("meta", type=pycrdt.Map)
        self.updates: list[bytes] = []
        self.doc.observe(lambda event: self.updates.append(event.update))

    def take(self) -> list[bytes]:
        out, self.updates = self.updates, []
        return out

    def expected_json(self) -> dict[str, Any]:
        return {"content": str(self.text), "meta": self.meta.to_py()}


async def write_through(d: DaemonProcess, doc_id: str, user: str) -> tuple[LiveClient, Writer]:
    """A session (granted ``doc_id``) that joins the document and writes three updates,
    one of them as binary; it stays in the document."""
    client = await connect(d, user, docs=[doc_id])
    ack = await client.call("ydoc:document:join", {"document_id": doc_id})
    assert ack["ok"], ack
    w = Writer()
    w.text += "hello"
    w.meta["title"] = "Greeting"
    w.text += " world"
    sent = w.take()
    assert len(sent) == 3
    for i, update in enumerate(sent):
        body = {"document_id": doc_id, "update": update if i == 1 else list(update)}
        ack = await client.call("ydoc:document:update", body)
        assert ack == {"ok": True, "seq": i + 1}, ack
    return client, w


def run_binary(args: list[str], env: dict[str, str]) -> tuple[int, bytes, str]:
    """rtctl with stdout captured as bytes (``run_cli`` decodes it as text)."""
    proc = subprocess.run(
        [sys.executable, "-m", "rtctl", *args],
        env=env, input=b"", capture_output=True, timeout=60, cwd=ROOT,
    )  # fmt: skip
    err = proc.stderr.decode(errors="replace")
    assert "Traceback" not in err, err
    return proc.returncode, proc.stdout, err


def loaded(update: bytes) -> pycrdt.Doc:
    doc: pycrdt.Doc = pycrdt.Doc()
    doc.apply_update(update)
    return doc


def same_content(update: bytes, w: Writer) -> bool:
    doc = loaded(update)
    text, meta = doc.get("content", type=pycrdt.Text), doc.get("meta", type=pycrdt.Map)
    return str(text) == str(w.text) and meta.to_py() == w.meta.to_py()


def one_row(run: Run) -> dict[str, Any]:
    assert run.code == 0, run
    rows = run.json()
    assert isinstance(rows, list) and len(rows) == 1, rows
    row: dict[str, Any] = rows[0]
    return row


def check_exports(call: Any, env: dict[str, str], doc_id: str, w: Writer, tmp_path: Path) -> None:
    """The three formats, to stdout and to a file, against what the writer holds."""
    code, update, err = call(["docs", "export", doc_id], env)  # not a terminal: update
    assert code == 0 and same_content(update, w), err
    code, explicit, _ = call(["docs", "export", doc_id, "--format", "update"], env)
    assert code == 0 and explicit == update
    code, as_json, _ = call(["docs", "export", doc_id, "--format", "json"], env)
    assert code == 0 and json.loads(as_json) == w.expected_json() == {
        "content": "hello world", "meta": {"title": "Greeting"},
    }  # fmt: skip
    code, text, _ = call(["docs", "export", doc_id, "--format", "text"], env)
    assert code == 0 and text.decode() == str(w.text) == "hello world"

    target = tmp_path / "out" / "doc.bin"
    target.parent.mkdir(exist_ok=True)
    target.write_bytes(b"old content")
    os.chmod(target, 0o640)
    code, out, err = call(["docs", "export", doc_id, "--output", str(target)], env)
    assert code == 0 and out == b"" and f"to {target}" in err
    assert target.read_bytes() == update  # the default for a file is update, too
    assert stat.S_IMODE(target.stat().st_mode) == 0o640  # replaced, mode kept
    assert [p.name for p in target.parent.iterdir()] == ["doc.bin"]  # no temporary left
    code, _, err = call(["docs", "export", doc_id, "--format", "text", "--output",
                         str(target), "-q"], env)  # fmt: skip
    assert code == 0 and err == "" and target.read_text() == "hello world"
    missing_dir = tmp_path / "nowhere" / "doc.bin"
    code, _, err = call(["docs", "export", doc_id, "--output", str(missing_dir)], env)
    assert code == 1 and "cannot write" in err and err.count("\n") == 1


# embedded: through the daemon's admin API ---------------------------------------------------


async def test_list_info_export_compact_and_delete(
    hub: DaemonProcess, cli: Cli, tmp_path: Path
) -> None:
    env = cli_env(hub.url, tmp_path)
    doc_id = "cli:note-1"
    client, w = await write_through(hub, doc_id, "doc-writer")

    async def run(*args: str, stdin: str | None = None) -> Run:
        return await asyncio.to_thread(cli, *args, stdin=stdin)

    try:
        listed = await run("docs", "list", "-o", "json")
        assert listed.code == 0
        row = next(r for r in listed.json() if r["id"] == doc_id)
        assert list(row) == DOC_FIELDS
        assert row["updates"] == 3 and row["bytes"] > 0 and row["sessions"] == [client.sid]
        assert row["updated_at"].endswith("Z")
        assert doc_id in (await run("docs", "list", "-o", "name")).lines
        assert doc_id in (await run("docs", "list", "-q")).lines
        plain = next(line for line in (await run("docs", "list")).lines if line.startswith(doc_id))
        assert plain.split("\t") == [doc_id, "3", str(row["bytes"]), "1", row["updated_at"]]
        wide = next(line for line in (await run("docs", "list", "-o", "wide")).lines
                    if line.startswith(doc_id))  # fmt: skip
        assert wide.split("\t")[-1] == client.sid

        info = await run("docs", "info", doc_id, "-o", "json")
        assert info.code == 0
        assert info.json() == {**row, "seq": 3, "snapshot_bytes": 0,
                               "created_at": info.json()["created_at"]}  # fmt: skip
        assert list(info.json()) == list(views.DOC_INFO.fields)
        text = await run("docs", "info", doc_id)
        assert f"sessions\t{client.sid}" in text.lines and "updates\t3" in text.lines
        assert (await run("docs", "info", doc_id, "-q")).lines == [doc_id]

        await asyncio.to_thread(check_exports, run_binary, env, doc_id, w, tmp_path)

        # a live session keeps the document from being deleted, dry run or not
        for args in (["--yes"], ["--dry-run"], []):
            refused = await run("docs", "delete", doc_id, *args)
            assert refused.code == 1, (args, refused)
            assert "1 session(s)" in refused.err and client.sid in refused.err
            assert refused.err.count("\n") == 1
        assert (await run("docs", "info", doc_id)).code == 0

        compacted = await run("docs", "compact", doc_id, "-o", "json")
        (result,) = compacted.json()
        assert compacted.code == 0 and result["result"] == "compacted"
        assert result["compacted"] == 3 and result["before_bytes"] == row["bytes"]
        assert list(result) == list(views.DOC_COMPACT.fields) and result["error"] is None
        after = (await run("docs", "info", doc_id, "-o", "json")).json()
        assert after["updates"] == 0 and after["seq"] == 3
        assert after["bytes"] == after["snapshot_bytes"] == result["after_bytes"]
        again = await run("docs", "compact", doc_id)
        assert again.code == 0 and again.lines[0].split("\t")[:3] == [doc_id, "unchanged", "0"]
        # compaction lost nothing, and editing goes on on top of it
        code, update, _ = await asyncio.to_thread(run_binary, ["docs", "export", doc_id], env)
        assert code == 0 and same_content(update, w)
        w.text += "!"
        (more,) = w.take()
        ack = await client.call("ydoc:document:update",
                                {"document_id": doc_id, "update": list(more)})  # fmt: skip
        assert ack == {"ok": True, "seq": 4}
        code, text_out, _ = await asyncio.to_thread(
            run_binary, ["docs", "export", doc_id, "--format", "text"], env
        )
        assert text_out == b"hello world!"

        await client.close()

        async def nobody_in() -> bool:
            found = await run("docs", "info", doc_id, "-o", "json")
            return found.code == 0 and found.json()["sessions"] == []

        await until(nobody_in, what="the session to leave the document")
        dry = await run("docs", "delete", doc_id, "--dry-run", "-o", "json")
        assert dry.code == 0 and one_row(dry)["id"] == doc_id and "would delete" in dry.err
        assert (await run("docs", "info", doc_id)).code == 0  # a dry run deletes nothing
        unconfirmed = await run("docs", "delete", doc_id)
        assert unconfirmed.code == 2 and "--yes" in unconfirmed.err
        deleted = await run("docs", "delete", doc_id, "--yes", "-o", "json")
        assert deleted.code == 0 and one_row(deleted)["id"] == doc_id
        assert "deleted document" in deleted.err
        assert (await run("docs", "info", doc_id)).code == 3
        assert doc_id not in (await run("docs", "list", "-o", "name")).lines
    finally:
        await client.close()


async def test_compact_many_from_stdin_and_all(hub: DaemonProcess, cli: Cli) -> None:
    writers = [await write_through(hub, f"cli:many-{i}", "doc-many") for i in range(3)]
    try:
        ids = [f"cli:many-{i}" for i in range(3)]
        some = await asyncio.to_thread(
            cli, "docs", "compact", "-", "-o", "json", stdin=f"{ids[0]}\n{ids[1]} {ids[0]}\n"
        )
        assert some.code == 0
        assert [(r["id"], r["result"]) for r in some.json()] == [
            (ids[0], "compacted"), (ids[1], "compacted"),
        ]  # fmt: skip
        every = await asyncio.to_thread(cli, "docs", "compact", "--all", "-o", "json")
        assert every.code == 0
        results = {r["id"]: r["result"] for r in every.json()}
        assert results[ids[0]] == results[ids[1]] == "unchanged"
        assert results[ids[2]] == "compacted"
        # one unknown id among known ones: reported, and exit 3
        mixed = await asyncio.to_thread(cli, "docs", "compact", ids[0], "cli:absent")
        assert mixed.code == 3
        assert [line.split("\t")[:2] for line in mixed.lines] == [
            [ids[0], "unchanged"], ["cli:absent", "not-found"],
        ]  # fmt: skip
        assert "not found: cli:absent" in mixed.err and mixed.err.count("\n") == 2
    finally:
        for client, _ in writers:
            await client.close()


def test_usage_errors_and_unknown_documents(cli: Cli) -> None:
    for args in (["info", "cli:nope"], ["export", "cli:nope"], ["delete", "cli:nope", "--yes"],
                 ["delete", "cli:nope", "--dry-run"], ["compact", "cli:nope"]):  # fmt: skip
        run = cli("docs", *args)
        assert run.code == 3, (args, run)
        assert "no document cli:nope" in run.err or "not found" in run.err
    for bad in BAD_IDS:
        for args in (["info", bad], ["export", bad], ["delete", bad, "--yes"], ["compact", bad]):
            run = cli("docs", *args)
            assert run.code == 2, (args, run)
            assert "not a document id" in run.err and run.err.count("\n") == 1
    for args in (["compact"], ["compact", "a", "--all"], ["compact", "-", "a"],
                 ["export", "a", "--format", "xml"], ["export", "a", "-o", "json"],
                 ["info"], ["delete"]):  # fmt: skip
        run = cli("docs", *args, stdin="")
        assert run.code == 2, (args, run)
    assert cli("docs", "compact", "-", stdin="\n").code == 0  # no id on stdin: nothing to do


def test_daemon_down_exits_69(tmp_path: Path) -> None:
    env = cli_env(f"http://127.0.0.1:{free_port()}", tmp_path)
    for args in (["list"], ["info", "a"], ["export", "a"], ["compact", "--all"],
                 ["compact", "a"], ["delete", "a", "--yes"], ["delete", "a", "-n"]):  # fmt: skip
        run = run_cli(["docs", *args], env)
        assert run.code == 69, (args, run)
        assert "cannot reach" in run.err and run.err.count("\n") == 1


async def test_export_on_a_terminal(hub: DaemonProcess, tmp_path: Path) -> None:
    client, w = await write_through(hub, "cli:tty", "doc-tty")
    env = cli_env(hub.url, tmp_path, NO_COLOR="1")
    try:
        code, text, _ = await asyncio.to_thread(on_terminal, ["docs", "export", "cli:tty"], env)
        assert code == 0 and text.replace("\r\n", "\n") == "hello world\n"  # text by default
        args = ["docs", "export", "cli:tty", "--format", "update"]
        code, text, err = await asyncio.to_thread(on_terminal, args, env)
        assert code == 2 and text == "" and "not writing a binary Yjs update to a terminal" in err
        target = tmp_path / "from-tty.bin"  # to a file, the terminal does not matter
        code, _, _ = await asyncio.to_thread(
            on_terminal, ["docs", "export", "cli:tty", "--output", str(target)], env
        )
        assert code == 0 and same_content(target.read_bytes(), w)
        code, text, err = await asyncio.to_thread(on_terminal, ["docs", "list"], env)
        assert code == 0 and "UPDATES" in text and "cli:tty" in text
        await client.close()
        await until(lambda: not hub.http("GET", "/api/v1/docs/cli:tty")[1]["sessions"])
        args = ["docs", "delete", "cli:tty"]
        code, _, err = await asyncio.to_thread(on_terminal, args, env, "n\n")
        assert code == 1 and "Delete document cli:tty" in err and "cancelled" in err
        assert hub.http("GET", "/api/v1/docs/cli:tty")[0] == 200
        code, text, err = await asyncio.to_thread(on_terminal, args, env, "y\n")
        assert code == 0 and "cli:tty" in text and "deleted document cli:tty" in err
        assert hub.http("GET", "/api/v1/docs/cli:tty")[0] == 404
    finally:
        await client.close()


# Redis mode: the CLI on Redis alone -----------------------------------------------------------


def redis_env(redis_server: RedisServer, tmp_path: Path, prefix: str = "docs") -> dict[str, str]:
    # RTCTL_URL points nowhere: nothing may go through a daemon's admin API
    return cli_env(f"http://127.0.0.1:{free_port()}", tmp_path, RTCTL_REDIS_URL=redis_server.url,
                   RTCTL_PREFIX=prefix, RTCTL_NODE_TTL="2", RTCTL_ADMIN_TOKEN="")  # fmt: skip


async def store_directly(redis_server: RedisServer, prefix: str, doc_id: str) -> Writer:
    """Write a document with a RedisDocStore, as a daemon would, with no daemon running."""
    from rtctl.docs.redis import RedisDocStore
    from rtctl.state.redis_url import open_client

    client = open_client(redis_server.url)
    store = RedisDocStore(client, prefix)
    start = getattr(store, "start", None)
    if start is not None:
        await start()
    w = Writer()
    try:
        w.text += "hello"
        w.meta["title"] = "Greeting"
        w.text += " world"
        for update in w.take():
            await store.append(doc_id, update)
    finally:
        await store.close()  # and its client
    return w


async def test_redis_mode_without_a_daemon(redis_server: RedisServer, tmp_path: Path) -> None:
    env = redis_env(redis_server, tmp_path)
    w = await store_directly(redis_server, "docs", "red:1")

    async def run(*args: str) -> Run:
        return await asyncio.to_thread(run_cli, ["docs", *args], env)

    row = one_row(await run("list", "-o", "json"))
    assert list(row) == DOC_FIELDS
    assert (row["id"], row["updates"], row["sessions"]) == ("red:1", 3, [])
    info = await run("info", "red:1", "-o", "json")
    assert info.code == 0 and info.json()["seq"] == 3
    await asyncio.to_thread(check_exports, run_binary, env, "red:1", w, tmp_path)

    compacted = await run("compact", "--all", "-o", "json")
    assert compacted.code == 0
    assert [(r["id"], r["result"], r["compacted"]) for r in compacted.json()] == [
        ("red:1", "compacted", 3)
    ]
    assert (await run("info", "red:1", "-o", "json")).json()["updates"] == 0
    code, update, _ = await asyncio.to_thread(run_binary, ["docs", "export", "red:1"], env)
    assert code == 0 and same_content(update, w)

    for args in (["info", "red:none"], ["export", "red:none"], ["delete", "red:none", "-y"]):
        assert (await run(*args)).code == 3, args
    assert (await run("info", BAD_IDS[0])).code == 2
    # another prefix is another deployment
    other = await asyncio.to_thread(
        run_cli, ["docs", "list", "-o", "json"], redis_env(redis_server, tmp_path, "elsewhere")
    )
    assert other.code == 0 and other.out.strip() == "[]"

    assert (await run("delete", "red:1", "--dry-run")).code == 0
    assert (await run("info", "red:1")).code == 0
    assert (await run("delete", "red:1")).code == 2  # not a terminal: needs --yes
    deleted = await run("delete", "red:1", "--yes", "-q")
    assert deleted.code == 0 and deleted.lines == ["red:1"] and deleted.err == ""
    assert (await run("info", "red:1")).code == 3
    assert (await run("list", "-o", "json")).out.strip() == "[]"


async def test_redis_mode_sees_sessions_on_a_daemon(
    make_daemon: Any, redis_server: RedisServer, tmp_path: Path
) -> None:
    d: DaemonProcess = make_daemon(
        RTCTL_REDIS_URL=redis_server.url, RTCTL_NODE_ID="node-docs", RTCTL_PREFIX="docs",
        RTCTL_NODE_TTL="2",
    )  # fmt: skip
    env = redis_env(redis_server, tmp_path)
    client, w = await write_through(d, "red:live", "doc-live")
    try:
        row = one_row(await asyncio.to_thread(run_cli, ["docs", "list", "-o", "json"], env))
        assert (row["id"], row["updates"], row["sessions"]) == ("red:live", 3, [client.sid])
        refused = await asyncio.to_thread(run_cli, ["docs", "delete", "red:live", "--yes"], env)
        assert refused.code == 1 and client.sid in refused.err
        code, update, _ = await asyncio.to_thread(run_binary, ["docs", "export", "red:live"], env)
        assert code == 0 and same_content(update, w)
        compacted = await asyncio.to_thread(run_cli, ["docs", "compact", "red:live"], env)
        assert compacted.code == 0 and compacted.lines[0].split("\t")[1] == "compacted"
        # the daemon keeps working on the compacted document
        w.text += "!"
        (more,) = w.take()
        ack = await client.call("ydoc:document:update",
                                {"document_id": "red:live", "update": list(more)})  # fmt: skip
        assert ack == {"ok": True, "seq": 4}
        code, text, _ = await asyncio.to_thread(
            run_binary, ["docs", "export", "red:live", "--format", "text"], env
        )
        assert text == b"hello world!"
    finally:
        await client.close()

    async def deletable() -> bool:
        run = await asyncio.to_thread(run_cli, ["docs", "delete", "red:live", "--yes"], env)
        return run.code == 0

    await until(deletable, what="the document to be deletable once its session left")


def test_unreachable_redis_exits_69(tmp_path: Path) -> None:
    env = cli_env(f"http://127.0.0.1:{free_port()}", tmp_path,
                  RTCTL_REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")  # fmt: skip
    for args in (["list"], ["info", "a"], ["export", "a"], ["compact", "--all"],
                 ["delete", "a", "--yes"]):  # fmt: skip
        run = run_cli(["docs", *args], env)
        assert run.code == 69, (args, run)
        assert run.err.count("\n") == 1
