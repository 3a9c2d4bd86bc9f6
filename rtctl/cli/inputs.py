"""Arguments that may come from stdin (``-``): ids, JSON data, a token.

DATA is always JSON: ``'{"a": 1}'``, ``42``, ``'"text"'``. A bare word is refused rather
than sent as a string, so a typo in an object (``'{"a": 1'``) is an error, not a
string delivered to every client.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from rtctl.errors import UsageError

STDIN = "-"


def read_ids(args: list[str], what: str = "id") -> list[str]:
    """``ID…`` arguments, or whitespace-separated ids on stdin for a lone ``-`` (possibly
    none: the command then has nothing to do, and succeeds)."""
    if STDIN not in args:
        return args
    if args != [STDIN]:
        raise UsageError(f"give {what}s as arguments, or '-' alone to read them from stdin")
    return sys.stdin.read().split()  # none is nothing to do: `… -q | rtctl … - -y` with no match


def parse_data(arg: str | None) -> Any:
    """The DATA argument as JSON (``-`` reads it from stdin); absent means ``null``."""
    if arg is None:
        return None
    text = sys.stdin.read() if arg == STDIN else arg
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise UsageError(
            f"DATA is not valid JSON ({exc}); to send a string, quote it: '\"text\"'"
        ) from None


def read_token(arg: str) -> str:
    token = sys.stdin.read().strip() if arg == STDIN else arg.strip()
    if not token:
        raise UsageError("no token given")
    return token


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # Python's parser would accept NaN and Infinity
