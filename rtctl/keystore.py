"""Secrets kept in the data dir when the operator configured none.

``rtctl serve`` generates a JWT secret and an admin token on first run (files of
mode 0600 in a 0700 directory); the CLI on the same machine reads them back.
"""

from __future__ import annotations

import os
import secrets
import time
from pathlib import Path

from rtctl.config import Settings
from rtctl.errors import ConfigError

JWT_SECRET_FILE = "jwt_secret"
ADMIN_TOKEN_FILE = "admin_token"
WINNER_WRITE_WAIT = 1.0  # seconds to wait for a concurrent first run to finish writing


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip() or None
    except (FileNotFoundError, PermissionError, NotADirectoryError):
        return None


def _create(path: Path) -> str:
    """Write a fresh secret; if another process created the file first, keep theirs."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    value = secrets.token_urlsafe(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read_winner(path)
    with os.fdopen(fd, "w") as fh:
        fh.write(value + "\n")
    return value


def _read_winner(path: Path) -> str:
    """The secret another process is writing: it may still be empty for a moment.

    Falling back to a value of our own would leave this process with a secret no
    other process knows, so an empty file that stays empty is an error.
    """
    deadline = time.monotonic() + WINNER_WRITE_WAIT
    while (stored := _read(path)) is None and time.monotonic() < deadline:
        time.sleep(0.01)
    if stored is None:
        raise ConfigError(
            f"{path} exists but is empty or unreadable; remove it to generate a new one"
        )
    return stored


def jwt_secret(settings: Settings) -> str | None:
    """The configured secret, else the generated one (if any)."""
    if settings.jwt_secret or settings.jwt_public_key:
        return settings.jwt_secret or None
    return _read(settings.data_path / JWT_SECRET_FILE)


def admin_token(settings: Settings) -> str | None:
    return settings.admin_token or _read(settings.data_path / ADMIN_TOKEN_FILE)


def ensure_generated(settings: Settings) -> tuple[str | None, str, list[Path]]:
    """For ``rtctl serve``: (jwt secret, or None with a public key; admin token; files created)."""
    created: list[Path] = []
    secret = settings.jwt_secret or None
    if not secret and not settings.jwt_public_key:
        path = settings.data_path / JWT_SECRET_FILE
        secret = _read(path)
        if secret is None:
            secret = _create(path)
            created.append(path)
    token = settings.admin_token
    if not token:
        path = settings.data_path / ADMIN_TOKEN_FILE
        token = _read(path) or ""
        if not token:
            token = _create(path)
            created.append(path)
    return secret, token, created
