"""The one exception hierarchy of rtctl.

::

    RtctlError                      every error rtctl raises on purpose
    ├── ConfigError                 invalid configuration (flag, env, file)
    ├── UsageError                  a request that is malformed or out of bounds
    │   ├── PayloadTooLarge         a payload over its size bound
    │   └── RateLimited             too many events, connections or sessions
    ├── AuthError                   a token that is missing, malformed or invalid
    │   └── Forbidden               a valid identity asking for what it may not have
    ├── NotFound                    the named session, room, task or document is absent
    ├── OperationFailed             the operation ran and did not do what was asked
    └── BackendUnavailable          the state backend (Redis) or the daemon does not answer

Each class carries a stable machine-readable ``code``. The Socket.IO ``error``
event, the admin API's error body and the CLI all speak these codes; the CLI maps
each class to an exit code in one table (``rtctl.cli.errors``) and the admin API
maps each to an HTTP status (``rtctl.server.admin``).
"""

from __future__ import annotations

from typing import Any


class RtctlError(Exception):
    code = "error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


class ConfigError(RtctlError):
    code = "invalid_config"


class UsageError(RtctlError):
    code = "invalid_request"


class PayloadTooLarge(UsageError):
    code = "too_large"


class RateLimited(UsageError):
    code = "rate_limited"


class AuthError(RtctlError):
    code = "unauthorized"


class Forbidden(AuthError):
    code = "forbidden"


class NotFound(RtctlError):
    code = "not_found"


class OperationFailed(RtctlError):
    code = "failed"


class BackendUnavailable(RtctlError):
    code = "unavailable"


# What the admin API's HTTP statuses mean: the inverse of rtctl.server.admin.HTTP_STATUS
# (a test keeps the two in step), for the CLI and the Python client.
HTTP_ERRORS: dict[int, type[RtctlError]] = {
    400: UsageError,
    401: AuthError,
    403: Forbidden,
    404: NotFound,
    409: OperationFailed,
    413: PayloadTooLarge,
    429: RateLimited,
    503: BackendUnavailable,
}


def from_http(status: int, body: Any, url: str) -> RtctlError:
    """The exception an admin API error answer stands for."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return OperationFailed(
            f"unexpected answer from {url} (HTTP {status}); is it an rtctl daemon?"
        )
    code, message = str(error.get("code", "error")), str(error.get("message", ""))
    if code in ("no_route", "method_not_allowed"):
        # The daemon exists but lacks the route: a version mismatch, not a missing record.
        return OperationFailed(
            f"the daemon at {url} does not support this request ({message}); is it older?",
            code=code,
        )
    cls = HTTP_ERRORS.get(status, OperationFailed)
    return cls(message or f"HTTP {status}", code=code)
