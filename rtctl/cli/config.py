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
from rtctl.config import describe, load_settings
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
    """Validate the configuration as `rtctl serve` would: exit 0 if the daemon can start
    with it, else 1 with one line per problem (every one, not the first)."""
    found = problems(inv)
    for problem in found:
        report(f"config: {problem}")
    if found:
        raise typer.Exit(FAILED)
    say(inv, "configuration is valid")


def problems(inv: Invocation) -> list[str]:
    """Every problem ``serve`` would find, each once: values that cannot be read (every
    one, unknown keys of the file too), then the checks ``serve`` runs before it starts."""
    from rtctl.preflight import serve_problems

    found: list[str] = []
    try:
        settings = load_settings(inv.flags, config_path=inv.config, problems=found)
    except ConfigError as exc:  # the file itself cannot be read: nothing more to check
        return [exc.message]
    return found + serve_problems(settings)
