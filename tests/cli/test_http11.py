"""The CLI's plain-socket HTTP/1.1 exchange: against a real HTTP server answering with
a length and in chunks, and any bytes a server could send back."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rtctl.cli.http11 import BadAnswer, _parse, exchange


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = f"{self.path} {self.headers['Authorization']}".encode()
        self.send_response(200 if self.path != "/missing" else 404)
        if self.path == "/chunked":
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for part in (body[:3], body[3:]):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.write(b"0\r\n\r\n")
        else:
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[int]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield httpd.server_address[1]
    httpd.shutdown()


def test_lengths_and_chunks(server: int) -> None:
    auth = {"Authorization": "Bearer t0k"}
    assert exchange("127.0.0.1", server, "GET", "/x", auth, None, 5) == (200, b"/x Bearer t0k")
    assert exchange("127.0.0.1", server, "GET", "/chunked", auth, None, 5) == (
        200, b"/chunked Bearer t0k")  # fmt: skip
    assert exchange("127.0.0.1", server, "GET", "/missing", auth, None, 5)[0] == 404


@given(st.binary(max_size=300) | st.builds(lambda b: b"HTTP/1.1 200 OK\r\n" + b, st.binary()))
def test_any_answer_parses_or_is_refused(raw: bytes) -> None:
    try:
        status, body = _parse(raw)
    except BadAnswer:
        return
    assert isinstance(status, int) and isinstance(body, bytes)
