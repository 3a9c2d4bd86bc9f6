"""The daemon's life: start, ready, drain, stop.

    starting --(backend up, listening)--> ready --(SIGTERM/SIGINT)--> draining --> stopped

Draining makes ``/readyz`` answer 503 and refuses new sessions, stops running tasks
(their users get ``chat:tasks:cancel``), disconnects live clients so they reconnect
elsewhere, flushes state, and lets the server exit; all of it bounded by ``drain_grace``.
A second signal exits at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gc
import logging
import os
import socket
import time
from types import FrameType

import uvicorn

from rtctl.errors import OperationFailed, RtctlError
from rtctl.server.app import Components
from rtctl.server.protocols import protocol_classes
from rtctl.server.sio import close_transport

log = logging.getLogger("rtctl.daemon")
NODE_REFRESH_SECONDS = 5.0
DISCONNECT_BATCH = 200


def sd_notify(message: str) -> None:
    """Tell systemd (Type=notify) about our state; a no-op outside systemd."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]  # abstract namespace socket
    with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.connect(address)
        sock.sendall(message.encode())


class Daemon(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, parts: Components) -> None:
        super().__init__(config)
        self.parts = parts
        self._drain_task: asyncio.Task[None] | None = None
        self._loops: list[asyncio.Task[None]] = []

    async def _serve(self, sockets: list[socket.socket] | None = None) -> None:
        state, bus = self.parts.hub.state, self.parts.bus
        await state.start()
        docs = self.parts.docs
        if docs is not None:
            await docs.start()
        if self.parts.link is not None:
            self.parts.link.start()
        if bus is not None:
            await bus.start()  # keeps reconnecting by itself while Redis is away
        self._loops.append(asyncio.create_task(self._announce_when_listening()))
        if self.parts.loop_lag is not None:
            self._loops.append(asyncio.create_task(self.parts.loop_lag.run()))
        if self.parts.reaper is not None:
            self._loops.append(asyncio.create_task(self._reap()))
        try:
            await super()._serve(sockets)
        finally:
            for task in self._loops:
                task.cancel()
            if bus is not None:
                await bus.close()
            if docs is not None:
                await docs.close()  # after the clients are gone: every update is flushed
            if self.parts.link is not None:
                await self.parts.link.close()  # after the documents: their last webhooks go
            await state.close()
            if self._drain_task is not None:
                self._captured_signals.clear()  # drained on purpose: exit 0, not re-raise SIGTERM

    async def _announce_when_listening(self) -> None:
        while not self.started:
            await asyncio.sleep(0.02)
        self.parts.readiness.started = True
        node = self.parts.hub.node.id
        log.info("rtctl node %s listening on %s:%s", node, self.config.host, self.config.port)
        # READY=1 once the backend answers too, as /readyz says: a unit ordered after this
        # one starts when clients can be served. A backend down at start delays it (and
        # the unit's start times out and retries); the daemon keeps trying meanwhile.
        self._loops.append(asyncio.create_task(self._notify_when_ready()))
        failing = False
        while True:
            try:
                await self._refresh()
                if failing:
                    log.info("node refresh works again")
                failing = False
            except Exception as exc:  # the loop must outlive any backend fault
                # one warning per outage, not one per attempt
                (log.debug if failing else log.warning)("node refresh failed: %s", exc)
                failing = True
            # well inside the liveness timeout, so one late refresh never looks like death
            await asyncio.sleep(min(NODE_REFRESH_SECONDS, self.parts.settings.node_ttl / 3))

    async def _notify_when_ready(self) -> None:
        waited = False
        while True:
            ok, reason = self.parts.readiness.check()
            if ok:
                try:
                    await self.parts.hub.state.ping()
                except RtctlError as exc:
                    ok, reason = False, exc.message
            if ok:
                sd_notify("READY=1")
                if waited:
                    log.info("ready: the state backend answers")
                return
            if not waited:
                log.warning("not ready yet: %s", reason)
                waited = True
            await asyncio.sleep(0.25)

    async def _reap(self) -> None:
        """Every node_ttl, sweep dead nodes' leftovers (one daemon at a time: the lease)."""
        interval = self.parts.settings.node_ttl
        while True:
            await asyncio.sleep(interval)
            try:
                swept = await self.parts.reaper.sweep()
                if swept.nodes:
                    log.info("reaped %d sessions of dead nodes %s", sum(n.sessions for n in
                             swept.nodes), ", ".join(n.node for n in swept.nodes))  # fmt: skip
            except Exception as exc:  # busy lease, Redis away: next round; the loop never dies
                log.debug("reaper round skipped: %s", exc)

    async def _refresh(self) -> None:
        """Refresh this node's liveness, and repair the backend's record of its sessions
        and of the deployment's revocations."""
        await self.parts.hub.refresh_node()
        if self.parts.revocations is not None:
            await self.parts.revocations.sync()  # written back if Redis lost them
        if self.parts.tasks is not None:
            await self.parts.tasks.refresh()  # keeps its task records, takes stop intents
        added, removed = await self.parts.hub.pool.reconcile()
        if added or removed:
            log.warning("backend record repaired: %d sessions re-added, %d stale removed",
                        added, removed)  # fmt: skip

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._drain_task is not None or self.should_exit:
            self.force_exit = True
            self.should_exit = True
            return
        loop = asyncio.get_event_loop()
        self._drain_task = loop.create_task(self.drain())

    async def drain(self) -> None:
        settings = self.parts.settings
        self.parts.readiness.draining = True
        sd_notify("STOPPING=1")
        self.parts.sio.manager.taps.close_all()  # operators' tails end; they would hold the exit
        log.info("draining: refusing new sessions, disconnecting %d", len(self.parts.hub.pool))
        deadline = time.monotonic() + settings.drain_grace
        if self.parts.tasks is not None and len(self.parts.tasks):
            # stopped while the clients are still here to read chat:tasks:cancel
            try:
                stopped = await asyncio.wait_for(self.parts.tasks.stop_all(),
                                                 max(0.1, settings.drain_grace / 2))  # fmt: skip
                log.info("draining: stopped %d tasks", stopped)
            except TimeoutError:
                log.warning("drain: tasks still stopping after half the grace period")
        try:
            await asyncio.wait_for(self._disconnect_all(), max(0.1, settings.drain_grace - 1.0))
        except TimeoutError:
            log.warning("drain grace elapsed with sessions still connected")
        self.config.timeout_graceful_shutdown = max(1, round(deadline - time.monotonic()))
        self.should_exit = True

    async def _disconnect_all(self) -> None:
        """Close every client's connection, so that clients reconnect (to another node).

        The Engine.IO connection is closed rather than the Socket.IO session: a client
        sees a transport close, which Socket.IO clients answer by reconnecting, whereas
        a server-side Socket.IO disconnect tells them to stay away.
        """
        sio, pool = self.parts.sio, self.parts.hub.pool
        found = [sio.manager.eio_sid_from_sid(sid, "/") for sid in pool.local_sids()]
        eio_sids = [e for e in found if e is not None]
        for i in range(0, len(eio_sids), DISCONNECT_BATCH):
            await asyncio.gather(
                *(close_transport(sio, e) for e in eio_sids[i : i + DISCONNECT_BATCH]),
                return_exceptions=True,
            )


