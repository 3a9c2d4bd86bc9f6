"""``rtctl config``: the effective configuration and whether it can run.

Both commands take every setting as a flag, so ``rtctl config show --port 9000`` shows
what ``rtctl serve --port 9000`` would run with, and where each value comes from.
"""

from __future__ import annotations

import typer

from rtctl.cli import views
from rtctl.cli.common import ALL_FLAGS, LISTING, Invocation, command, group
from rtctl.cli.errors import FAILED, report
from rtctl.cli.output import print_rows, say
from rtctl.config import describe
from rtctl.errors import ConfigError

app = group("config", "The effective configuration.")


@command(app, "show", flags=ALL_FLAGS, shared=LISTING, view=views.SETTING)
def show(inv: Invocation) -> None:
    """Print every setting's effective value and where it came from (secrets masked).

    Precedence: flag > environment (RTCTL_*) > config file (--config, RTCTL_CONFIG) > default.
    """
    print_rows(inv, views.SETTING, describe(inv.settings), empty="")


@command(app, "check", flags=ALL_FLAGS, shared=("quiet",))
def check(inv: Invocation) -> None:
    """Validate the configuration: exit 0 if it can run, else 1 with one line per problem."""
    found = problems(inv)
    for problem in found:
        report(f"config: {problem}")
    if found:
        raise typer.Exit(FAILED)
    say(inv, "configuration is valid")


def problems(inv: Invocation) -> list[str]:
    try:
        settings = inv.settings
    except ConfigError as exc:  # unreadable file or a value of the wrong type: no further checks
        return [exc.message]
    return settings.problems()
