"""Settings: one table of fields, loaded with the precedence
command-line flag > environment variable > config file (TOML) > default.

Every field ``name`` has the environment variable ``RTCTL_<NAME>``, the flag
``--<name-with-dashes>`` and the TOML key ``name``. ``load_settings`` records where
each effective value came from, so ``rtctl config show`` can say it.
"""

from __future__ import annotations

import dataclasses
import math
import os
import socket
import tomllib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rtctl.errors import ConfigError

DEFAULT_PORT = 7480
HMAC_ALGORITHMS = ("HS256", "HS384", "HS512")
PUBLIC_KEY_ALGORITHMS = (
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA",
)  # fmt: skip


def _default_data_dir() -> str:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return str(Path(base) / "rtctl")


def _opt(default: Any, help: str, *, secret: bool = False, kind: str = "") -> Any:
    return field(default=default, metadata={"help": help, "secret": secret, "kind": kind})


@dataclass(frozen=True)
class Settings:
    host: str = _opt("127.0.0.1", "listen address")
    port: int = _opt(DEFAULT_PORT, "listen port")
    path: str = _opt("/socket.io", "Socket.IO path")
    redis_url: str = _opt("", "Redis URL; empty means embedded mode", secret=True)
    redis_cluster: bool = _opt(False, "treat the Redis URL as a Cluster seed")
    prefix: str = _opt("rtctl", "namespace of every Redis key and channel")
    data_dir: str = _opt("", "directory for embedded state and generated secrets", kind="path")
    node_id: str = _opt("", "this daemon's id; empty means unique per process")
    jwt_secret: str = _opt("", "HS256/384/512 shared secret", secret=True)
    jwt_public_key: str = _opt("", "path to a PEM public key (RS*, PS*, ES*, EdDSA)", kind="path")
    jwt_algorithms: tuple[str, ...] = _opt((), "allowed JWT algorithms (comma-separated)")
    admin_token: str = _opt("", "bearer token of the admin HTTP API", secret=True)
    url: str = _opt(f"http://127.0.0.1:{DEFAULT_PORT}", "where the CLI finds an embedded daemon")
    request_timeout: float = _opt(10.0, "seconds the CLI waits for the daemon or Redis to answer")
    cors_origins: tuple[str, ...] = _opt((), "allowed browser origins; empty means same origin")
    max_payload: int = _opt(1_000_000, "largest Socket.IO message or HTTP body, in bytes")
    rate_limit: float = _opt(100.0, "events per second per session; 0 disables")
    rate_burst: int = _opt(200, "events a session may send at once before the rate applies")
    max_sessions_per_user: int = _opt(64, "concurrent sessions per user; 0 disables")
    connect_rate: float = _opt(20.0, "new connections per second per client address; 0 disables")
    max_tasks_per_user: int = _opt(8, "running tasks per user, deployment-wide; 0 disables")
    task_timeout: float = _opt(1800.0, "seconds a task may run before it is ended; 0 disables")
    max_unsent_bytes: int = _opt(
        4 * 1024 * 1024, "output a client may leave unread before it is disconnected, in bytes"
    )
    call_timeout: float = _opt(10.0, "default timeout of a server-to-client call, in seconds")
    connect_timeout: float = _opt(45.0, "seconds a new connection has to authenticate")
    header_timeout: float = _opt(10.0, "seconds a client has to send an HTTP request's headers")
    write_timeout: float = _opt(
        30.0, "seconds an HTTP response may wait on a client that reads nothing"
    )
    usage_ttl: float = _opt(30.0, "seconds a model usage mark lives unless renewed")
    node_ttl: float = _opt(15.0, "Redis mode: seconds without a heartbeat before a node is dead")
    doc_max_update: int = _opt(512 * 1024, "largest Yjs update a client may send, in bytes")
    doc_max_bytes: int = _opt(32 * 1024 * 1024, "largest document (snapshot plus log), in bytes")
    doc_compact_updates: int = _opt(500, "log length past which a document is compacted")
    doc_rate: float = _opt(100.0, "document writes per second per session (paced, never refused)")
    doc_burst: int = _opt(200, "document writes a session may send at once before the pace")
    doc_backlog_bytes: int = _opt(
        16 * 1024 * 1024, "document traffic a session may have waiting before it is reconnected"
    )
    doc_backlog_seconds: float = _opt(
        30.0, "seconds a session's document request may wait before it is reconnected"
    )
    doc_max_items: int = _opt(12_000, "Yjs structs and deleted ranges one update may hold")
    doc_max_clients: int = _opt(8_000, "Yjs client ids one document may hold")
    doc_max_array_state: int = _opt(
        128 * 1024, "largest document state answered as a JSON array of byte values"
    )
    upstream_url: str = _opt("", "OpenAI-compatible API base URL, e.g. https://api.openai.com/v1")
    upstream_api_key: str = _opt("", "bearer key sent to the upstream", secret=True)
    echo_delay: float = _opt(0.05, "seconds between the words the echo model streams")
    app: str = _opt("", "module:attr of an app to load (registers task kinds and events)")
    auth_hook_url: str = _opt("", "the app's endpoint that says who a token is (SPEC §9)")
    auth_hook_timeout: float = _opt(3.0, "seconds the auth hook has to answer")
    auth_hook_cache: float = _opt(30.0, "seconds an auth hook answer is reused for its token")
    webhook_url: str = _opt("", "where the hub tells the app what it must record")
    webhook_secret: str = _opt("", "HMAC-SHA256 key that signs each webhook body", secret=True)
    webhook_debounce: float = _opt(
        2.0, "seconds an edited document waits for quiet before document.updated is sent"
    )
    drain_grace: float = _opt(10.0, "seconds SIGTERM waits for clients and tasks to finish")
    log_level: str = _opt("info", "debug, info, warning or error")
    log_format: str = _opt("text", "text, or json: one JSON object per line")

    # Filled by load_settings: where each value came from.
    sources: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    @property
    def embedded(self) -> bool:
        return not self.redis_url

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir or _default_data_dir()).expanduser()

    @property
    def effective_node_id(self) -> str:
        return self.node_id or _PROCESS_NODE_ID

    def problems(self) -> list[str]:
        """Every reason this configuration cannot run, one message each."""
        out: list[str] = []
        if not 0 < self.port < 65536:
            out.append(f"port: {self.port} is not a TCP port (1-65535)")
        if not self.path.startswith("/"):
            out.append(f"path: {self.path!r} must start with '/'")
        if self.redis_url and not self.redis_url.startswith(_REDIS_SCHEMES):
            out.append("redis_url: scheme must be one of " + ", ".join(_REDIS_SCHEMES))
        if not self.prefix or any(c in self.prefix for c in " {}:*?[]"):
            out.append(
                f"prefix: {self.prefix!r} must be non-empty, without spaces, braces, ':' or globs"
            )
        for name in ("max_payload", "rate_burst", "doc_max_update", "doc_max_bytes",
                     "doc_compact_updates", "doc_burst", "doc_backlog_bytes",
                     "doc_backlog_seconds", "doc_max_items", "doc_max_clients",
                     "doc_max_array_state", "max_unsent_bytes"):  # fmt: skip
            if getattr(self, name) <= 0:
                out.append(f"{name}: must be positive")
        if self.doc_max_update > self.doc_max_bytes:
            out.append("doc_max_update: cannot exceed doc_max_bytes")
        for name in ("rate_limit", "max_sessions_per_user", "connect_rate", "doc_rate",
                     "max_tasks_per_user", "task_timeout"):  # fmt: skip
            if getattr(self, name) < 0:
                out.append(f"{name}: must be 0 (off) or positive")
        for name in ("request_timeout", "call_timeout", "connect_timeout", "usage_ttl", "node_ttl",
                     "drain_grace", "header_timeout", "write_timeout",
                     "auth_hook_timeout", "auth_hook_cache", "webhook_debounce"):  # fmt: skip
            if getattr(self, name) <= 0:
                out.append(f"{name}: must be a positive number of seconds")
        known = set(HMAC_ALGORITHMS) | set(PUBLIC_KEY_ALGORITHMS)
        for alg in self.jwt_algorithms:
            if alg not in known:
                out.append(
                    f"jwt_algorithms: {alg!r} is not supported (one of {', '.join(sorted(known))})"
                )
        if self.jwt_public_key:
            key = Path(self.jwt_public_key).expanduser()
            if not key.is_file():
                out.append(f"jwt_public_key: {key} is not a readable file")
            elif any(a in HMAC_ALGORITHMS for a in self.jwt_algorithms):
                out.append("jwt_algorithms: HMAC algorithms cannot be used with a public key")
        elif self.jwt_secret and any(a not in HMAC_ALGORITHMS for a in self.jwt_algorithms):
            out.append("jwt_algorithms: a shared secret only allows HS256, HS384, HS512")
        if self.jwt_secret and len(self.jwt_secret.encode()) < 32:
            # RFC 7518 §3.2: an HMAC key must be at least as long as the hash output
            out.append("jwt_secret: must be at least 32 bytes")
        if self.jwt_secret and self.jwt_public_key:
            out.append("jwt_secret and jwt_public_key are both set: choose one key")
        if self.log_level.lower() not in ("debug", "info", "warning", "error"):
            out.append(f"log_level: {self.log_level!r} is not debug, info, warning or error")
        if self.log_format not in ("text", "json"):
            out.append(f"log_format: {self.log_format!r} is not text or json")
        if self.echo_delay < 0:
            out.append("echo_delay: must be 0 or a positive number of seconds")
        out += self._url_problems()
        if self.app and (self.app.count(":") != 1 or not all(self.app.split(":"))):
            out.append(f"app: {self.app!r} must be module:attr")
        return out

    def _url_problems(self) -> list[str]:
        out = []
        for name in ("url", "upstream_url", "auth_hook_url", "webhook_url"):
            value = getattr(self, name)
            if value and not value.startswith(("http://", "https://")):
                out.append(f"{name}: {value!r} must start with http:// or https://")
        return out

    def check(self) -> Settings:
        problems = self.problems()
        if problems:
            raise ConfigError("; ".join(problems))
        return self


