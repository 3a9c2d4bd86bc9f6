"""``rtctl docs``: collaborative documents: list, inspect, compact, export, delete.

Works on every deployment the way the other commands do: through the daemon's admin
API when embedded, straight on Redis (no daemon needed) in Redis mode.
"""

from __future__ import annotations

import os
import sys
import tempfile
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from rtctl.cli import live_ids, views
from rtctl.cli.common import DESTRUCTIVE, LISTING, WATCHABLE, Invocation, command, group
from rtctl.cli.inputs import STDIN, read_ids
from rtctl.cli.output import confirm, print_fields, print_ids, print_rows, say
from rtctl.cli.remote import Record
from rtctl.cli.watch import show
from rtctl.errors import NotFound, OperationFailed, UsageError

app = group("docs", "Collaborative (Yjs) documents.")

DocArg = Annotated[
    str, typer.Argument(metavar="ID", help="Document id.", autocompletion=live_ids.docs)
]


class ExportFormat(StrEnum):
    update = "update"
    json = "json"
    text = "text"


def doc_id(value: str) -> str:
    """A document id as the daemon would take it, else a usage error (exit 2)."""
    from rtctl.docs.store import valid_doc_id  # asyncio and more: only when a command runs

    try:
        return valid_doc_id(value)
    except UsageError:
        raise UsageError(
            f"{value!r} is not a document id: 1 to 200 characters of letters, digits and"
            " _ . : @ + = -, starting with a letter or digit"
        ) from None


def _rows(docs: list[Record]) -> list[Record]:
    """Records with what the table shows beside the JSON fields (the session count)."""
    return [{**d, "session_count": len(d.get("sessions") or [])} for d in docs]


@command(app, "list", shared=WATCHABLE, view=views.DOC)
def list_docs(inv: Invocation) -> None:
    """List every stored document, with the sessions in it on every node."""
    remote = inv.remote()
    show(inv, views.DOC, lambda: _rows(remote.docs()), empty="no documents")


@command(app, "info", shared=LISTING, view=views.DOC_INFO)
def info(inv: Invocation, doc: DocArg) -> None:
    """Show one document: its log, snapshot, sizes, times and sessions. Exit 3 if absent.

    "updates" counts the updates in the log not yet compacted into the snapshot, "seq"
    is the number of the last update written, "bytes" the snapshot's and log's bytes.
    """
    found = inv.remote().doc_info(doc_id(doc))
    if inv.format == "name":
        print_ids([found["id"]])
        return
    pairs = [
        ("id", found.get("id")),
        ("updates", found.get("updates")),
        ("bytes", found.get("bytes")),
        ("snapshot bytes", found.get("snapshot_bytes")),
        ("seq", found.get("seq")),
        ("created", found.get("created_at")),
        ("updated", found.get("updated_at")),
        ("sessions", found.get("sessions")),
    ]
    print_fields(inv, pairs, as_json=views.DOC_INFO.json_row(found))


@command(app, "compact", shared=LISTING, view=views.DOC_COMPACT)
def compact(
    inv: Invocation,
    docs: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="ID…|-",
            help="Document ids; '-' reads them from stdin.",
            autocompletion=live_ids.docs,
        ),
    ] = None,
    all_docs: Annotated[bool, typer.Option("--all", help="Every document.")] = False,
) -> None:
    """Fold documents' update logs into their snapshots, now.

    Safe while clients edit: an update written meanwhile, on any node, stays in the log.
    Reports each document as compacted, unchanged (nothing to fold), not-found or
    failed (the log does not merge; the document is left as it was). Exit 1 if any
    failed, else 3 if any was not found.
    """
    if all_docs and docs:
        raise UsageError("give document ids or --all, not both")
    if not all_docs and not docs:
        raise UsageError("give document ids (or '-' to read them from stdin) or --all")
    ids = None if all_docs else [doc_id(d) for d in read_ids(docs or [], "document id")]
    if ids == []:  # '-' and nothing on stdin: nothing to compact
        print_rows(inv, views.DOC_COMPACT, [], empty="no document to compact")
        return
    results = inv.remote().doc_compact(ids, all_docs=all_docs)
    print_rows(inv, views.DOC_COMPACT, results, empty="no documents")
    done = [r for r in results if r.get("result") == "compacted"]
    freed = sum((r.get("before_bytes") or 0) - (r.get("after_bytes") or 0) for r in done)
    say(inv, f"compacted {len(done)} of {len(results)} document(s), {freed} bytes freed")
    failed = [r["id"] for r in results if r.get("result") == "failed"]
    if failed:
        raise OperationFailed(f"{len(failed)} document(s) not compacted: {' '.join(failed)}")
    missing = [r["id"] for r in results if r.get("result") == "not-found"]
    if missing:
        raise NotFound(f"{len(missing)} document(s) not found: {' '.join(missing)}")


