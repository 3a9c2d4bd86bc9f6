"""One HTTP/1.1 exchange over a plain socket, for the CLI's requests to a daemon.

``http.client`` brings its ``email`` header parser and ``ssl`` with it (~20 ms of a
command whose whole budget is ~100); a request to a daemon on ``http://`` is one
write and one read to the end of the answer (``Connection: close``). ``https://``
URLs keep ``http.client``.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping

MAX_ANSWER = 256 << 20  # bytes: a listing of every session of a large node fits


class BadAnswer(OSError):
    """What came back is not an HTTP/1.1 answer."""


def exchange(
    host: str, port: int, method: str, target: str, headers: Mapping[str, str],
    body: bytes | None, timeout: float,
) -> tuple[int, bytes]:  # fmt: skip
    """``(status, body)``; ``timeout`` bounds the connect and each wait for bytes."""
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}:{port}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")
    chunks, size = [], 0
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(request)
        while data := sock.recv(65536):
            chunks.append(data)
            size += len(data)
            if size > MAX_ANSWER:
                raise BadAnswer(f"the answer is larger than {MAX_ANSWER} bytes")
    return _parse(b"".join(chunks))


def _parse(raw: bytes) -> tuple[int, bytes]:
    try:
        return _parsed(raw)
    except ValueError as exc:  # a length or chunk size that is no number
        raise BadAnswer(f"the answer is not HTTP/1.1: {exc}") from None


def _parsed(raw: bytes) -> tuple[int, bytes]:
    head, sep, body = raw.partition(b"\r\n\r\n")
    status_line, *fields = head.split(b"\r\n")
    parts = status_line.split(b" ", 2)
    if not sep or len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
        raise BadAnswer("the answer is not HTTP/1.1")
    names = {f.partition(b":")[0].strip().lower(): f.partition(b":")[2].strip() for f in fields}
    if names.get(b"transfer-encoding", b"").lower() == b"chunked":
        body = _dechunk(body)
    elif b"content-length" in names:
        length = int(names[b"content-length"])
        if len(body) < length:
            raise BadAnswer("the answer ended early")
        body = body[:length]
    return int(parts[1]), body


def _dechunk(data: bytes) -> bytes:
    out: list[bytes] = []
    at = 0
    while True:
        line_end = data.find(b"\r\n", at)
        if line_end < 0:
            raise BadAnswer("a chunked answer ended early")
        size = int(data[at:line_end].split(b";")[0], 16)
        if size == 0:
            return b"".join(out)
        start = line_end + 2
        if len(data) < start + size:
            raise BadAnswer("a chunked answer ended early")
        out.append(data[start : start + size])
        at = start + size + 2
