"""What ``rtctl serve`` checks before it starts, as a list of problems: ``rtctl config
check`` runs the very same checks, so "valid" means the daemon will start.

Nothing here connects to anything or writes a file: a key is loaded, a URL parsed, a
directory's permissions read, an app module found (not imported).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from rtctl.config import Settings
from rtctl.errors import ConfigError, RtctlError


def serve_problems(settings: Settings) -> list[str]:
    """Every reason ``serve`` would refuse to start with ``settings``, one message each."""
    out = settings.problems()
    if not settings.embedded and not (settings.jwt_secret or settings.jwt_public_key):
        # a generated secret is per data dir: each daemon would refuse the others' tokens
        out.append("Redis mode needs one JWT key shared by every daemon: "
                   "set RTCTL_JWT_SECRET (or RTCTL_JWT_PUBLIC_KEY)")  # fmt: skip
    if settings.jwt_public_key and not out:
        out += _key_problems(settings)
    if settings.redis_url.startswith(("redis+sentinel://", "rediss+sentinel://")):
        out += _sentinel_problems(settings.redis_url)
    if (settings.embedded and not settings.jwt_secret) or not settings.admin_token:
        out += _data_dir_problems(settings.data_path)
    if settings.app and settings.app.count(":") == 1:
        out += _app_problems(settings.app)
    return out


def _key_problems(settings: Settings) -> list[str]:
    from rtctl.auth import TokenVerifier

    try:
        TokenVerifier.from_settings(settings)
    except ConfigError as exc:
        return [exc.message]
    return []


def _sentinel_problems(url: str) -> list[str]:
    from rtctl.state.redis_url import parse_sentinel

    try:
        parse_sentinel(url)
    except RtctlError as exc:
        return [exc.message]
    return []


def _data_dir_problems(path: Path) -> list[str]:
    """Generated secrets are kept in the data dir: it must exist, or be creatable."""
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return [f"data_dir: {existing} is not a directory"]
    if not os.access(existing, os.W_OK | os.X_OK):
        return [f"data_dir: {path} cannot be written (generated secrets are kept there)"]
    return []


def _app_problems(spec: str) -> list[str]:
    module = spec.partition(":")[0]
    try:
        found = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        found = None
    return [] if found is not None else [f"app: cannot load {spec!r}: no module named {module!r}"]
