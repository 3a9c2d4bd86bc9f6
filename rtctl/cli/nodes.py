"""``rtctl nodes``: the daemons of the deployment."""

from __future__ import annotations

from rtctl.cli import views
from rtctl.cli.common import LISTING, Invocation, command, group
from rtctl.cli.output import print_rows

app = group("nodes", "Daemons of the deployment.")


@command(app, "list", shared=LISTING, view=views.NODE)
def list_nodes(inv: Invocation) -> None:
    """List the daemons of the deployment with their session counts."""
    print_rows(inv, views.NODE, inv.remote().nodes(), empty="no nodes")
