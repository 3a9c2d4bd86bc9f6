"""One process of bench/redis_bench.py: a driven node, or the reaper-stall measurement.

  python bench/redis_node.py rtctl --port P --data-dir D   (RTCTL_* settings in the environment)
      The real daemon, exactly as `rtctl serve` runs it (rtctl.server.run.serve: settings
      check, secrets, build(), uvicorn config, uvloop, GC tuning, node heartbeat, reaper), with
      one extra task: a driver reading JSON commands on stdin and emitting from inside the
      daemon through the hub's own transport (the path every hub emit takes).
  python bench/redis_node.py pysio --port P --redis-url U --channel C
      python-socketio's AsyncServer with AsyncRedisManager (bench/pysio_server.py's handlers,
      a `user:<token>` room per connection), same driver.
  python bench/redis_node.py stall --redis-url U --prefix X --sessions N
      RedisState.list_sessions() of N sessions, then Reaper.sweep() of a dead node's N sessions
      (rtctl's as is, then a cursor-following variant defined here), each beside a 1 ms
      ticker measuring the event loop's worst stall; prints one JSON line.
  python bench/redis_node.py levers --redis-url U --prefix X --sessions N --data-dir D
      CPU per emit of one daemon's emit path and RedisBus, as is and with publishing changed
      in this process only (linger, one EVALSHA per batch), and per message received through
      redis-py's PubSub vs a raw hiredis reader vs RedisBus's listener; prints one JSON line.

Driver commands (one JSON object a line on stdin; one JSON answer a line on stdout):
  {"op": "drive", "rooms": [...], "n": N, "via": "emit"|"operator", "concurrency": C, "rate": R}
  Emits N `bench:t` events ({seq, t: time.monotonic() ms, body}) round-robin to the rooms from
  C concurrent tasks, each yielding to the loop after every emit (paced at R emits/s if R > 0),
  and answers when every emit returned (`accepted_s`) and when the bus outbox is empty
  (`published_s`; python-socketio awaits each publish, so there both are the same).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

BODY = "x" * 100
Emit = Callable[[str, Any, str], Awaitable[Any]]


def say(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


async def drive(emit: Emit, cmd: dict[str, Any], drained: Callable[[], bool]) -> dict[str, Any]:
    rooms, n, workers = cmd["rooms"], int(cmd["n"]), int(cmd.get("concurrency", 1))
    rate = float(cmd.get("rate", 0))  # emits/s; 0 = as fast as the emit path goes
    next_i = 0
    t0 = time.monotonic()

    async def worker() -> None:
        nonlocal next_i
        while next_i < n:
            i, next_i = next_i, next_i + 1
            if rate and (ahead := t0 + i / rate - time.monotonic()) > 0:
                await asyncio.sleep(ahead)
            data = {"seq": i, "t": time.monotonic() * 1000, "body": BODY}
            await emit("bench:t", data, rooms[i % len(rooms)])
            await asyncio.sleep(0)  # a daemon turns its loop between inbound events

    cpu0 = time.process_time()
    await asyncio.gather(*(worker() for _ in range(workers)))
    accepted = time.monotonic()
    for _ in range(60_000):  # bounded: at most ~60 s
        if drained():
            break
        await asyncio.sleep(0.001)
    published = time.monotonic()
    return {
        "n": n, "t0_ms": t0 * 1000, "accepted_s": accepted - t0, "published_s": published - t0,
        "driver_cpu_s": time.process_time() - cpu0,
    }  # fmt: skip


async def command_loop(emit_for: Callable[[str], Emit], drained: Callable[[], bool]) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        if not line.strip():
            continue
        cmd = json.loads(line)
        try:
            say(await drive(emit_for(cmd.get("via", "emit")), cmd, drained))
        except Exception as exc:  # report, keep serving: the orchestrator decides
            say({"error": f"{type(exc).__name__}: {exc}"})


# rtctl ---------------------------------------------------------------------------------------


def bus_idle(bus: Any) -> bool:
    """Nothing queued or on its way (``RedisBus.idle``; older buses: from their internals)."""
    if hasattr(bus, "idle"):
        return bool(bus.idle)
    return not bus._outbox and (bus._flushing is None or bus._flushing.done())


def run_rtctl(args: argparse.Namespace) -> None:
    from rtctl.config import load_settings
    from rtctl.server import lifecycle
    from rtctl.server.run import serve

    class DrivenDaemon(lifecycle.Daemon):
        async def _serve(self, sockets: Any = None) -> None:
            parts = self.parts
            transport, operator, bus = parts.hub.transport, parts.operator, parts.bus

            async def via_emit(event: str, data: Any, room: str) -> None:
                await transport.emit(event, data, to=room)

            async def via_operator(event: str, data: Any, room: str) -> None:
                await operator.emit(event, data, to=room)  # what POST /api/v1/emit runs

            def drained() -> bool:  # the batched publisher has sent everything queued
                return bus is None or bus_idle(bus)

            emitters = {"emit": via_emit, "operator": via_operator}
            self._loops.append(asyncio.create_task(command_loop(emitters.__getitem__, drained)))
            await super()._serve(sockets)

    lifecycle.Daemon = DrivenDaemon  # type: ignore[misc]  # run() builds the daemon by this name
    flags = {"host": "127.0.0.1", "port": args.port, "data_dir": args.data_dir}
    serve(load_settings(flags=flags))


# python-socketio with AsyncRedisManager ------------------------------------------------------


def run_pysio(args: argparse.Namespace) -> None:
    import socketio
    import uvicorn
    from pysio_server import build  # bench/ is this script's directory

    mgr = socketio.AsyncRedisManager(args.redis_url, channel=args.channel)
    sio, app = build(mgr, token_is_user=True)

    async def via_emit(event: str, data: Any, room: str) -> None:
        await sio.emit(event, data, to=room)

    async def main() -> None:
        sio.manager_initialized = True  # subscribe now, not at the first connection
        sio.manager.initialize()
        config = uvicorn.Config(
            app, host="127.0.0.1", port=args.port,
            http="httptools", ws="websockets-sansio", lifespan="off", access_log=False,
            log_level="warning", ws_per_message_deflate=False,
        )  # fmt: skip
        server = uvicorn.Server(config)
        driver = asyncio.create_task(command_loop(lambda via: via_emit, lambda: True))
        try:
            await server.serve()
        finally:
            driver.cancel()

    import uvloop

    uvloop.run(main())


# reaper stall ----------------------------------------------------------------------------------


class Ticker:
    """A task that sleeps 1 ms at a time and records the gaps between its wake-ups.

    ``worst`` is the longest wall-clock gap beyond the 1 ms asked for; ``worst_cpu`` the most
    CPU this thread used within one gap, which a noisy machine does not inflate (a gap spent
    preempted uses no CPU here). The gap still open when the block ends counts too: work that
    ends in a long synchronous stretch returns before the ticker could wake up to see it."""

    def __init__(self) -> None:
        self.worst = self.worst_cpu = 0.0
        self.ticks = self.over_10ms = 0
        self._last = self._last_cpu = 0.0
        self._task: asyncio.Task[None] | None = None

    def _tick(self) -> None:
        now, cpu = time.perf_counter(), time.thread_time()
        gap = now - self._last - 0.001
        self.worst = max(self.worst, gap)
        self.worst_cpu = max(self.worst_cpu, cpu - self._last_cpu)
        self.over_10ms += gap > 0.010
        self._last, self._last_cpu = now, cpu

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(0.001)
            self._tick()
            self.ticks += 1

    async def __aenter__(self) -> Ticker:
        self._last, self._last_cpu = time.perf_counter(), time.thread_time()
        self._task = asyncio.create_task(self._run())
        await asyncio.sleep(0.01)
        self.worst = self.worst_cpu = 0.0
        self.ticks = self.over_10ms = 0
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._tick()
        self._task.cancel()

    def report(self, prefix: str) -> dict[str, Any]:
        return {f"{prefix}stall_ms": self.worst * 1000, f"{prefix}stall_cpu_ms":
                self.worst_cpu * 1000, f"{prefix}gaps_over_10ms": self.over_10ms,
                f"{prefix}ticks": self.ticks}  # fmt: skip


async def idle_ticks(seconds: float) -> dict[str, Any]:
    """The ticker alone: what this machine's scheduling does to a 1 ms timer, no work."""
    async with Ticker() as tick:
        await asyncio.sleep(seconds)
    return tick.report("idle_")


