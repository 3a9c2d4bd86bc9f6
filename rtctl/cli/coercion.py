"""Option and argument values without pydantic, when they are plainly valid.

typer 0.29 converts every value given on the command line with a pydantic
``TypeAdapter`` it builds on first use: importing pydantic and building the adapters
costs ~50 ms per run, a sixth of a whole ``rtctl sessions list``. The CLI's parameters
are all ``str``, ``int``, ``float``, ``bool``, an enum or ``list[str]``; a value that
is plainly one of those (a string for ``str``, ASCII digits for ``int``, an enum's
exact value) is converted here as typer would convert it. Anything else (an invalid
value, a case-insensitive choice, a bound) goes to typer's own adapter, so its error
messages stay exactly typer's.

``install()`` swaps ``get_runtime_param`` of typer's parameter class; with a typer
that lacks it, nothing changes (typer's conversion, just slower).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from typing import Any, get_args, get_origin

_NUMBER = re.compile(r"-?[0-9]{1,15}(\.[0-9]{1,15})?")
_MISS = object()


def plain_value(annotation: Any, info: Any, value: Any, ctx: Any) -> Any:
    """``value`` converted to ``annotation`` as typer would, or ``_MISS`` to ask typer."""
    if annotation is str:
        return value if type(value) is str else _MISS
    if type(value) is not str or info.parser is not None:
        return _MISS
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        if not info.case_sensitive or (ctx is not None and ctx.token_normalize_func is not None):
            return _MISS
        for member in annotation:
            if str(member.value) == value:
                return member
        return _MISS
    if annotation is int or annotation is float:
        if info.min is not None or info.max is not None or not _NUMBER.fullmatch(value):
            return _MISS
        if annotation is int:
            return int(value) if "." not in value else _MISS
        return float(value)
    return _MISS


def install() -> None:
    """Make typer's parameters convert plain values without building pydantic adapters."""
    try:
        from typer import core
        from typer._coercion import RuntimeParam, build_runtime_param
    except ImportError:  # another typer: its own conversion, unchanged
        return
    base = getattr(core, "_TyperParameter", None)
    if base is None or not hasattr(base, "get_runtime_param") or hasattr(base, "_rtctl_plain"):
        return

    @dataclass(frozen=True)
    class PlainRuntimeParam(RuntimeParam):
        descriptor: Any

        def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
            annotation = self.annotation
            if get_origin(annotation) is list and isinstance(value, list | tuple):
                (item,) = get_args(annotation)
                items = [plain_value(item, self.parameter_info, v, ctx) for v in value]
                if all(i is not _MISS for i in items):
                    return items
            else:
                result = plain_value(annotation, self.parameter_info, value, ctx)
                if result is not _MISS:
                    return result
            typer_own = build_runtime_param(self.descriptor)
            return typer_own._coerce_value(value, param=param, ctx=ctx)

    def get_runtime_param(self: Any) -> Any:
        if self._runtime_param is None:
            desc = self.type_descriptor
            if desc.file_annotation is None:
                self._runtime_param = PlainRuntimeParam(
                    parameter_info=desc.parameter_info, annotation=desc.annotation, descriptor=desc
                )
            else:
                self._runtime_param = build_runtime_param(desc)
        return self._runtime_param

    base.get_runtime_param = get_runtime_param
    base._rtctl_plain = True
