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
``from_http`` turns them back into the same exception classes, so a refusal reads the
same whether the CLI found it itself or the daemon did.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

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

# What the admin API's HTTP statuses mean (the inverse of rtctl.server.admin.HTTP_STATUS,
# which the CLI may not import; a test keeps the two in step).
HTTP_ERRORS: dict[int, type[errors.RtctlError]] = {
    400: errors.UsageError,
    401: errors.AuthError,
    403: errors.Forbidden,
    404: errors.NotFound,
    409: errors.OperationFailed,
    413: errors.PayloadTooLarge,
    429: errors.RateLimited,
    503: errors.BackendUnavailable,
}


def exit_code(exc: errors.RtctlError) -> int:
    return next(code for cls, code in EXIT_CODES if isinstance(exc, cls))


def from_http(status: int, body: Any, url: str) -> errors.RtctlError:
    """The exception an admin API error response stands for."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return errors.OperationFailed(
            f"unexpected answer from {url} (HTTP {status}); is it an rtctl daemon?"
        )
    code, message = str(error.get("code", "error")), str(error.get("message", ""))
    if code in ("no_route", "method_not_allowed"):
        # The daemon exists but lacks the route: a version mismatch, not a missing record.
        return errors.OperationFailed(
            f"the daemon at {url} does not support this request ({message}); is it older?",
            code=code,
        )
    cls = HTTP_ERRORS.get(status, errors.OperationFailed)
    return cls(message or f"HTTP {status}", code=code)


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
        if debug():
            raise
        report(exc.message)
        raise typer.Exit(exit_code(exc)) from None
    except (typer.Exit, typer.Abort, BrokenPipeError):
        raise  # click ends these quietly with their own code
    except KeyboardInterrupt:
        print(file=sys.stderr)
        raise typer.Exit(130) from None  # 128 + SIGINT, as shells report it
    except Exception as exc:
        if debug():
            raise
        report(f"internal error: {type(exc).__name__}: {exc} (RTCTL_DEBUG=1 shows the traceback)")
        raise typer.Exit(FAILED) from None
