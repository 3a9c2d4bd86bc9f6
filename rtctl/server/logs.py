"""The daemon's log: text or JSON lines, and the audit trail of what operators did.

Every action that changes the deployment (a kick, a revocation, a stop, an emit, a
membership change, a document deleted or compacted...) leaves one line on the logger
``rtctl.audit``: who (the admin API client's address, or the node or CLI that sent a
command), what, and the result. With ``log_format = "json"`` each line is one JSON
object, the audit fields as keys, for a log pipeline to index.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

audit_log = logging.getLogger("rtctl.audit")
AUDIT_FIELDS = ("who", "action", "target", "result")
# What of a request body the audit keeps: ids and switches, never payloads or tokens
KEPT_KEYS = ("user", "sid", "sids", "room", "jti", "ids", "item", "all", "event", "kind",
             "item_id", "dry_run")  # fmt: skip
MAX_LISTED = 20


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in AUDIT_FIELDS:
            if hasattr(record, key):
                line[key] = getattr(record, key)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def configure(level: str, fmt: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)


def audit(who: str, action: str, target: Any, result: str) -> None:
    """One line of the audit trail."""
    fields = {"who": who, "action": action, "target": target, "result": result}
    audit_log.info("%s by %s: %s -> %s", action, who, _shown(target), result, extra=fields)


def kept(body: Any) -> dict[str, Any]:
    """The ids and switches of a request body (long lists cut), for the audit."""
    if not isinstance(body, dict):
        return {}
    out = {}
    for key in KEPT_KEYS:
        if key in body:
            value = body[key]
            if isinstance(value, list) and len(value) > MAX_LISTED:
                value = [*value[:MAX_LISTED], f"... {len(value) - MAX_LISTED} more"]
            out[key] = value
    return out


def _shown(target: Any) -> str:
    return json.dumps(target, default=str, ensure_ascii=True)
