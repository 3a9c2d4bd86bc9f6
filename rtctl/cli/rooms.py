"""``rtctl rooms``: rooms and their members."""

from __future__ import annotations

from typing import Annotated

import typer

from rtctl.cli import live_ids, views
from rtctl.cli.common import LISTING, WATCHABLE, Invocation, command, group
from rtctl.cli.output import print_ids, print_rows
from rtctl.cli.watch import show
from rtctl.errors import NotFound

app = group("rooms", "Rooms (user:ID, channel:ID, doc_ID) and their members.")


@command(app, "list", shared=WATCHABLE, view=views.ROOM)
def list_rooms(inv: Invocation) -> None:
    """List rooms with at least one member, and how many members each has."""
    remote = inv.remote()
    show(inv, views.ROOM, remote.rooms, empty="no rooms")


ROOM_ARG = Annotated[
    str, typer.Argument(metavar="ROOM", help="e.g. channel:general", autocompletion=live_ids.rooms)
]
USER_OPT = Annotated[str, live_ids.user_option("Every session of this user, on every node.")]


@command(app, "members", shared=WATCHABLE, view=views.SESSION)
def members(inv: Invocation, room: ROOM_ARG) -> None:
    """List the sessions in ROOM, on every node. Exit 3 if the room has no members."""
    remote = inv.remote()
    show(inv, views.SESSION, lambda: remote.members(room), empty=f"no sessions in {room}")


def _membership(inv: Invocation, room: str, user: str, *, join: bool) -> None:
    result = inv.remote().membership(room, user=user, join=join)
    outcome = "joined" if join else "left"
    rows = [{"sid": sid, "result": outcome} for sid in result["sessions"]]
    if inv.format == "name":
        print_ids(result["sessions"])
    else:
        print_rows(inv, views.KICK, rows, empty=f"user {user} has no sessions")
    if not rows:
        raise NotFound(f"user {user} has no sessions (new ones ask the app again)")


@command(app, "join", shared=LISTING, view=views.KICK)
def join(inv: Invocation, room: ROOM_ARG, user: USER_OPT) -> None:
    """Put every session of a user, on every node, in ROOM.

    Reports each session joined; exit 3 if the user has no sessions. The user's
    cached auth hook answers are dropped, so sessions opened next ask the app again.

    \b
    Example:
      rtctl rooms join channel:general --user alice
    """
    _membership(inv, room, user, join=True)


@command(app, "leave", shared=LISTING, view=views.KICK)
def leave(inv: Invocation, room: ROOM_ARG, user: USER_OPT) -> None:
    """Take every session of a user, on every node, out of ROOM.

    Reports each session that left; exit 3 if the user has no sessions.
    """
    _membership(inv, room, user, join=False)
