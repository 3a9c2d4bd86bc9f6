"""What a client that stops reading costs each server's memory, side by side in one run.

  python bench/slow_reader.py [--targets node,pysio,rtctl] [--quick] [--seconds S] [--rate N]
                              [--watch S] [--json FILE]

Per target, on a fresh server: a slow reader (a raw socket with a 4 KiB receive buffer) connects,
joins channel "slow" and never reads again; a healthy python-socketio client, the feeder, joins
the same channel and sends `events:channel` with a 16 KiB payload at --rate messages/s for
--seconds, reading its own relays. The server's RSS is sampled every 0.5 s, and the server's end
of the slow reader's TCP connection is watched in /proc/net/tcp. The slow reader answers no
Engine.IO ping either, so any server may drop it at ping interval + ping timeout after it
connected: --watch keeps watching after the feeder stops (default: until then, plus the 30 s
Node's ws gives a close handshake, plus 5 s), unless the server cut the reader 3 s before.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import base64
import json
import os
import signal
import socket
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import socketio
from targets import TARGETS, Server, footer, kill_all, measured_run, rss_kib, running

Result = dict[str, Any]
CHANNEL = "slow"
PAYLOAD = "x" * 16384
RCVBUF = 4096  # the kernel doubles it; set before connect so the window starts small
SAMPLE_S = 0.5
PING_KEYS = ("pingInterval", "pingTimeout")  # ms, in the Engine.IO open packet
TIMEOUT = 10.0  # any one step of a handshake, a join, a read of /metrics
# After a ping timeout Node's ws sends a close frame and destroys the socket if the close
# handshake has not finished within 30 s (its closeTimeout): watch that long, and 5 s more.
WS_CLOSE_WAIT = 35.0


# the slow reader: a Socket.IO client on a raw socket ------------------------------------------
def ws_text(text: str) -> bytes:
    """One masked WebSocket text frame (a client's frames must be masked); under 64 KiB."""
    data, mask = text.encode(), os.urandom(4)
    n = len(data)
    head = bytes([0x81, 0x80 | n]) if n < 126 else bytes([0x81, 0xFE]) + n.to_bytes(2, "big")
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data))


class SlowReader:
    """Connects, joins CHANNEL, then never calls recv again; the socket stays open."""

    def __init__(self, server: Server) -> None:
        url = urlsplit(server.url)
        self.host, self.port = url.hostname or "127.0.0.1", url.port or 80
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
        self.sock.settimeout(TIMEOUT)
        self.buf = b""
        self.open: Result = {}
        self.local_port = 0
        self.connected_at = 0.0

    def _recv(self, deadline: float) -> None:
        if time.monotonic() > deadline:
            raise TimeoutError("slow reader: handshake took too long")
        chunk = self.sock.recv(65536)  # at most TIMEOUT: the socket's timeout
        if not chunk:
            raise ConnectionError("slow reader: server closed during the handshake")
        self.buf += chunk

    def _fill(self, n: int, deadline: float) -> bytes:
        while len(self.buf) < n:
            self._recv(deadline)
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _until(self, prefix: str, deadline: float) -> str:
        """The next text frame that starts with prefix; other frames (Engine.IO pings among
        them) are skipped. Server frames are unmasked and, this early, not fragmented."""
        while True:
            b0, b1 = self._fill(2, deadline)
            n = b1 & 0x7F
            if n >= 126:
                n = int.from_bytes(self._fill(2 if n == 126 else 8, deadline), "big")
            text = self._fill(n, deadline).decode(errors="replace")
            if b0 & 0x0F == 0x8 or text.startswith("44"):
                raise ConnectionError(f"slow reader closed or refused: {text!r}")
            if b0 == 0x81 and text.startswith(prefix):
                return text

    def connect(self, token: str) -> None:
        deadline = time.monotonic() + 3 * TIMEOUT
        self.sock.connect((self.host, self.port))
        self.local_port = self.sock.getsockname()[1]
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            f"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\n"
            f"Host: {self.host}:{self.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        while b"\r\n\r\n" not in self.buf:
            self._recv(deadline)
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        if b" 101 " not in head.split(b"\r\n", 1)[0]:
            raise ConnectionError(f"slow reader: upgrade refused: {head[:200]!r}")
        self.open = json.loads(self._until("0", deadline)[1:])
        self.connected_at = time.monotonic()
        self.sock.sendall(ws_text("40" + json.dumps({"token": token})))
        self._until("40", deadline)
        join = json.dumps(["channel:join", {"channel_id": CHANNEL}])
        self.sock.sendall(ws_text("421" + join))
        self._until("431", deadline)  # the ack: the reader is in the room; from here, no recv


