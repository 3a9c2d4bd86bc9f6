"""``rtctl usage``: models in use."""

from __future__ import annotations

from rtctl.cli import views
from rtctl.cli.common import WATCHABLE, Invocation, command, group
from rtctl.cli.watch import show

app = group("usage", "Models in use (the `usage` event).")


@command(app, "list", shared=WATCHABLE, view=views.USAGE)
def list_usage(inv: Invocation) -> None:
    """List models marked as in use, and by which sessions; marks expire unless renewed."""
    remote = inv.remote()
    show(inv, views.USAGE, remote.usage, empty="no model in use")