_REDIS_SCHEMES = ("redis://", "rediss://", "unix://", "redis+sentinel://", "rediss+sentinel://")
_PROCESS_NODE_ID = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
FIELDS: dict[str, dataclasses.Field[Any]] = {
    f.name: f for f in dataclasses.fields(Settings) if f.name != "sources"
}


def env_name(name: str) -> str:
    return "RTCTL_" + name.upper()


def flag_name(name: str) -> str:
    return "--" + name.replace("_", "-")


def _coerce(name: str, value: Any, origin: str) -> Any:
    """Turn a raw value (a string from the environment, any TOML value) into the field's type."""
    f = FIELDS[name]
    default = f.default
    try:
        if isinstance(default, bool):
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off", ""):
                return False
            raise ValueError(f"{value!r} is not a boolean")
        if isinstance(default, int | float) and isinstance(value, bool):
            raise ValueError(f"{value!r} is not a number")  # int(True) would quietly be 1
        if isinstance(default, int):
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(f"{value!r} is not a whole number")
            return int(value)
        if isinstance(default, float):
            number = float(value)
            if not math.isfinite(number):  # nan passes every bound check, inf never ends a wait
                raise ValueError(f"{value!r} is not a finite number")
            return number
        if isinstance(default, tuple):
            items = value if isinstance(value, list | tuple) else str(value).split(",")
            return tuple(str(i).strip() for i in items if str(i).strip())
        if not isinstance(value, str):
            raise ValueError(f"{value!r} is not a string")
        return value
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{name} (from {origin}): {exc}") from None