# the server's end of the slow reader's connection ---------------------------------------------

TCP_STATES = {1: "ESTABLISHED", 4: "FIN_WAIT1", 5: "FIN_WAIT2", 6: "TIME_WAIT", 7: "CLOSE",
              8: "CLOSE_WAIT", 9: "LAST_ACK", 11: "CLOSING"}  # fmt: skip


def server_end(server_port: int, client_port: int) -> tuple[str, int, bool] | None:
    """(TCP state, bytes in its kernel send queue, still held by a process) of the server's end
    of one loopback connection, from /proc/net/tcp; None once the kernel has dropped it.

    Why here and not on the slow reader's socket: a server that closes the socket queues its
    FIN behind the bytes the reader never takes (uvloop's transport.abort() is such a close,
    not a RST), so the reader would never see EOF; and a reader that drained its socket to find
    out would make the server flush what it holds. The server's end shows either way: after a
    RST it is gone, after close() it is in FIN_WAIT1 with inode 0 (no process holds it), and
    while the server keeps the connection, whatever it holds in user space, it stays
    ESTABLISHED with its inode.
    """
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        f = line.split()
        local, remote = int(f[1].rsplit(":", 1)[1], 16), int(f[2].rsplit(":", 1)[1], 16)
        if (local, remote) == (server_port, client_port):
            state = int(f[3], 16)
            return TCP_STATES.get(state, hex(state)), int(f[4].split(":")[0], 16), f[9] != "0"
    return None


