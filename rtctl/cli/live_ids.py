"""Completion of live ids: TAB after ``sessions kick`` offers the sessions connected now.

Each completer reads the deployment the command line points at (its ``--url``,
``--redis-url`` … flags given so far, else the environment and config file), with a
short timeout, and offers the ids starting with what was typed, each with a word on
what it is. A deployment that cannot be reached offers nothing: a TAB never fails and
never hangs on it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import typer

from rtctl.cli.common import REMOTE_FLAGS, Invocation
from rtctl.cli.remote import Record, Remote

TIMEOUT = 1.0  # seconds a TAB waits for the deployment
MAX_OFFERED = 200

Offer = list[tuple[str, str]]


def _remote(ctx: typer.Context) -> Remote:
    params = ctx.params
    flags = {n: params[n] for n in REMOTE_FLAGS if params.get(n) is not None}
    flags["request_timeout"] = min(float(flags.get("request_timeout") or TIMEOUT), TIMEOUT)
    return Invocation(flags=flags, config=params.get("config")).remote()


def _offer(
    ctx: typer.Context, incomplete: str, read: Callable[[Remote], list[Record]],
    id_of: Callable[[Record], Any], about: Callable[[Record], str],
) -> Offer:  # fmt: skip
    try:
        records = read(_remote(ctx))
    except Exception:  # unreachable, refused, misconfigured: no offer, no noise
        return []
    offered = sorted({(str(id_of(r)), about(r)) for r in records if id_of(r) is not None})
    return [(i, a) for i, a in offered if i.startswith(incomplete)][:MAX_OFFERED]


def sessions(ctx: typer.Context, incomplete: str) -> Offer:
    return _offer(ctx, incomplete, lambda r: r.sessions(), lambda s: s.get("sid"),
                  lambda s: f"{s.get('user_id')} on {s.get('node')}")  # fmt: skip


def users(ctx: typer.Context, incomplete: str) -> Offer:
    return _offer(ctx, incomplete, lambda r: r.online_users(), lambda u: u.get("user_id"),
                  lambda u: f"{u.get('user_name')}, {u.get('sessions')} session(s)")  # fmt: skip


def rooms(ctx: typer.Context, incomplete: str) -> Offer:
    return _offer(ctx, incomplete, lambda r: r.rooms(), lambda r: r.get("room"),
                  lambda r: f"{r.get('members')} member(s)")  # fmt: skip


def tasks(ctx: typer.Context, incomplete: str) -> Offer:
    def about(t: Record) -> str:
        return f"{t.get('kind')} for {t.get('user_id')}, chat {t.get('item_id')}"

    return _offer(ctx, incomplete, lambda r: r.tasks(), lambda t: t.get("id"), about)


def items(ctx: typer.Context, incomplete: str) -> Offer:
    return _offer(ctx, incomplete, lambda r: r.tasks(), lambda t: t.get("item_id"),
                  lambda t: f"chat of {t.get('user_id')}")  # fmt: skip


def docs(ctx: typer.Context, incomplete: str) -> Offer:
    def about(d: Record) -> str:
        return f"{d.get('bytes')} bytes, open in {len(d.get('sessions') or [])} session(s)"

    return _offer(ctx, incomplete, lambda r: r.docs(), lambda d: d.get("id"), about)


# The options naming a live id, each completing it ------------------------------------------


def user_option(help: str) -> Any:
    return typer.Option("--user", metavar="ID", help=help, autocompletion=users)


def room_option(help: str) -> Any:
    return typer.Option("--room", metavar="ROOM", help=help, autocompletion=rooms)


def sid_option(help: str) -> Any:
    return typer.Option("--sid", metavar="SID", help=help, autocompletion=sessions)


def item_option(help: str) -> Any:
    return typer.Option("--item", metavar="ID", help=help, autocompletion=items)
