"""rtctl: a real-time hub for web apps, and the operator's toolkit around it.

What an application embedding the hub may import is listed in ``__all__``; a test
pins it. Everything else (``rtctl.server``, ``rtctl.hub``, ``rtctl.state``, …) is
internal and may change between releases.
"""

from typing import TYPE_CHECKING, Any

from rtctl._version import __version__
from rtctl.errors import (
    AuthError,
    BackendUnavailable,
    ConfigError,
    Forbidden,
    NotFound,
    OperationFailed,
    PayloadTooLarge,
    RateLimited,
    RtctlError,
    UsageError,
)

if TYPE_CHECKING:
    from rtctl.auth import Identity
    from rtctl.client import AsyncClient, Client
    from rtctl.state.base import TaskRecord
    from rtctl.tasks.app import App
    from rtctl.tasks.runner import TaskContext

_LAZY = {
    "AsyncClient": "rtctl.client",
    "Client": "rtctl.client",
    "Identity": "rtctl.auth",
    "App": "rtctl.tasks.app",
    "TaskContext": "rtctl.tasks.runner",
    "TaskRecord": "rtctl.state.base",
}


def __getattr__(name: str) -> Any:
    # Heavier names load on first use, so `import rtctl` (and the CLI) starts fast.
    module = _LAZY.get(name)
    if module is not None:
        import importlib

        return getattr(importlib.import_module(module), name)
    raise AttributeError(f"module 'rtctl' has no attribute {name!r}")


__all__ = [
    "App",
    "AsyncClient",
    "AuthError",
    "BackendUnavailable",
    "Client",
    "ConfigError",
    "Forbidden",
    "Identity",
    "NotFound",
    "OperationFailed",
    "PayloadTooLarge",
    "RateLimited",
    "RtctlError",
    "TaskContext",
    "TaskRecord",
    "UsageError",
    "__version__",
]