def bulk_loader() -> str:
    """rtctl's own lua/session_add.lua, unchanged, as a function called once per session: one
    EVAL adds thousands of sessions with exactly the writes a connecting session makes."""
    from rtctl.state import redis as redis_state

    body = (Path(redis_state.__file__).with_name("lua") / "session_add.lua").read_text()
    return (
        f"local function add(KEYS, ARGV)\n{body}\nend\n"
        "for i = 2, #ARGV, 2 do add(KEYS, {ARGV[1], ARGV[i], ARGV[i + 1]}) end\nreturn 1\n"
    )


async def fill(state: Any, node: str, n: int, users: int, rooms: int, at: float = 0.0) -> float:
    """n sessions in node's partition (users u0.., rooms channel:c0..), 5,000 per EVAL."""
    from rtctl.state.base import SessionRecord
    from rtctl.state.redis import _session_json

    keys, tag = state._partition(node)
    loader = state.redis.register_script(bulk_loader())
    started, now = time.monotonic(), at or time.time()
    for lo in range(0, n, 5000):
        args = [tag]
        for i in range(lo, min(n, lo + 5000)):
            user = f"u{i % users}"
            s = SessionRecord(f"{node}-s{i:07d}", user, f"User {user}", node, now + i * 1e-6,
                              now, [f"user:{user}", f"channel:c{i % rooms}"])  # fmt: skip
            args += [s.sid, _session_json(s)]
        await loader(keys=keys, args=args)
    return time.monotonic() - started


