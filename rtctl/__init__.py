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


def __getattr__(name: str) -> Any:
    # Heavier names load on first use, so `import rtctl` (and the CLI) starts fast.
    if name == "Identity":
        from rtctl.auth import Identity

        return Identity
    raise AttributeError(f"module 'rtctl' has no attribute {name!r}")


__all__ = [
    "AuthError",
    "BackendUnavailable",
    "ConfigError",
    "Forbidden",
    "Identity",
    "NotFound",
    "OperationFailed",
    "PayloadTooLarge",
    "RateLimited",
    "RtctlError",
    "UsageError",
    "__version__",
]