class Watch:
    """Samples the server's RSS and the server's end of the slow reader's connection."""

    def __init__(self, server: Server, slow: SlowReader) -> None:
        self.pid, self.ports = server.pid, (slow.port, slow.local_port)
        self.t0 = time.monotonic()
        self.samples: list[tuple[float, int]] = []
        self.closed_at: float | None = None
        self.end = server_end(*self.ports)

    def sample(self) -> int:
        t, rss = round(time.monotonic() - self.t0, 2), rss_kib(self.pid)
        self.samples.append((t, rss))
        self.end = server_end(*self.ports)
        closed = self.end is None or self.end[0] != "ESTABLISHED" or not self.end[2]
        if closed and self.closed_at is None:
            self.closed_at = t
        return rss

    def cut_3s_ago(self) -> bool:
        return self.closed_at is not None and time.monotonic() > self.t0 + self.closed_at + 3

    async def run(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(SAMPLE_S)


# the feeder: a healthy python-socketio client ---------------------------------------------------
class Feeder:
    def __init__(self) -> None:
        self.sio = socketio.AsyncClient(reconnection=False)
        self.sent = self.received = 0
        self.error = ""
        self.sio.on("events:channel", self._relay)

    def _relay(self, data: Any) -> None:
        self.received += 1

    async def connect(self, server: Server) -> None:
        auth = {"token": server.token}
        await self.sio.connect(server.url, auth=auth, transports=["websocket"], wait_timeout=10)
        ack = await self.sio.call("channel:join", {"channel_id": CHANNEL}, timeout=TIMEOUT)
        if not (isinstance(ack, dict) and ack.get("ok")):
            raise RuntimeError(f"feeder: channel:join answered {ack!r}")

    async def _feed(self, seconds: float, rate: float) -> None:
        msg = {"channel_id": CHANNEL, "data": {"type": "bench", "data": PAYLOAD}}
        start = time.monotonic()
        while (elapsed := time.monotonic() - start) < seconds:
            due = int(elapsed * rate) + 1
            for _ in range(min(due - self.sent, 50)):  # a burst, then the loop breathes
                await self.sio.emit("events:channel", msg)
                self.sent += 1
            await asyncio.sleep(0 if self.sent < due else 1 / rate)

    async def feed(self, seconds: float, rate: float) -> float:
        """Send for `seconds` at `rate`; the seconds it took (a stalled or dropped feeder
        records why in .error)."""
        start = time.monotonic()
        try:
            await asyncio.wait_for(self._feed(seconds, rate), seconds + TIMEOUT)
        except TimeoutError:
            self.error = "feeder stalled: its sends stopped going out"
        except socketio.exceptions.SocketIOError as exc:
            self.error = f"feeder dropped: {type(exc).__name__}: {exc}"
        return time.monotonic() - start


# one target ------------------------------------------------------------------------------------
def slow_metric(server: Server) -> float | None:
    """rtctl_slow_clients_disconnected_total from GET /metrics (public: no admin token)."""
    with urllib.request.urlopen(f"{server.url}/metrics", timeout=TIMEOUT) as resp:
        for line in resp.read().decode().splitlines():
            if line.startswith("rtctl_slow_clients_disconnected_total"):
                return float(line.split()[-1])
    return None


def log_lines(scratch: Path) -> list[str]:
    """The server log's lines about cutting the slow reader (at most 5)."""
    words = ("unread", "max_unsent", "ping")
    text = "\n".join(log.read_text("utf-8", "replace") for log in scratch.glob("*.log"))
    return [ln.strip()[:300] for ln in text.splitlines() if any(w in ln for w in words)][:5]


async def scenario(server: Server, scratch: Path, args: argparse.Namespace) -> Result:
    slow, feeder = SlowReader(server), Feeder()
    try:
        await asyncio.to_thread(slow.connect, server.token)
        await asyncio.wait_for(feeder.connect(server), 2 * TIMEOUT)
        await asyncio.sleep(1.0)
        res: Result = {"ping_s": [slow.open.get(k, 0) / 1000 for k in PING_KEYS]}
        watch = Watch(server, slow)
        res["rss_before_kib"] = watch.sample()
        sampler = asyncio.create_task(watch.run())
        res["feed_s"] = await feeder.feed(args.seconds, args.rate)
        res |= {"sent": feeder.sent, "relays_end": feeder.received}
        res["rss_end_kib"] = rss_kib(server.pid)
        await asyncio.sleep(3.0)
        res |= {"rss_after3_kib": rss_kib(server.pid), "relays": feeder.received}
        # watch: --watch after the feeder, or else until the ping timeout + WS_CLOSE_WAIT
        ping = sum(slow.open.get(k, 0) for k in PING_KEYS) / 1000
        until = slow.connected_at + ping + WS_CLOSE_WAIT
        until = time.monotonic() + args.watch if args.watch is not None else until
        while time.monotonic() < until and not watch.cut_3s_ago():
            await asyncio.sleep(SAMPLE_S)
        sampler.cancel()
        res |= summary(watch, slow, feeder)
        if server.name == "rtctl":
            res["slow_metric"] = await asyncio.to_thread(slow_metric, server)
        res["log"] = log_lines(scratch)
        return res
    finally:
        slow.sock.close()
        await asyncio.wait_for(feeder.sio.disconnect(), TIMEOUT)


def summary(watch: Watch, slow: SlowReader, feeder: Feeder) -> Result:
    peak_t, peak = max(watch.samples, key=lambda s: s[1])
    res: Result = {"rss_peak_kib": peak, "peak_at_s": peak_t, "rss_last_kib": watch.sample()}
    res |= {"watched_s": watch.samples[-1][0], "closed_at_s": watch.closed_at}
    res["reader_joined_s"] = round(slow.connected_at - watch.t0, 2)  # negative: before t = 0
    if watch.end is None:
        res["server_end"] = "gone"
    else:
        state, queued, held = watch.end
        fd = "" if held else ", fd closed"
        res["server_end"] = f"{state}, {queued / 1e6:.1f} MB in kernel{fd}"
    # the slow reader's own socket: a reset would show here, unread data or not
    err = slow.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    res["reader_so_error"] = os.strerror(err) if err else "none"
    res["samples"] = watch.samples
    if feeder.error:
        res["feeder_error"] = feeder.error
    return res


def run_all(args: argparse.Namespace) -> dict[str, Result]:
    results: dict[str, Result] = {}
    with tempfile.TemporaryDirectory(prefix="rtctl-slow-") as tmp:
        for name in args.targets:
            scratch = Path(tmp) / name
            scratch.mkdir()
            print(f"{name:<5} ...", end=" ", file=sys.stderr, flush=True)
            try:
                with running(name, scratch) as server:
                    res = asyncio.run(scenario(server, scratch, args))
            except Exception as exc:
                res = {"error": f"{type(exc).__name__}: {exc}"}
            results[name] = res
            print(res.get("error") or f"peak {res['rss_peak_kib'] / 1024:.0f} MiB", file=sys.stderr)
    return results


# output ----------------------------------------------------------------------------------------
def mib(key: str) -> Callable[[Result], float]:
    return lambda r: float(r[key]) / 1024


def growth(key: str) -> Callable[[Result], float]:
    return lambda r: float(r[key] - r["rss_before_kib"]) / 1024


def cut(r: Result) -> str:
    if (t := r["closed_at_s"]) is None:
        return f"no (watched {r['watched_s']:.0f} s)"
    return f"at {t:.1f} s ({t - r['reader_joined_s']:.1f} s after it connected)"


# (label, value, format); t = 0 s is the feeder's first message
ROWS: list[tuple[str, Callable[[Result], Any], str]] = [
    ("Engine.IO ping interval / timeout s", lambda r: "{:g} / {:g}".format(*r["ping_s"]), ""),
    ("feeder: sent (per s)", lambda r: f"{r['sent']:,} ({r['sent'] / r['feed_s']:.0f})", ""),
    ("feeder: relays received, end / +3 s", lambda r: f"{r['relays_end']:,} / {r['relays']:,}", ""),
    ("RSS before MiB", mib("rss_before_kib"), ".1f"),
    ("RSS peak MiB", mib("rss_peak_kib"), ".1f"),
    ("RSS peak at s", lambda r: r["peak_at_s"], ".1f"),
    ("RSS peak growth MiB", growth("rss_peak_kib"), ".1f"),
    ("RSS at feeder end MiB", mib("rss_end_kib"), ".1f"),
    ("RSS feeder end + 3 s MiB", mib("rss_after3_kib"), ".1f"),
    ("growth at feeder end + 3 s MiB", growth("rss_after3_kib"), ".1f"),
    ("RSS at end of watch MiB", mib("rss_last_kib"), ".1f"),
    ("slow reader cut by the server", cut, ""),
    ("server's end of it, at end", lambda r: r["server_end"], ""),
    ("slow reader's SO_ERROR at end", lambda r: r["reader_so_error"], ""),
    ("rtctl_slow_clients_disconnected_total", lambda r: r["slow_metric"], "g"),
]  # fmt: skip
RATIOS = {"RSS peak growth MiB", "growth at feeder end + 3 s MiB"}  # ratios vs node in these


def table(results: dict[str, Result], names: list[str]) -> str:
    others = [n for n in names if n != "node"] if "node" in names else []
    header = ["metric", *names, *(f"{n}/node" for n in others)]
    lines = []
    for label, get, fmt in ROWS:
        cells, raw = [], {}
        for name in names:
            res = results.get(name, {})
            try:
                raw[name] = get(res)
                cells.append(format(raw[name], fmt) if raw[name] is not None else "n/a")
            except (KeyError, TypeError, ZeroDivisionError):
                cells.append("error" if "error" in res else "n/a")
        for name in others:
            node, value = raw.get("node"), raw.get(name)
            ok = label in RATIOS and isinstance(node, float) and isinstance(value, float)
            cells.append(f"{value / node:.2f}x" if ok and node else "")
        if any(c != "n/a" for c in cells):
            lines.append([label, *cells])
    widths = [max(len(str(c)) for c in col) for col in zip(header, *lines, strict=True)]
    fmt_row = " | ".join(f"{{:{'<' if i == 0 else '>'}{w}}}" for i, w in enumerate(widths))
    rule = "-|-".join("-" * w for w in widths)
    return "\n".join([fmt_row.format(*header), rule, *(fmt_row.format(*r) for r in lines)])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--targets", default="node,pysio,rtctl", help="comma-separated: %(default)s")
    p.add_argument("--seconds", type=float, default=30.0, help="feeder sending time")
    p.add_argument("--rate", type=float, default=500.0, help="feeder messages/s (16 KiB each)")
    p.add_argument("--watch", type=float, help="seconds to watch after the feeder (default: until "
                   "ping interval + timeout + 35 s after the slow reader connected)")  # fmt: skip
    p.add_argument("--quick", action="store_true", help="~45 s smoke run: 10 s feed, no watch")
    p.add_argument("--json", type=Path, help="also write all raw results here")
    args = p.parse_args(argv)
    if args.quick:
        args.seconds, args.watch = 10.0, 0.0
    args.targets = [t for t in args.targets.split(",") if t]
    for bad in set(args.targets) - set(TARGETS):
        p.error(f"unknown target: {bad}")
    return args


def main() -> None:
    args = parse_args()
    atexit.register(kill_all)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwind: finally blocks kill
    results, meta = measured_run(args.targets, lambda: run_all(args), "every server was")
    meta["args"] = vars(args) | {"json": None}
    print(table(results, args.targets))
    footer(meta, args.targets, "ratios are target/node; t = 0 s is the feeder's first message "
           f"({args.rate:g}/s of {len(PAYLOAD) // 1024} KiB for {args.seconds:g} s); the slow "
           "reader answers no Engine.IO ping.")  # fmt: skip
    for name, res in results.items():
        for line in [res.get("error"), res.get("feeder_error"), *res.get("log", [])]:
            if line:
                print(f"{name}: {line}")
    if args.json:
        args.json.write_text(json.dumps({"meta": meta, **results}, indent=2, default=str))


if __name__ == "__main__":
    main()