@command(app, "export", shared=("quiet",))
def export(
    inv: Invocation,
    doc: DocArg,
    fmt: Annotated[
        ExportFormat | None,
        typer.Option(
            "--format",
            help="update (binary Yjs v1 update), json (every root type) or text "
            "[default: text on a terminal, else update]",
            show_default=False,
        ),
    ] = None,
    output_file: Annotated[
        str | None,
        typer.Option(
            "--output",
            metavar="FILE",
            help="Write to FILE (replaced atomically) instead of stdout; '-' is stdout.",
        ),
    ] = None,
) -> None:
    """Print a document's whole state, as every client converges to it.

    --format update writes the merged Yjs update (Y.applyUpdate on an empty document
    restores it), json the value of every root type, text the plain text of its text
    and XML content. Binary output is not written to a terminal.
    """
    to_stdout = output_file in (None, STDIN)
    tty = to_stdout and sys.stdout.isatty()
    chosen = fmt or (ExportFormat.text if tty else ExportFormat.update)
    if tty and chosen is ExportFormat.update:
        raise UsageError(
            "not writing a binary Yjs update to a terminal: redirect stdout, give"
            " --output FILE, or choose --format text or json"
        )
    data = inv.remote().doc_export(doc_id(doc), chosen.value)
    if not to_stdout:
        assert output_file is not None
        write_atomically(Path(output_file), data)
        say(inv, f"wrote {len(data)} bytes ({chosen.value}) of document {doc} to {output_file}")
        return
    if tty and not data.endswith(b"\n"):
        data += b"\n"  # leave the prompt on a line of its own
    sys.stdout.buffer.write(data)
    sys.stdout.flush()


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``path`` whole or not at all: a temporary file beside it, renamed over it."""
    directory = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise UsageError(f"--output {path}: is a directory")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    except OSError as exc:
        raise OperationFailed(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _file_mode(path))
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise OperationFailed(f"cannot write {path}: {exc.strerror or exc}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _file_mode(path: Path) -> int:
    """The mode a plain ``open(path, "w")`` would leave: the file's own if it exists,
    else 0666 less the umask (mkstemp makes 0600)."""
    try:
        return path.stat().st_mode & 0o7777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


@command(app, "delete", shared=(*LISTING, *DESTRUCTIVE), view=views.DOC)
def delete(inv: Invocation, doc: DocArg) -> None:
    """Delete a document and its whole history.

    Refused (exit 1) while any session is in the document: deleting it under live
    editors would fork it. Exit 3 if there is no such document. Prints the document
    deleted; with --dry-run, checks that it could be and deletes nothing.
    """
    remote = inv.remote()
    ident = doc_id(doc)
    if inv.dry_run:
        found = remote.doc_delete(ident, dry_run=True)
        _print_deleted(inv, found, "dry run: would delete")
        return
    current = remote.doc_info(ident)  # not found, or in use: say so before asking
    if current.get("sessions"):
        remote.doc_delete(ident, dry_run=True)  # the daemon's refusal explains it
    confirm(
        inv,
        f"Delete document {ident} ({current.get('bytes')} bytes) and its whole history?",
    )
    found = remote.doc_delete(ident, dry_run=False)
    _print_deleted(inv, found, "deleted")


def _print_deleted(inv: Invocation, found: Record, verb: str) -> None:
    print_rows(inv, views.DOC, _rows([found]), empty="")
    say(inv, f"{verb} document {found['id']} ({found.get('bytes')} bytes)")
