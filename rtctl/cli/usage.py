"""``rtctl usage``: models in use."""

from __future__ import annotations

from rtctl.cli import views
from rtctl.cli.common import LISTING, Invocation, command, group
from rtctl.cli.output import print_rows

app = group("usage", "Models in use (the `usage` event).")


@command(app, "list", shared=LISTING, view=views.USAGE)
def list_usage(inv: Invocation) -> None:
    """List models marked as in use, and by which sessions; marks expire unless renewed."""
    print_rows(inv, views.USAGE, inv.remote().usage(), empty="no model in use")
