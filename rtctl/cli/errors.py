"""How the CLI reports failure: one table from error class to exit code, one line on stderr.

Exit codes (fixed by the SPEC)::

    0   success
    1   the operation failed: the daemon refused it (wrong admin token, a call that timed
        out), a token did not verify, `config check` found problems, an unexpected error
    2   usage error: bad flags or arguments, invalid configuration, a destructive
        command run without a terminal and without --yes
    3   not found: the named session, room or user is absent
    69  the backend (Redis or the daemon) is unreachable (EX_UNAVAILABLE of sysexits.h)

The admin API answers errors as ``{"error": {"code", "message"}}`` with an HTTP status;
``rtctl.errors.from_http`` turns them back into the same exception classes, so a
refusal reads the same whether the CLI found it itself or the daemon did.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager

from rtctl import errors

OK, FAILED, USAGE, NOT_FOUND, UNAVAILABLE = 0, 1, 2, 3, 69

# The one table: error class -> exit code (most specific first).
EXIT_CODES: list[tuple[type[errors.RtctlError], int]] = [
    (errors.BackendUnavailable, UNAVAILABLE),
    (errors.NotFound, NOT_FOUND),
    (errors.UsageError, USAGE),  # includes PayloadTooLarge and RateLimited
    (errors.ConfigError, USAGE),
    (errors.AuthError, FAILED),  # a refused admin token or an invalid JWT: the request failed
    (errors.OperationFailed, FAILED),
    (errors.RtctlError, FAILED),
]


def exit_code(exc: errors.RtctlError) -> int:
    return next(code for cls, code in EXIT_CODES if isinstance(exc, cls))


def debug() -> bool:
    return os.environ.get("RTCTL_DEBUG", "") not in ("", "0")


def report(message: str) -> None:
    """One line on stderr, whatever the message holds."""
    line = " ".join(message.split())  # newlines in a message would break the one-line rule
    print(f"rtctl: {line}", file=sys.stderr)


@contextmanager
def reported() -> Iterator[None]:
    """Run a command: an error becomes one line on stderr and its exit code."""
    import typer  # already imported by the CLI; kept local so this module stays import-light

    try:
        yield
    except errors.RtctlError as exc:
        if debug():  # the traceback, and the same exit code as without it
            traceback.print_exc()
        report(exc.message)
        raise typer.Exit(exit_code(exc)) from None
    except (typer.Exit, typer.Abort, BrokenPipeError):
        raise  # click ends these quietly with their own code
    except KeyboardInterrupt:
        print(file=sys.stderr)
        raise typer.Exit(130) from None  # 128 + SIGINT, as shells report it
    except Exception as exc:
        if debug():
            traceback.print_exc()
        report(f"internal error: {type(exc).__name__}: {exc} (RTCTL_DEBUG=1 shows the traceback)")
        raise typer.Exit(FAILED) from None
