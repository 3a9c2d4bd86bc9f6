"""``rtctl users``: who is connected."""

from __future__ import annotations

from rtctl.cli import views
from rtctl.cli.common import LISTING, Invocation, command, group
from rtctl.cli.output import print_rows

app = group("users", "Users with sessions.")


@command(app, "online", shared=LISTING, view=views.USER)
def online(inv: Invocation) -> None:
    """List users with at least one session anywhere in the deployment."""
    print_rows(inv, views.USER, inv.remote().online_users(), empty="no user online")
