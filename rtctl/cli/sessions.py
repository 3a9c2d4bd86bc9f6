"""``rtctl sessions``: list connected sessions, kick them."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from rtctl.cli import live_ids, views
from rtctl.cli.common import DESTRUCTIVE, LISTING, WATCHABLE, Invocation, command, group
from rtctl.cli.inputs import read_ids
from rtctl.cli.output import confirm, print_ids, print_rows, say
from rtctl.cli.remote import Record, Remote
from rtctl.cli.watch import show
from rtctl.errors import NotFound, UsageError

app = group("sessions", "Connected sessions.")

UserOpt = Annotated[
    str | None,
    live_ids.user_option("Only this user's."),
]


@command(app, "list", shared=WATCHABLE, view=views.SESSION)
def list_sessions(
    inv: Invocation,
    user: UserOpt = None,
    room: Annotated[
        str | None,
        live_ids.room_option("Only members of ROOM."),
    ] = None,
) -> None:
    """List sessions on every node, optionally of one user and/or in one room.

    \b
    Examples:
      rtctl sessions list --user alice
      rtctl sessions list --room channel:general -o json
    """
    remote = inv.remote()
    show(inv, views.SESSION, lambda: remote.sessions(user=user, room=room), empty="no sessions")


@command(app, "kick", shared=(*LISTING, *DESTRUCTIVE), view=views.KICK)
def kick(
    inv: Invocation,
    sids: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="SID|-",
            help="Session ids; '-' reads them from stdin.",
            autocompletion=live_ids.sessions,
        ),
    ] = None,
    user: Annotated[
        str | None,
        live_ids.user_option("Every session of this user."),
    ] = None,
) -> None:
    """Disconnect sessions by id, or every session of a user.

    Reports each session as kicked or not-found; exit 3 if any was not found.
    With --dry-run, lists the sessions that would be kicked.

    \b
    Examples:
      rtctl sessions kick --user alice --yes
      rtctl sessions list --room channel:spam -q | rtctl sessions kick - -y
    """
    target = kick_target(sids or [], user)
    if target.get("sids") == []:  # '-' and nothing on stdin: nothing to kick
        print_rows(inv, views.KICK, [], empty="no session to kick")
        return
    remote = inv.remote()
    if inv.dry_run:
        matching, missing = plan_kick(remote, target)
        print_rows(inv, views.SESSION, matching, empty="no session would be kicked")
        say(inv, f"dry run: would kick {len(matching)} session(s)")
        _fail_if_missing(missing)
        return
    question = (
        f"Kick every session of user {user}?"
        if user is not None
        else f"Kick {len(target['sids'])} session(s): {' '.join(target['sids'])}?"
    )
    confirm(inv, question)
    result = remote.kick(**target)
    if inv.format == "name":
        print_ids(result["kicked"])
    else:
        rows = [{"sid": s, "result": "kicked"} for s in result["kicked"]]
        rows += [{"sid": s, "result": "not-found"} for s in result["not_found"]]
        print_rows(inv, views.KICK, rows, empty="no session kicked")
    _fail_if_missing(result["not_found"])


def kick_target(sids: list[str], user: str | None) -> dict[str, Any]:
    """Exactly one of SID… and --user, as keyword arguments of ``Remote.kick``."""
    if sids and user is not None:
        raise UsageError("give session ids or --user, not both")
    if user is not None:
        return {"user": user}
    if not sids:
        raise UsageError("give session ids (or '-' to read them from stdin) or --user")
    return {"sids": read_ids(sids, "session id")}


def plan_kick(remote: Remote, target: dict[str, Any]) -> tuple[list[Record], list[str]]:
    """(sessions that would be kicked, requested ids that do not exist)."""
    if "user" in target:
        found = remote.sessions(user=target["user"])
        if not found:
            raise NotFound(f"user {target['user']} has no sessions")
        return found, []
    wanted = list(dict.fromkeys(target["sids"]))
    by_sid = {s["sid"]: s for s in remote.sessions()}
    return [by_sid[s] for s in wanted if s in by_sid], [s for s in wanted if s not in by_sid]


def _fail_if_missing(missing: list[str]) -> None:
    if missing:
        raise NotFound(f"{len(missing)} session(s) not found: {' '.join(missing)}")
