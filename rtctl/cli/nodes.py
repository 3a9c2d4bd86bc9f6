"""``rtctl nodes``: the daemons of the deployment."""

from __future__ import annotations

from rtctl.cli import views
from rtctl.cli.common import WATCHABLE, Invocation, command, group
from rtctl.cli.watch import show

app = group("nodes", "Daemons of the deployment.")


@command(app, "list", shared=WATCHABLE, view=views.NODE)
def list_nodes(inv: Invocation) -> None:
    """List the daemons of the deployment with their session counts."""
    remote = inv.remote()
    show(inv, views.NODE, remote.nodes, empty="no nodes")
