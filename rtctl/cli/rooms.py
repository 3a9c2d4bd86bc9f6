"""``rtctl rooms``: rooms and their members."""

from __future__ import annotations

from typing import Annotated

import typer

from rtctl.cli import views
from rtctl.cli.common import LISTING, Invocation, command, group
from rtctl.cli.output import print_rows

app = group("rooms", "Rooms (user:ID, channel:ID, doc_ID) and their members.")


@command(app, "list", shared=LISTING, view=views.ROOM)
def list_rooms(inv: Invocation) -> None:
    """List rooms with at least one member, and how many members each has."""
    print_rows(inv, views.ROOM, inv.remote().rooms(), empty="no rooms")


@command(app, "members", shared=LISTING, view=views.SESSION)
def members(
    inv: Invocation,
    room: Annotated[str, typer.Argument(metavar="ROOM", help="e.g. channel:general")],
) -> None:
    """List the sessions in ROOM, on every node. Exit 3 if the room has no members."""
    print_rows(inv, views.SESSION, inv.remote().members(room), empty=f"no sessions in {room}")
