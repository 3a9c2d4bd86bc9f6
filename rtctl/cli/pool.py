"""``rtctl pool``: the shared session pool's upkeep."""

from __future__ import annotations

from rtctl.cli import views
from rtctl.cli.common import DESTRUCTIVE, LISTING, Invocation, command, group
from rtctl.cli.output import confirm, print_rows, say
from rtctl.errors import OperationFailed

app = group("pool", "The shared session pool.")


@command(app, "cleanup", shared=LISTING + DESTRUCTIVE, view=views.SWEEP)
def cleanup(inv: Invocation) -> None:
    """Remove the sessions, room memberships and records of dead nodes, now.

    Runs the same sweep, under the same lease, as the daemons do by themselves every
    node_ttl; works on Redis with no daemon running. Prints one row per dead node with
    the sessions removed (with --dry-run: that would be). Exit 1 if another cleanup
    holds the lease or the lease was lost part-way.
    """
    remote = inv.remote()
    if not inv.dry_run:
        confirm(inv, "Remove every dead node's sessions from the pool?")
    result = remote.cleanup(dry_run=inv.dry_run)
    print_rows(inv, views.SWEEP, result["nodes"], empty="no dead node")
    verb = "would remove" if inv.dry_run else "removed"
    say(inv, f"{verb} {result['sessions']} session(s) of {len(result['nodes'])} dead node(s)")
    if not result.get("complete", True):
        raise OperationFailed("the cleanup lost its lease part-way; run it again")