def run(parts: Components) -> None:
    settings = parts.settings
    try:
        import uvloop  # noqa: F401

        loop = "uvloop"
    except ImportError:  # pragma: no cover - uvloop is a dependency on every supported platform
        loop = "asyncio"
    http, ws = protocol_classes(
        header_timeout=settings.header_timeout,
        write_timeout=settings.write_timeout,
        max_unsent=settings.max_unsent_bytes,
        on_slow=parts.metrics.slow_clients.inc,
    )
    parts.sio.eio.max_unsent = settings.max_unsent_bytes  # a long-polling client's, in its queue
    parts.sio.eio.on_slow = parts.metrics.slow_clients.inc
    config = uvicorn.Config(
        parts.asgi,
        host=settings.host,
        port=settings.port,
        loop=loop,
        http=http,  # httptools and websockets-sansio, with the bounds of SPEC §8
        ws=ws,
        lifespan="off",
        access_log=False,
        log_level=settings.log_level.lower(),
        ws_max_size=settings.max_payload + 1024,
        # Socket.IO's own default; with compression each delivery costs about 50% more CPU
        # (bench/RESULTS.md), and every browser offers it.
        ws_per_message_deflate=False,
        timeout_graceful_shutdown=max(1, int(settings.drain_grace)),
    )
    if settings.log_level.lower() != "debug":
        # uvicorn (re)configures its loggers when the Config is made; a line per connection
        # from it and from websockets costs ~70 µs per connect (bench/RESULTS.md)
        for name in ("uvicorn.error", "websockets"):
            logging.getLogger(name).setLevel(logging.WARNING)
    sock = listen(settings.host, settings.port)  # a busy port: one clear line, exit 1
    daemon = Daemon(config, parts)
    tune_gc()
    daemon.run(sockets=[sock])


def listen(host: str, port: int) -> socket.socket:
    """The listening socket, bound before anything starts (uvicorn would log a raw error
    and exit 3, the code the CLI keeps for "not found")."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError:
            sock.close()
            raise
    except OSError as exc:
        reason = exc.strerror or str(exc)
        hint = " (is another rtctl, or another server, running there?)" if (
            exc.errno == errno.EADDRINUSE) else ""  # fmt: skip
        raise OperationFailed(f"cannot listen on {host}:{port}: {reason}{hint}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def tune_gc() -> None:
    """Fewer, larger collections for a server whose live objects are mostly long-lived.

    Engine.IO allocates a task and a timer per queued packet, so the default gen-0
    threshold (700) triggers a collection every few hundred deliveries; freezing what
    start-up allocated keeps it out of every later scan. Measured on channel fan-out:
    +39% deliveries/s, same memory per connection (bench/RESULTS.md).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 1000)
