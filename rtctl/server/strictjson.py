"""The JSON codec of the Socket.IO endpoint: standard JSON only.

Python's parser accepts ``NaN`` and ``Infinity``, which browsers cannot parse: a
client could relay them to every member of a channel. Here they make the packet
malformed (the connection is closed, as for any undecodable packet). Integers are
bounded in length, as Engine.IO's own codec does, since parsing a huge one is
quadratic.
"""

from __future__ import annotations

import json
from typing import Any

MAX_INT_DIGITS = 100


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _bounded_int(text: str) -> int:
    if len(text) > MAX_INT_DIGITS:
        raise ValueError("integer is too large")
    return int(text)


def loads(s: str | bytes, **kwargs: Any) -> Any:
    kwargs.setdefault("parse_constant", _reject_constant)
    kwargs.setdefault("parse_int", _bounded_int)
    return json.loads(s, **kwargs)


def dumps(obj: Any, **kwargs: Any) -> str:
    kwargs.setdefault("allow_nan", False)
    return json.dumps(obj, **kwargs)
