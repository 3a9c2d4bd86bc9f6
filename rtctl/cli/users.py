"""``rtctl users``: who is connected."""

from __future__ import annotations

from rtctl.cli import views
from rtctl.cli.common import WATCHABLE, Invocation, command, group
from rtctl.cli.watch import show

app = group("users", "Users with sessions.")


@command(app, "online", shared=WATCHABLE, view=views.USER)
def online(inv: Invocation) -> None:
    """List users with at least one session anywhere in the deployment."""
    remote = inv.remote()
    show(inv, views.USER, remote.online_users, empty="no user online")
