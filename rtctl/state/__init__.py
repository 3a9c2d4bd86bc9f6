"""State backends, chosen in one place.

Adding a backend adds a module and one line in ``BACKENDS``.
"""

from __future__ import annotations

import importlib

from rtctl.config import Settings
from rtctl.state.base import StateBackend

BACKENDS = {
    "embedded": "rtctl.state.memory:MemoryState",
    "redis": "rtctl.state.redis:RedisState",
}


def backend_name(settings: Settings) -> str:
    return "embedded" if settings.embedded else "redis"


def open_state(settings: Settings) -> StateBackend:
    """The backend the settings ask for (not yet started)."""
    module_name, _, attr = BACKENDS[backend_name(settings)].partition(":")
    cls = getattr(importlib.import_module(module_name), attr)
    state: StateBackend = cls.from_settings(settings)
    return state
