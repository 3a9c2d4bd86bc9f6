"""``rtctl tasks``: running tasks of the whole deployment; stop them wherever they run."""

from __future__ import annotations

from typing import Annotated

import typer

from rtctl.cli import live_ids, views
from rtctl.cli.common import DESTRUCTIVE, LISTING, WATCHABLE, Invocation, command, group
from rtctl.cli.inputs import read_ids
from rtctl.cli.output import confirm, print_ids, print_rows, say
from rtctl.cli.remote import Record
from rtctl.cli.watch import show
from rtctl.errors import OperationFailed, UsageError

app = group("tasks", "Running tasks (chat completions, app jobs).")

ItemOpt = Annotated[
    str | None,
    live_ids.item_option("Only the tasks of this chat/item."),
]


@command(app, "list", shared=WATCHABLE, view=views.TASK)
def list_tasks(inv: Invocation, item: ItemOpt = None) -> None:
    """List the tasks running on every node, oldest first."""
    remote = inv.remote()
    show(inv, views.TASK, lambda: remote.tasks(item=item), empty="no tasks")


@command(app, "stop", shared=(*LISTING, *DESTRUCTIVE), view=views.TASK_STOP)
def stop(
    inv: Invocation,
    ids: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="ID…|-",
            help="Task ids; '-' reads them from stdin.",
            autocompletion=live_ids.tasks,
        ),
    ] = None,
    item: Annotated[
        str | None,
        live_ids.item_option("Every task of this chat/item."),
    ] = None,
    all_tasks: Annotated[bool, typer.Option("--all", help="Every task.")] = False,
) -> None:
    """Stop tasks wherever they run; the owning node cancels each and confirms.

    Reports each task as stopped, not-found, owner-gone (its node died; the record is
    removed) or pending (its node did not answer; it stops the task when it is back).
    Exit 1 if any task was not stopped. With --dry-run, lists the tasks that would be.

    \b
    Examples:
      rtctl tasks stop --item CHAT_ID -y
      rtctl tasks list --item CHAT_ID -q | rtctl tasks stop - -y
    """
    if sum((bool(ids), item is not None, all_tasks)) != 1:
        raise UsageError("give task ids (or '-' to read them from stdin), --item ID or --all")
    wanted = read_ids(ids, "task id") if ids else None
    if wanted == []:  # '-' and nothing on stdin: nothing to stop
        print_rows(inv, views.TASK_STOP, [], empty="no task to stop")
        return
    remote = inv.remote()
    if inv.dry_run:
        found = remote.tasks(item=item)
        if wanted is not None:
            by_id = {t["id"]: t for t in found}
            found = [by_id[t] for t in dict.fromkeys(wanted) if t in by_id]
            missing = [t for t in dict.fromkeys(wanted) if t not in {f["id"] for f in found}]
        else:
            missing = []
        print_rows(inv, views.TASK, found, empty="no task would be stopped")
        say(inv, f"dry run: would stop {len(found)} task(s)")
        if missing:
            raise OperationFailed(f"{len(missing)} task(s) not found: {' '.join(missing)}")
        return
    what = (
        "every task" if all_tasks
        else f"every task of {item}" if item is not None
        else f"{len(wanted or [])} task(s): {' '.join(wanted or [])}"
    )  # fmt: skip
    confirm(inv, f"Stop {what}?")
    results = remote.stop_tasks(wanted, item=item, all_tasks=all_tasks)
    _report(inv, results)


def _report(inv: Invocation, results: list[Record]) -> None:
    if inv.format == "name":
        print_ids([r["id"] for r in results if r.get("result") == "stopped"])
    else:
        print_rows(inv, views.TASK_STOP, results, empty="no tasks")
    failed = [r["id"] for r in results if r.get("result") != "stopped"]
    if failed:
        raise OperationFailed(f"{len(failed)} task(s) not stopped: {' '.join(failed)}")


@command(app, "tail", shared=("output",))
def tail(
    inv: Invocation,
    task_id: Annotated[
        str,
        typer.Argument(metavar="ID", help="A running task's id.", autocompletion=live_ids.tasks),
    ],
) -> None:
    """Follow a running task's output until it ends: what it streamed so far, then the
    rest as it comes (-o json: the task's state so far, then one event per line).

    Exit 3 if no such task runs; exit 1 if the task fails.

    \b
    Examples:
      rtctl tasks tail "$(rtctl tasks list --item CHAT_ID -q | tail -n1)"
      rtctl tasks tail ID -o json | jq -r '.data.delta // empty'
    """
    from rtctl.cli.tail import print_task

    print_task(inv, task_id)
