"""What every command shares: its options, declared once here, and the ``Invocation`` they
become.

A command function takes an ``Invocation`` first and its own arguments after it::

    @command(app, "list", flags=REMOTE_FLAGS, shared=LISTING, view=views.SESSION)
    def list_sessions(inv: Invocation, user: UserOpt = None) -> None: ...

``command`` appends the shared options and the chosen ``Settings`` flags to the
signature typer reads, builds the ``Invocation`` from them, and runs the command inside
``errors.reported`` (one line and an exit code for every failure). The Settings flags
are generated from ``rtctl.config.FIELDS``, so a new setting is a new flag everywhere
it applies without touching the CLI.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from typer.core import TyperArgument, TyperCommand

from rtctl.cli import errors
from rtctl.config import FIELDS, Settings, env_name, flag_name, load_settings

if TYPE_CHECKING:
    from rtctl.cli.remote import Remote
    from rtctl.cli.views import View


class Output(StrEnum):
    table = "table"
    wide = "wide"
    json = "json"
    name = "name"


# Settings a command that talks to the hub takes as flags (the rest: env or file only).
REMOTE_FLAGS = ("url", "admin_token", "redis_url", "redis_cluster", "prefix", "data_dir",
                "request_timeout")  # fmt: skip
# Settings that locate the JWT key for `token issue` / `token verify`.
JWT_FLAGS = ("jwt_secret", "jwt_public_key", "jwt_algorithms", "data_dir")
ALL_FLAGS = tuple(FIELDS)

# Shared options: name -> (annotation, default).
SHARED: dict[str, tuple[Any, Any]] = {
    "config": (
        Annotated[
            str | None,
            typer.Option("--config", metavar="PATH", help="TOML config file [env: RTCTL_CONFIG]"),
        ],
        None,
    ),
    "output": (
        Annotated[
            Output | None,
            typer.Option(
                "-o",
                "--output",
                help="table, wide, json or name [default: table on a terminal, "
                "else tab-separated text]",
                show_default=False,
            ),
        ],
        None,
    ),
    "quiet": (Annotated[bool, typer.Option("-q", "--quiet", help="Print only ids.")], False),
    "no_color": (
        Annotated[bool, typer.Option("--no-color", help="No colour (also NO_COLOR=1).")],
        False,
    ),
    "watch": (
        Annotated[
            bool,
            typer.Option("-w", "--watch", help="Then print changes as they happen (Ctrl-C stops)."),
        ],
        False,
    ),
    "yes": (
        Annotated[bool, typer.Option("-y", "--yes", help="Do not ask for confirmation.")],
        False,
    ),
    "dry_run": (
        Annotated[
            bool, typer.Option("-n", "--dry-run", help="Show what would be done; change nothing.")
        ],
        False,
    ),
}
LISTING = ("output", "quiet", "no_color")
WATCHABLE = (*LISTING, "watch")  # listings that can follow changes
DESTRUCTIVE = ("yes", "dry_run")


# Metavars of Settings flags whose type says too little.
METAVARS = {
    "host": "HOST", "port": "PORT", "path": "PATH", "url": "URL", "redis_url": "URL",
    "admin_token": "TOKEN", "jwt_secret": "SECRET", "log_level": "LEVEL",
}  # fmt: skip


def _settings_option(name: str) -> Any:
    """The typer annotation of the flag of one Settings field."""
    f = FIELDS[name]
    default, flag, text = f.default, flag_name(name), f.metadata["help"]
    help = f"{text[:1].upper()}{text[1:]} [env: {env_name(name)}]"
    if isinstance(default, bool):
        return Annotated[bool | None, typer.Option(f"{flag}/--no-{flag[2:]}", help=help)]
    kind: type = int if isinstance(default, int) else float if isinstance(default, float) else str
    metavar = METAVARS.get(name) or {int: "N", float: "NUMBER", str: "TEXT"}[kind]
    if f.metadata.get("kind") == "path":
        metavar = "PATH"
    if isinstance(default, tuple):
        metavar = "A,B,…"
    return Annotated[kind | None, typer.Option(flag, help=help, metavar=metavar)]


@dataclass
class Invocation:
    """What a command was asked beyond its own arguments."""

    flags: dict[str, Any] = field(default_factory=dict)
    config: str | None = None
    output: Output | None = None
    quiet: bool = False
    no_color: bool = False
    yes: bool = False
    dry_run: bool = False
    watch: bool = False
    _settings: Settings | None = field(default=None, repr=False)

    @property
    def settings(self) -> Settings:
        """Flag > env > file > default, loaded on first use (raises ``ConfigError``)."""
        if self._settings is None:
            self._settings = load_settings(self.flags, config_path=self.config)
        return self._settings

    def remote(self) -> Remote:
        from rtctl.cli.remote import open_remote

        return open_remote(self.settings)

    @property
    def format(self) -> str:
        """The effective output: ``json``, ``name``, ``table``/``wide`` (rich, on a
        terminal) or ``plain``/``plain-wide`` (tab-separated, anywhere else)."""
        if self.quiet or self.output is Output.name:
            return "name"
        if self.output is Output.json:
            return "json"
        wide = self.output is Output.wide
        if sys.stdout.isatty():
            return "wide" if wide else "table"
        return "plain-wide" if wide else "plain"


F = TypeVar("F", bound=Callable[..., Any])


def command(
    group: typer.Typer,
    name: str,
    *,
    flags: Sequence[str] = REMOTE_FLAGS,
    shared: Sequence[str] = (),
    view: View | None = None,
) -> Callable[[F], F]:
    """Register ``fn(inv, **own)`` as a command that also takes ``shared`` and ``flags``."""

    def register(fn: F) -> F:
        own = list(inspect.signature(fn, eval_str=True).parameters.values())[1:]
        extra = [_param(n, *SHARED[n]) for n in ("config", *shared)]
        extra += [_param(n, _settings_option(n), None) for n in flags]

        def run(**kwargs: Any) -> None:
            with errors.reported():
                inv = Invocation(
                    flags={n: kwargs.pop(n) for n in flags},
                    **{n: kwargs.pop(n) for n in ("config", *shared)},
                )
                fn(inv, **kwargs)

        params = own + extra
        run.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        run.__annotations__ = {p.name: p.annotation for p in params}
        run.__name__, run.__doc__ = fn.__name__, fn.__doc__
        epilog = view.epilog() if view is not None else None
        group.command(name, epilog=epilog, cls=Command)(run)
        return fn

    return register


class Command(TyperCommand):
    """A command whose usage line names each argument as operators type it: ``EVENT``
    for a required one (typer writes ``{EVENT}``), ``[SID|-]...`` for an optional list."""

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if isinstance(param, TyperArgument):
                name = param.metavar or (param.name or "").upper()
                piece = name if param.required else f"[{name}]"
                pieces.append(piece + ("..." if param.nargs != 1 and "…" not in name else ""))
        return pieces


def _param(name: str, annotation: Any, default: Any) -> inspect.Parameter:
    return inspect.Parameter(
        name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation, default=default
    )


def group(name: str, help: str) -> typer.Typer:
    """A command group (``rtctl sessions …``): its help, and help on ``-h`` too."""
    return typer.Typer(
        name=name,
        help=help,
        no_args_is_help=True,
        rich_markup_mode=None,
        pretty_exceptions_enable=False,
        add_completion=False,
        context_settings=CONTEXT,
    )


CONTEXT: dict[str, Any] = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
