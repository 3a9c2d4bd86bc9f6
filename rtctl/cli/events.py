"""``rtctl emit`` and ``rtctl call``: send events to clients, call them and wait for a reply.

DATA is JSON (see ``rtctl.cli.inputs``): ``'{"a": 1}'``, ``42``, ``'"text"'``; ``-``
reads it from stdin; absent means null.
"""

from __future__ import annotations

from typing import Annotated

import typer

from rtctl.cli import live_ids
from rtctl.cli.common import Invocation, command
from rtctl.cli.inputs import parse_data
from rtctl.cli.output import print_json, say
from rtctl.errors import UsageError

app = typer.Typer()

EventArg = Annotated[str, typer.Argument(metavar="EVENT", help="Event name, e.g. events.")]
DataArg = Annotated[
    str | None,
    typer.Argument(
        metavar="DATA|-",
        help="JSON, e.g. '{\"a\": 1}' or '\"text\"'; '-' reads it from stdin.",
        show_default=False,
    ),
]


@command(app, "emit", shared=("output", "quiet"))
def emit(
    inv: Invocation,
    event: EventArg,
    data: DataArg = None,
    user: Annotated[
        str | None,
        live_ids.user_option("Every session of this user."),
    ] = None,
    room: Annotated[
        str | None,
        live_ids.room_option("Every member."),
    ] = None,
    sid: Annotated[
        str | None,
        live_ids.sid_option("One session."),
    ] = None,
) -> None:
    """Send EVENT with DATA to a user's sessions, a room, or one session.

    Exit 3 if nobody is there to receive it. -o json prints {event, to, sessions}.

    \b
    Examples:
      rtctl emit events '{"data": {"type": "notification", "data": {"content": "hi"}}}' --user alice
      echo '{"text": "maintenance at 5"}' | rtctl emit notice - --room channel:general
    """
    target = one_target(user=user, room=room, sid=sid)
    result = inv.remote().emit(event, parse_data(data), target=target)
    if inv.format == "json":
        print_json(result)
    else:
        say(inv, f"sent {event} to {result.get('to')} ({result.get('sessions')} session(s))")


@command(app, "call")
def call(
    inv: Invocation,
    event: EventArg,
    data: DataArg = None,
    *,
    sid: Annotated[
        str,
        live_ids.sid_option("The session to call."),
    ],
    timeout: Annotated[
        float | None,
        typer.Option("--timeout", metavar="S", help="Seconds to wait [default: call_timeout]."),
    ] = None,
) -> None:
    """Call one session: emit EVENT with DATA, wait for its ack, print the reply as JSON.

    Exit 1 if the session does not answer in time, 3 if it is not connected.

    \b
    Example:
      rtctl call SID events '{"data": {"type": "ping"}}' --timeout 5
    """
    print_json(inv.remote().call(sid, event, parse_data(data), timeout))


def one_target(**given: str | None) -> tuple[str, str]:
    """The one ``(kind, id)`` of ``--user``/``--room``/``--sid`` that was given."""
    chosen = [(kind, value) for kind, value in given.items() if value is not None]
    if len(chosen) != 1:
        raise UsageError("give exactly one of --user, --room or --sid")
    return chosen[0]