async def sweep_once(state: Any, reaper: Any, dead: str, n: int) -> dict[str, Any]:
    """Fill, mark dead, sweep beside the ticker; what was swept and what was left behind."""
    r = state.redis
    out: dict[str, Any] = {"fill_s": await fill(state, dead, n, users=n // 10, rooms=100)}
    gc.collect()
    await r.zadd(state.keys.nodes, {dead: int((time.time() - 3600) * 1000)})  # long dead
    async with Ticker() as tick:
        t0 = time.monotonic()
        swept = await reaper.sweep()
        out["sweep_s"] = time.monotonic() - t0
    out |= tick.report("") | {"swept": swept.to_json()["sessions"]}
    out["complete"] = swept.complete
    left = [k async for k in r.scan_iter(match=state.keys.partition(dead) + "*", count=1000)]
    out["keys_left"] = len(left)
    out["left_sample"] = sorted(k.decode() if isinstance(k, bytes) else k for k in left)[:2]
    for lo in range(0, len(left), 1000):  # clean up for the next measurement
        await r.unlink(*left[lo : lo + 1000])
    return out


async def stall(args: argparse.Namespace) -> dict[str, Any]:
    from rtctl.server.lifecycle import tune_gc
    from rtctl.state.base import NodeRecord
    from rtctl.state.reaper import BATCH, Reaper
    from rtctl.state.redis import RedisState
    from rtctl.state.redis_url import open_client

    state = RedisState(open_client(args.redis_url), args.prefix, "bench-live", node_ttl=15.0)
    tune_gc()  # as the daemon does at start (rtctl.server.lifecycle.run)
    n = args.sessions
    out: dict[str, Any] = {"sessions": n, "batch": BATCH}

    # list_sessions() of n sessions on one live node (informational)
    out["list_fill_s"] = await fill(state, "node-live", n, users=n // 10, rooms=100)
    now = time.time()
    await state.register_node(NodeRecord("node-live", "h", 1, "bench", now, now, n))
    async with Ticker() as tick:
        t0 = time.monotonic()
        listed = await state.list_sessions()
        out["list_s"] = time.monotonic() - t0
    out |= tick.report("list_") | {"listed": len(listed)}
    del listed
    # its partition goes: not part of what is measured below
    left = [k async for k in state.redis.scan_iter(match=state.keys.partition("node-live") + "*")]
    for lo in range(0, len(left), 1000):
        await state.redis.unlink(*left[lo : lo + 1000])
    await state.redis.zrem(state.keys.nodes, "node-live")

    out["sweep"] = await sweep_once(state, Reaper(state, "bench-reaper"), "node-dead", n)
    out |= await idle_ticks(out["sweep"]["sweep_s"])
    await state.close()
    return out


# levers: where a daemon's emit CPU goes, and what the proposed changes save ----------------------

PUBLISH_MANY = "for i = 1, #ARGV, 2 do redis.call('PUBLISH', ARGV[i], ARGV[i + 1]) end return 1"


async def levers(args: argparse.Namespace) -> dict[str, Any]:
    """In one daemon's pieces (build(), not served): CPU per emit to a room on another node,
    with the bus as it is and with publishing changed in this process only; then CPU per
    message received by redis-py's PubSub, a raw hiredis reader, and the bus's listener."""
    import hiredis

    from rtctl.config import load_settings
    from rtctl.server.app import build
    from rtctl.server.bus import RedisBus
    from rtctl.server.lifecycle import tune_gc

    env = {"RTCTL_REDIS_URL": args.redis_url, "RTCTL_PREFIX": args.prefix,
           "RTCTL_NODE_ID": "levers", "RTCTL_JWT_SECRET": "levers-" + "0" * 40}  # fmt: skip
    parts = build(load_settings(flags={"data_dir": args.data_dir}, env=env), "x", "x" * 48)
    tune_gc()
    # one local client, so that namespace "/" exists (see FanoutManager.emit)
    parts.sio.manager.basic_enter_room("local-sid", "/", None, eio_sid="local-eio")
    bus, transport, n = parts.bus, parts.hub.transport, args.sessions
    await bus.start()
    await bus.connected.wait()
    script = bus.redis.register_script(PUBLISH_MANY)
    rooms = [f"user:elsewhere{i}" for i in range(100)]
    batches: list[int] = []

    def take(limit: int) -> list[tuple[str, bytes]]:
        batch = bus._outbox[:limit]
        del bus._outbox[:limit]
        if hasattr(bus, "_outbox_bytes"):  # the bounded outbox counts its bytes
            bus._outbox_bytes -= sum(len(m) for _, m in batch)
        return batch

    def flusher(linger: float, use_eval: bool) -> Callable[[], Awaitable[None]]:
        """Linger 0, pipelined: the bus as it was before the flush window and EVALSHA."""

        async def flush() -> None:
            await asyncio.sleep(linger)
            while bus._outbox:
                batch = take(512)
                batches.append(len(batch))
                if use_eval:
                    await script(keys=[], args=[x for pair in batch for x in pair])
                else:
                    async with bus.redis.pipeline(transaction=False) as pipe:
                        for channel, message in batch:
                            pipe.publish(channel, message)
                        await pipe.execute()
                await asyncio.sleep(linger)

        return flush

    out: dict[str, Any] = {"emits": n}
    real_publish, real_flush = bus.publish, bus._flush
    variants: list[tuple[str, Any, Any]] = [
        ("emit path only (publish is a no-op)", lambda c, m: None, real_flush),
        ("as is (RedisBus)", real_publish, real_flush),
        ("one pipeline per loop turn (the bus before)", real_publish, flusher(0, False)),
        ("linger 1 ms, pipelined PUBLISH", real_publish, flusher(0.001, False)),
        ("linger 1 ms, one EVALSHA per batch", real_publish, flusher(0.001, True)),
        ("linger 2 ms, one EVALSHA per batch", real_publish, flusher(0.002, True)),
    ]
    for label, publish, flush in variants:
        bus.publish, bus._flush = publish, flush  # type: ignore[method-assign]
        batches.clear()
        sent0 = (getattr(bus, "published", 0), getattr(bus, "batches", 0))
        gc.collect()
        cpu0, t0 = time.process_time(), time.perf_counter()
        for i in range(n):
            await transport.emit("bench:t", {"seq": i, "t": 0.0, "body": BODY}, to=rooms[i % 100])
            await asyncio.sleep(0)
        while not bus_idle(bus):
            await asyncio.sleep(0.001)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - t0
        mean: float | None = sum(batches) / len(batches) if batches else None
        if flush is real_flush and publish is real_publish and hasattr(bus, "batches"):
            sent, count = bus.published - sent0[0], bus.batches - sent0[1]
            mean = sent / count if count else None
        out[label] = {"us_per_emit": cpu / n * 1e6, "emits_per_s": n / wall,
                      "mean_batch": mean}  # fmt: skip
    bus.publish, bus._flush = real_publish, real_flush  # type: ignore[method-assign]

    # the receiving side, each with a no-op handler: redis-py's PubSub.get_message (the bus's
    # listener before, and still on a Cluster) vs a raw hiredis reader vs the bus's listener
    channel, message = f"{args.prefix}:levers", b"\x01R" + b"x" * 300
    pairs = [channel, message] * 1000

    async def publish_all() -> None:
        for _ in range(n // 1000):
            await script(keys=[], args=pairs)

    pubsub = bus.redis.pubsub(ignore_subscribe_messages=True)
    await pubsub.subscribe(channel)
    cpu0, got = time.process_time(), 0
    sender = asyncio.create_task(publish_all())
    while got < n:
        got += await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0) is not None
    await sender
    out["receive: redis-py get_message"] = {"us_per_msg": (time.process_time() - cpu0) / n * 1e6}
    await pubsub.aclose()
    host, port = (
        bus.redis.connection_pool.connection_kwargs["host"],
        bus.redis.connection_pool.connection_kwargs["port"],
    )
    reader_stream, writer = await asyncio.open_connection(host, port)
    writer.write(f"*2\r\n$9\r\nSUBSCRIBE\r\n${len(channel)}\r\n{channel}\r\n".encode())
    await writer.drain()
    reader, got = hiredis.Reader(), -1  # the first reply is the subscription's
    while got < 0:
        reader.feed(await reader_stream.read(65536))
        while reader.gets() is not False:
            got += 1
    cpu0, got = time.process_time(), 0
    sender = asyncio.create_task(publish_all())
    while got < n:
        reader.feed(await reader_stream.read(65536))
        while reader.gets() is not False:
            got += 1
    await sender
    out["receive: raw socket + hiredis.Reader"] = {
        "us_per_msg": (time.process_time() - cpu0) / n * 1e6
    }
    writer.close()
    received = 0

    async def count(channel: str, data: bytes) -> None:
        nonlocal received
        received += 1

    listener = RedisBus(bus.redis, channel, count, sharded=False)
    await listener.start()
    await listener.connected.wait()
    await asyncio.sleep(0.05)  # (a bus before this change reports connected before it is)
    cpu0 = time.process_time()
    sender = asyncio.create_task(publish_all())
    while received < n:
        await asyncio.sleep(0.001)
    await sender
    out["receive: RedisBus listener as is"] = {"us_per_msg": (time.process_time() - cpu0) / n * 1e6}
    await listener.close()
    # the publisher's share, to subtract from the receive figures
    cpu0 = time.process_time()
    await publish_all()
    out["publishing those (EVALSHA x1000)"] = {"us_per_msg": (time.process_time() - cpu0) / n * 1e6}
    await bus.close()
    await parts.hub.state.close()
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("kind", choices=["rtctl", "pysio", "stall", "levers"])
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--data-dir", default="")
    p.add_argument("--redis-url", default=os.environ.get("RTCTL_REDIS_URL", ""))
    p.add_argument("--channel", default="socketio")
    p.add_argument("--prefix", default="bench")
    p.add_argument("--sessions", type=int, default=100_000)
    args = p.parse_args()
    if args.kind == "rtctl":
        run_rtctl(args)
    elif args.kind == "pysio":
        run_pysio(args)
    else:
        import uvloop

        say(uvloop.run(stall(args) if args.kind == "stall" else levers(args)))


if __name__ == "__main__":
    main()
