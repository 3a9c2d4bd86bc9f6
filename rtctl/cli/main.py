"""``rtctl``: the typer app, assembled from one module per command group."""

from __future__ import annotations

import gc
import importlib
import os
import sys
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


# The parts of the tree, in the SPEC's order: (module, "commands" for top-level commands
# or "group" for a command group).
PARTS = (
    ("serve", "commands"), ("status", "commands"), ("top", "commands"),
    ("nodes", "group"), ("sessions", "group"), ("users", "group"), ("rooms", "group"),
    ("usage", "group"),
    ("events", "commands"), ("tail", "group"),
    ("tasks", "group"), ("pool", "group"), ("docs", "group"), ("token", "group"),
    ("config", "group"), ("completion", "commands"),
)  # fmt: skip
# Top-level name -> the module defining it (a test checks this against the tree).
NAMES = {"emit": "events", "call": "events", "events": "tail"} | {
    m: m for m, _ in PARTS if m not in ("events", "tail")
}


def build(only: str | None = None) -> typer.Typer:
    """The command tree; with ``only`` (a top-level name), the root with just the part
    that defines it: running a command then imports and builds only its own module."""
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
    for name, how in PARTS:
        if only is not None and NAMES.get(only) != name:
            continue
        module = importlib.import_module(f"rtctl.cli.{name}")
        if how == "commands":
            root.registered_commands.extend(module.app.registered_commands)
        else:
            root.add_typer(module.app)
    return root


def main(argv: list[str] | None = None) -> None:
    # A command is a short-lived process whose objects (the command tree, a listing's
    # records) all live until it exits: the default gen-0 threshold (700) would scan them
    # again and again for cycles there are none of (10k sessions: ~15 ms).
    gc.set_threshold(100_000, 50, 1000)
    args = sys.argv[1:] if argv is None else argv
    only = args[0] if args and args[0] in NAMES else None
    if os.environ.get("_RTCTL_COMPLETE"):
        from rtctl.cli.completion import completed_command, register_shells

        register_shells()
        # past the command's name, TAB needs only its part of the tree; on it, the whole
        completed = completed_command(os.environ)
        only = completed if completed in NAMES else None
    build(only)(args=argv, prog_name="rtctl")


if __name__ == "__main__":
    main()
