"""Summarise a py-spy `--format raw` profile (collapsed stacks): where the CPU time goes.

Usage: python bench/stacks.py PROFILE.txt [--top N] [--buckets fanout|connect]
A raw file also opens in https://www.speedscope.app for the full flame graph.

--buckets puts every sample in the first matching bucket of an ordered list (below), so the
shares add up to 100%: a GC pass or a write(2) counts as such whoever triggered it.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")
PREFIX = re.compile(r"^.*/(site-packages|python3\.\d+)/")
# Event-loop frames that run every callback (asyncio, uvloop); inclusive time is only counted
# for the frames below the last of these in a stack.
EVENT_LOOP = {"Runner.run", "BaseEventLoop._run_once", "Handle._run", "Handle__run"}


# (label, frame prefixes): a sample goes to the first bucket with a frame below the event loop
# whose "module:function" (or "[C] function" for native code) starts with one of the
# prefixes; a "[C] libc..." prefix must be the leaf (the syscall itself). A bucket without
# prefixes takes the samples that have no Python frame below the event loop.
Buckets = list[tuple[str, tuple[str, ...]]]
GC = ("cyclic GC", ("[C] gc_collect",))
WRITE = ("write(2) syscall", ("[C] libc.so.6:write", "[C] libc.so.6:__libc_write"))
JSON = ("JSON (json, rtctl strictjson)", ("json.", "rtctl.server.strictjson:"))
WRITER = "AsyncSocket._websocket_handler.<locals>.writer"
LOOP = ("event loop, Task steps, wake-ups (no Python frame)", ())
BUCKETS: dict[str, Buckets] = {
    "fanout": [
        GC,
        WRITE,
        ("engine.io Packet.encode per recipient", ("engineio.packet:Packet.encode",)),
        (
            "frame send: engineio WebSocket.send > uvicorn send > websockets Frame.serialize",
            (
                "engineio.async_drivers.asgi:WebSocket.send",
                "uvicorn.protocols.websockets.websockets_sansio_impl:WebSocketsSansIOProtocol.send",
            ),
        ),
        (
            "engine.io writer poll: wait_for (Task + timer per packet), Queue.get",
            (
                "engineio.async_socket:AsyncSocket.poll",
                "asyncio.tasks:wait_for",
                "asyncio.tasks:_release_waiter",
                "asyncio.queues:Queue.get",
            ),
        ),
        ("engine.io writer loop, rest", ("engineio.async_socket:" + WRITER,)),
        JSON,
        (
            "queueing to each recipient: manager emit > send_packet > AsyncSocket.send",
            (
                "rtctl.server.manager:FanoutManager.emit_encoded",
                "socketio.async_manager:AsyncManager.emit",
                "socketio.async_server:AsyncServer._emit_internal",
                "socketio.async_server:AsyncServer._send_packet",
                "socketio.async_server:AsyncServer._send_eio_packet",
                "engineio.async_server:AsyncServer.send_packet",
            ),
        ),
        ("rtctl event handler, rest", ("rtctl.hub.", "rtctl.server.sio:SocketIO")),
        (
            "socket.io/engine.io inbound: read, decode, dispatch",
            ("socketio.", "engineio.", "rtctl."),
        ),
        LOOP,
    ],
    "connect": [
        GC,
        ("logging (log lines per connection)", ("logging.",)),
        ("JWT verify (rtctl.auth, PyJWT)", ("rtctl.auth:", "jwt.")),
        JSON,
        (
            "rtctl on_connect, rest: session, rooms, timers, metrics",
            (
                "rtctl.hub.",
                "rtctl.state.",
                "rtctl.server.sio:SocketIO",
                "rtctl.server.sio:HubServer._h",
            ),
        ),
        WRITE,
        ("other libc: getpid, getrandom, accept4, malloc, ...", ("[C] libc.so.6:",)),
        ("engine.io/socket.io handshake", ("engineio.", "socketio.")),
        ("uvicorn/websockets HTTP upgrade", ("uvicorn.", "websockets.", "httptools")),
        LOOP,
    ],
}


def parse(path: Path) -> list[tuple[list[str], int]]:
    """(frames root-first, sample count) per stack line."""
    stacks = []
    for line in path.read_text().splitlines():
        body, _, count = line.rpartition(" ")
        if body and count.isdigit():
            stacks.append((body.split(";"), int(count)))
    return stacks


def split(frame: str) -> tuple[str, str]:
    """'emit (socketio/async_server.py:180)' -> ('socketio.async_server', 'emit')."""
    m = FRAME.match(frame)
    if not m:
        return "?", frame
    file = PREFIX.sub("", m["file"])
    if not file.endswith(".py"):  # a native frame (--native): libc.so.6, loop.c, object.h
        return f"[C] {file}", m["func"]
    return file.removesuffix(".py").replace("/", "."), m["func"]


def package(module: str) -> str:
    return module if module.startswith("[C]") else module.split(".", 1)[0]


def below_loop(parts: list[tuple[str, str]]) -> list[tuple[str, str]]:
    loop = max((i for i, (_, func) in enumerate(parts) if func in EVENT_LOOP), default=-1)
    return parts[loop + 1 :]


def bucket(parts: list[tuple[str, str]], buckets: Buckets) -> str:
    """The label of the first bucket this stack (root-first (module, function) pairs) matches."""
    below = below_loop(parts)
    names = [f"{module}:{func}" for module, func in below]
    # a native frame also matches as "[C] function", whatever library it is in
    names += [f"[C] {func}" for module, func in below if module.startswith("[C]")]
    leaf = names[len(below) - 1 : len(below)]
    python = any(not module.startswith("[C]") for module, _ in below)
    for label, prefixes in buckets:
        if not prefixes:
            if not python:
                return label
            continue
        libc = tuple(p for p in prefixes if p.startswith("[C] libc"))  # matched as the leaf only
        frames = tuple(p for p in prefixes if p not in libc)
        if (libc and any(n.startswith(libc) for n in leaf)) or (
            frames and any(n.startswith(frames) for n in names)
        ):
            return label
    return "other"


def summarise(path: Path, top: int = 12, buckets: str | None = None) -> str:
    stacks = parse(path)
    total = sum(n for _, n in stacks) or 1
    by_bucket: Counter[str] = Counter()
    by_package: Counter[str] = Counter()
    by_self: Counter[str] = Counter()
    by_caller: Counter[str] = Counter()
    by_incl: Counter[str] = Counter()
    for frames, n in stacks:
        parts = [split(f) for f in frames]
        names = [f"{module}:{func}" for module, func in parts]
        by_package[package(parts[-1][0])] += n
        by_self[names[-1]] += n
        python = [name for name in names if not name.startswith("[C]")]
        if names[-1].startswith("[C]") and python:  # native leaf: which Python code got here
            by_caller[f"{names[-1]}  <-  {python[-1]}"] += n
        below = {f"{module}:{func}" for module, func in below_loop(parts)}
        for name in below - {name for name in names if name.startswith("[C]")}:
            by_incl[name] += n
        if buckets:
            by_bucket[bucket(parts, BUCKETS[buckets])] += n

    def pct(counter: Counter[str], limit: int) -> list[str]:
        return [f"  {n / total:6.1%}  {name}" for name, n in counter.most_common(limit)]

    return "\n".join(
        [
            f"{path.name}: {total} samples",
            "self time by package:",
            *pct(by_package, 8),
            "self time by function:",
            *pct(by_self, top),
            "native self time by nearest Python caller:",
            *pct(by_caller, 8),
            "inclusive time of Python functions, below the event loop:",
            *pct(by_incl, top),
            *([f"buckets ({buckets}; first match wins):", *pct(by_bucket, 20)] if buckets else []),
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("profile", type=Path)
    parser.add_argument("--top", type=int, default=12)
    parser.add_argument("--buckets", choices=sorted(BUCKETS), help="also split into these buckets")
    args = parser.parse_args()
    print(summarise(args.profile, args.top, args.buckets))


if __name__ == "__main__":
    main()
