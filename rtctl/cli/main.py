"""``rtctl``: the typer app, assembled from one module per command group."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from rtctl._version import __version__
from rtctl.cli.common import CONTEXT

HELP = """The rtctl hub and its operator's toolkit.

Embedded mode (default) reaches the daemon's admin API at RTCTL_URL with
RTCTL_ADMIN_TOKEN (else the token the daemon generated in the data dir).
Exit codes: 0 ok, 1 failed, 2 usage, 3 not found, 69 unreachable.
"""


def _version(value: bool) -> None:
    if value:
        print(f"rtctl {__version__}")
        raise typer.Exit()


def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """The rtctl hub and its operator's toolkit."""


def build() -> typer.Typer:
    from rtctl.cli import (
        config,
        docs,
        events,
        nodes,
        pool,
        rooms,
        serve,
        sessions,
        status,
        tasks,
        token,
        usage,
        users,
    )

    root = typer.Typer(
        name="rtctl",
        help=HELP,
        no_args_is_help=True,
        rich_markup_mode=None,  # plain click help: rich would cost more than all the rest
        pretty_exceptions_enable=False,
        add_completion=False,  # the scripts ship in completions/, see rtctl.cli.completion
        context_settings=CONTEXT,
    )
    root.callback()(_root)
    # Top-level commands first, then groups, in the SPEC's order.
    for module in (serve, status):
        root.registered_commands.extend(module.app.registered_commands)
    for module in (nodes, sessions, users, rooms, usage):
        root.add_typer(module.app)
    root.registered_commands.extend(events.app.registered_commands)
    for module in (tasks, pool, docs, token, config):
        root.add_typer(module.app)
    return root


def main(argv: list[str] | None = None) -> None:
    if os.environ.get("_RTCTL_COMPLETE"):
        from rtctl.cli.completion import register_shells

        register_shells()
    build()(args=argv, prog_name="rtctl")


if __name__ == "__main__":
    main()