def read_config_file(path: Path, problems: list[str] | None = None) -> dict[str, Any]:
    """The file's settings. Unknown keys raise ``ConfigError``, or with ``problems`` are
    listed there (every one) and left out."""
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"config file {path}: {exc}") from None
    unknown = sorted(set(data) - set(FIELDS))
    if unknown and problems is None:
        raise ConfigError(f"config file {path}: unknown setting(s) {', '.join(unknown)}")
    for key in unknown:
        assert problems is not None
        problems.append(f"config file {path}: unknown setting {key!r}")
        del data[key]
    return data


def load_settings(
    flags: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    config_path: str | os.PathLike[str] | None = None,
    problems: list[str] | None = None,
) -> Settings:
    """Merge defaults, the config file, the environment and flags (``None`` means unset).

    A value that cannot be read raises ``ConfigError``; with ``problems``, every such
    value is listed there instead (its setting keeps the value of lower precedence)."""
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    sources: dict[str, str] = {name: "default" for name in FIELDS}

    def take(name: str, raw: Any, origin: str, source: str) -> None:
        try:
            values[name] = _coerce(name, raw, origin)
        except ConfigError as exc:
            if problems is None:
                raise
            problems.append(exc.message)
            return
        sources[name] = source

    path = config_path or env.get("RTCTL_CONFIG")
    if path:
        origin = f"file {path}"
        for name, raw in read_config_file(Path(path).expanduser(), problems).items():
            take(name, raw, origin, origin)
    for name in FIELDS:
        var = env_name(name)
        if var in env:
            take(name, env[var], f"env {var}", f"env {var}")
    for name, raw in (flags or {}).items():
        if raw is not None and name in FIELDS:
            take(name, raw, flag_name(name), f"flag {flag_name(name)}")
    return Settings(**values, sources=sources)


def describe(settings: Settings) -> list[dict[str, str]]:
    """Rows for ``rtctl config show``: name, effective value (secrets masked), source."""
    rows = []
    for name, f in FIELDS.items():
        value = getattr(settings, name)
        if isinstance(value, tuple):
            shown = ",".join(value)
        elif f.metadata.get("secret") and value:
            shown = "********"
        else:
            shown = str(value)
        if name == "data_dir" and not value:
            shown = str(settings.data_path)
        if name == "node_id" and not value:
            shown = f"(per process, e.g. {settings.effective_node_id})"
        rows.append(
            {
                "name": name,
                "value": shown,
                "source": settings.sources.get(name, "default"),
                "env": env_name(name),
                "help": f.metadata.get("help", ""),
            }
        )
    return rows
