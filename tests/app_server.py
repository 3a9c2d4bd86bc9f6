"""A real HTTP server standing in for the app: its auth hook and webhook receiver.

``AppServer`` runs ``ThreadingHTTPServer`` on a free port in a thread. ``POST /hook``
answers per token from ``answers`` (401 for a token it does not know), after
``delay`` seconds; ``POST /webhook`` records each webhook and answers with the
next status of ``webhook_statuses`` (200 once they are used up).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt

OWUI_SECRET = "an Open WebUI deployment's own WEBUI_SECRET_KEY"


def owui_token(user_id: str, ttl: float = 3600.0) -> str:
    """A token exactly as Open WebUI mints it: ``{id, exp, jti}``, HS256 with its secret."""
    claims = {"id": user_id, "exp": int(time.time() + ttl), "jti": f"jti-{user_id}"}
    return jwt.encode(claims, OWUI_SECRET, algorithm="HS256")


@dataclass
class Webhook:
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    def signed_with(self, secret: str) -> bool:
        expected = "sha256=" + hmac.new(secret.encode(), self.body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(self.headers.get("x-rtctl-signature", ""), expected)


@dataclass
class AppServer:
    answers: dict[str, tuple[int, Any]] = field(default_factory=dict)
    delay: float = 0.0
    hook_calls: list[dict[str, Any]] = field(default_factory=list)
    webhooks: list[Webhook] = field(default_factory=list)
    webhook_tries: int = 0
    webhook_statuses: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def grant(self, token: str, user_id: str, name: str = "", **grants: Any) -> None:
        user = {"id": user_id, "name": name or user_id.title(), "role": "user"}
        self.answers[token] = (200, {"user": user, **grants})

    def received(self, kind: str) -> list[Any]:
        with self.lock:
            return [w.json["data"] for w in self.webhooks if w.json["type"] == kind]

    def start(self) -> AppServer:
        app = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the hub's client expects

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                if self.path == "/hook":
                    status, answer = app._hook(json.loads(body))
                else:
                    status, answer = app._webhook(dict(self.headers.items()), body)
                payload = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _hook(self, request: dict[str, Any]) -> tuple[int, Any]:
        with self.lock:
            self.hook_calls.append(request)
            delay = self.delay
        if delay:
            time.sleep(delay)
        return self.answers.get(request.get("token", ""), (401, {"detail": "not signed in"}))

    def _webhook(self, headers: dict[str, str], body: bytes) -> tuple[int, Any]:
        with self.lock:
            self.webhook_tries += 1
            status = self.webhook_statuses.pop(0) if self.webhook_statuses else 200
            if status == 200:
                self.webhooks.append(Webhook({k.lower(): v for k, v in headers.items()}, body))
        return status, {}
