"""The Socket.IO face of the hub: connect-time authentication and thin event handlers.

Each handler checks the rate limit, hands the payload to the domain, and turns a
refusal into an ``error`` event (and an ``{ok: false, error}`` ack) while the session
stays usable. Unknown events are refused the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, cast

import engineio
import engineio.async_socket
import engineio.exceptions
import socketio
from socketio import packet as sio_packet

from rtctl.auth import CLOCK_LEEWAY
from rtctl.errors import RtctlError
from rtctl.hub import payload
from rtctl.hub.hub import Hub
from rtctl.server.engine import HubEngine
from rtctl.server.metrics import Metrics

log = logging.getLogger("rtctl.sio")

EventHandler = Callable[[str, Any], Awaitable[Any]]
REFUSED_CLOSE_DELAY = 1.0  # seconds a refused client has to read connect_error and hang up

# Handler names python-socketio would otherwise let a client event reach.
LIFECYCLE_EVENTS = frozenset({"connect", "disconnect", "*"})
# Binary attachments one packet may announce (python-socketio allows 999999999).
MAX_ATTACHMENTS = 16


class HubSocket(engineio.async_socket.AsyncSocket):
    """An Engine.IO socket whose writer waits for packets without a timer per packet.

    engine.io's ``poll`` wraps every wait in ``asyncio.wait_for`` (a Task and a timer
    per packet sent, a third of a delivery's CPU in fan-out). The timeout is redundant
    on a WebSocket: the reader waits with the same timeout and, when it gives up or the
    peer goes, queues the ``None`` that ends the writer; a close queues one too. Packets
    already queued are taken without waiting at all.
    """

    async def poll(self) -> list[Any]:
        if not self.upgraded:  # long-polling answers each GET: keep engine.io's timeout
            return cast(list[Any], await super().poll())
        queue = self.queue
        try:
            first = queue.get_nowait()
        except asyncio.QueueEmpty:
            try:
                first = await queue.get()
            except asyncio.CancelledError:
                raise engineio.exceptions.QueueEmpty() from None
        queue.task_done()
        if first is None:
            return []
        packets = [first]
        while True:
            try:
                pkt = queue.get_nowait()
            except asyncio.QueueEmpty:
                break
            queue.task_done()
            if pkt is None:
                queue.put_nowait(None)
                break
            packets.append(pkt)
        return packets


class HubServer(socketio.AsyncServer):
    """An ``AsyncServer`` that only dispatches client events to event handlers.

    python-socketio looks a client event up by name among all handlers, so an event
    named ``connect`` would re-run authentication with a forged environ, one named
    ``disconnect`` would drop the session's record while its socket stays open, and
    ``*`` (or a name that is not a string) would reach the catch-all with its
    arguments shifted. Those go to the catch-all as an unknown event instead. An ack
    with id 0 is dropped: id 0 is the slot of the manager's ack-id counter.
    """

    def _engineio_server_class(self) -> type[engineio.AsyncServer]:
        return HubEngine

    async def _handle_event(
        self, eio_sid: str, namespace: str | None, id: int | None, data: Any
    ) -> None:
        name = data[0] if isinstance(data, list) and data else None
        if isinstance(name, str) and name not in LIFECYCLE_EVENTS:
            await super()._handle_event(eio_sid, namespace, id, data)
            return
        namespace = namespace or "/"
        sid = self.manager.sid_from_eio_sid(eio_sid, namespace)
        catch_all = self.handlers.get(namespace, {}).get("*")
        if catch_all is None or not self.manager.is_connected(sid, namespace):
            return
        args = data[1:] if isinstance(data, list) else []
        reply = await catch_all(name if isinstance(name, str) else "", sid, *args)
        if id is not None:
            ack = self.packet_class(sio_packet.ACK, namespace=namespace, id=id, data=[reply])
            await self._send_packet(eio_sid, ack)

    connect_timeout = 45.0  # set from settings by rtctl.server.app

    async def _handle_eio_connect(self, eio_sid: str, environ: dict[str, Any]) -> None:
        """Close a connection that has not authenticated within ``connect_timeout``.

        Engine.IO accepts a connection before any token is seen; a client that never
        sends its Socket.IO connect would otherwise hold the socket for good.
        """
        socket = self.eio.sockets.get(eio_sid)
        if type(socket) is engineio.async_socket.AsyncSocket:
            socket.__class__ = HubSocket  # see HubSocket; same state, a cheaper writer wait
        await super()._handle_eio_connect(eio_sid, environ)
        self.expire_unauthenticated_later(eio_sid)

    def expire_unauthenticated_later(self, eio_sid: str) -> None:
        """Close the connection in ``connect_timeout`` unless it has a session by then."""
        asyncio.get_running_loop().call_later(
            self.connect_timeout,
            lambda: asyncio.ensure_future(self._expire_unauthenticated(eio_sid)),
        )

    async def _expire_unauthenticated(self, eio_sid: str) -> None:
        if eio_sid in self.eio.sockets and self.manager.sid_from_eio_sid(eio_sid, "/") is None:
            log.info("closing connection %s: no authenticated session in time", eio_sid)
            await self.eio.disconnect(eio_sid)

    async def _handle_eio_disconnect(self, eio_sid: str, reason: Any = None) -> None:
        """A client's Engine.IO CLOSE ends its WebSocket at once.

        engine.io marks the connection closed but goes on reading the WebSocket until
        the client hangs up or the ping timeout (45 s) passes; ending the writer closes it.
        """
        socket = self.eio.sockets.get(eio_sid)
        if socket is not None and socket.upgraded and reason == self.eio.reason.CLIENT_DISCONNECT:
            socket.queue.put_nowait(None)  # the writer's end: it closes the WebSocket
        await super()._handle_eio_disconnect(eio_sid, reason)

    async def _handle_ack(self, eio_sid: str, namespace: str | None, id: int, data: Any) -> None:
        if id:
            await super()._handle_ack(eio_sid, namespace, id, data)

    async def _handle_eio_message(self, eio_sid: str, data: Any) -> None:
        """Close a connection that sends a packet that does not decode, as socket.io does.

        Event handlers run as tasks of their own, so what is raised here is the packet's
        fault (bad JSON, unknown packet type), not a handler's.
        """
        try:
            await super()._handle_eio_message(eio_sid, data)
            waiting = self._binary_packet.get(eio_sid)  # a binary packet awaiting attachments
            if waiting is not None and waiting.attachment_count > MAX_ATTACHMENTS:
                del self._binary_packet[eio_sid]  # each would be buffered until the last came
                raise ValueError("too many binary attachments")
        except (ValueError, TypeError, KeyError, IndexError, AttributeError, RecursionError) as exc:
            log.info("closing connection %s: malformed packet (%s)", eio_sid, type(exc).__name__)
            await self.eio.disconnect(eio_sid)


async def close_transport(sio: socketio.AsyncServer, eio_sid: str) -> bool:
    """Close an Engine.IO connection, so that its client sees a transport close and
    reconnects (a Socket.IO disconnect would tell it to stay away). It does not wait
    for the client: see ``HubEngine.disconnect``."""
    if eio_sid not in sio.eio.sockets:
        return False
    await sio.eio.disconnect(eio_sid)
    return True


class SocketIOTransport:
    """``rtctl.hub.transport.Transport`` over a python-socketio server."""

    def __init__(self, sio: socketio.AsyncServer, metrics: Metrics) -> None:
        self.sio = sio
        self.metrics = metrics
        self._pending: dict[str, set[asyncio.Future[Any]]] = {}

    def pending_calls(self) -> int:
        """Calls waiting for an ack (exported as the ``rtctl_pending_calls`` gauge)."""
        return sum(len(futures) for futures in self._pending.values())

    async def emit(self, event: str, data: Any, *, to: str, skip_sid: str | None = None) -> None:
        start = time.perf_counter()
        await self.sio.emit(event, data, to=to, skip_sid=skip_sid)
        self.metrics.emit_latency.observe(time.perf_counter() - start)
        self.metrics.events_out.inc(event)

    async def enter_room(self, sid: str, room: str) -> None:
        await self.sio.enter_room(sid, room)

    async def leave_room(self, sid: str, room: str) -> None:
        await self.sio.leave_room(sid, room)

    def hosts(self, sid: str) -> bool:
        return bool(self.sio.manager.is_connected(sid, "/"))

    async def disconnect(self, sid: str) -> bool:
        if not self.hosts(sid):
            return False
        await self.sio.disconnect(sid)
        return True

    async def reconnect(self, sid: str) -> bool:
        """Close the Engine.IO connection without a Socket.IO disconnect packet: the
        client sees its transport close, and reconnects (as on a node's drain)."""
        eio_sid = self.sio.manager.eio_sid_from_sid(sid, "/")
        if eio_sid is None or not self.hosts(sid):
            return False
        return await close_transport(self.sio, eio_sid)

    async def call(self, sid: str, event: str, data: Any, timeout: float) -> Any:
        """Emit with an ack and wait; the ack callback is removed on timeout or disconnect."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()

        def on_ack(*args: Any) -> None:
            if not future.done():
                future.set_result(args[0] if len(args) == 1 else list(args))

        self._pending.setdefault(sid, set()).add(future)
        try:
            await self.sio.emit(event, data, to=sid, callback=on_ack)
            self.metrics.events_out.inc(event)
            return await asyncio.wait_for(future, timeout)
        finally:
            pending = self._pending.get(sid)
            if pending is not None:
                pending.discard(future)
                if not pending:  # an emptied set would otherwise stay for the sid
                    del self._pending[sid]
            callbacks = self.sio.manager.callbacks.get(sid, {})
            for ack_id, cb in list(callbacks.items()):
                if cb is on_ack:
                    del callbacks[ack_id]

    def fail_calls(self, sid: str) -> None:
        for future in self._pending.pop(sid, ()):
            if not future.done():
                future.set_exception(TimeoutError(f"session {sid} disconnected"))


class SocketIOEndpoint:
    """Registers the connect/disconnect handlers and every client event."""

    def __init__(
        self,
        sio: socketio.AsyncServer,
        hub: Hub,
        transport: SocketIOTransport,
        metrics: Metrics,
        draining: Callable[[], bool],
    ) -> None:
        self.sio, self.hub, self.transport, self.metrics = sio, hub, transport, metrics
        self.draining = draining
        self._expiry: dict[str, asyncio.TimerHandle] = {}
        self._closing: set[asyncio.Future[None]] = set()
        self._close_hooks: list[Callable[[str], Awaitable[None]]] = []
        # A session's events run in the order it sent them (python-socketio starts a
        # task per event): Open WebUI sends user-join, then a read mark for a channel
        # that user-join enters. Document events keep their own order (their inbox).
        self._in_order: dict[str, asyncio.Lock] = {}
        sio.on("connect", self.on_connect)
        sio.on("disconnect", self.on_disconnect)
        sio.on("*", self.on_unknown)
        events: dict[str, EventHandler] = {
            "user-join": self._with_expiry(hub.user_join),
            "heartbeat": lambda sid, data: hub.heartbeat(sid),
            "channel:join": hub.channel_join,
            "channel:leave": hub.channel_leave,
            "join-channels": self._with_expiry(hub.join_channels),
            "join-note": self._with_expiry(hub.join_note),
            "events:channel": hub.channel_event,
            "events:chat": hub.chat_event,
            "usage": hub.usage,
        }
        for name, handler in events.items():
            sio.on(name, self._guard(name, handler))

    def register(self, name: str, handler: EventHandler, *, paced: bool = False) -> None:
        """Add a client event (used by documents and tasks). A ``paced`` event is not
        refused for the session's event rate: its handler paces it (documents, SPEC §5)."""
        self.sio.on(name, self._guard(name, handler, paced=paced))

    def on_session_closed(self, hook: Callable[[str], Awaitable[None]]) -> None:
        """Run ``hook(sid)`` when a session disconnects, before it leaves the pool."""
        self._close_hooks.append(hook)

    async def on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        pool = self.hub.pool
        try:
            if self.draining():
                raise RtctlError(
                    "the server is draining; reconnect to another node", code="draining"
                )
            scope = environ.get("asgi.scope") or {}
            client = scope.get("client") or ("unknown", 0)
            pool.allow_connect(str(client[0]))
            token = auth.get("token") if isinstance(auth, dict) else None
            headers = _forwarded_headers(scope)
            identity = await pool.authenticate(token, sid=sid, headers=headers)
            await pool.open(sid, identity, headers)
        except RtctlError as exc:
            self.metrics.refused.inc(exc.code)
            self._close_refused(sid)
            raise socketio.exceptions.ConnectionRefusedError(exc.message, exc.to_dict()) from None
        except Exception as exc:  # a backend fault must refuse, never leave the socket half-open
            log.exception("connect failed")
            self.metrics.refused.inc("internal")
            self._close_refused(sid)
            raise socketio.exceptions.ConnectionRefusedError(
                "internal error", {"code": "internal", "message": "internal error"}
            ) from exc
        self._arm_expiry(sid, identity.expires_at)
        self.metrics.connects.inc()

    def _close_refused(self, sid: str) -> None:
        """Close the Engine.IO connection under a refused connect.

        python-socketio keeps it open after sending CONNECT_ERROR, trusting the client
        to hang up; a hostile one would not, and would hold a socket without any token.
        The close waits a moment so the CONNECT_ERROR reaches the client first, and is
        skipped if the client has since connected on the same connection.
        """
        eio_sid = self.sio.manager.eio_sid_from_sid(sid, "/")
        if eio_sid is None:
            return

        async def close() -> None:
            await asyncio.sleep(REFUSED_CLOSE_DELAY)
            if self.sio.manager.sid_from_eio_sid(eio_sid, "/") is None:
                await self.sio.eio.disconnect(eio_sid)

        task = asyncio.ensure_future(close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def on_disconnect(self, sid: str, *args: Any) -> None:
        eio_sid = self.sio.manager.eio_sid_from_sid(sid, "/")
        if eio_sid is not None:  # a client that left the namespace ("41") but kept its
            self.sio.expire_unauthenticated_later(eio_sid)  # connection has a while to return
        timer = self._expiry.pop(sid, None)
        if timer is not None:
            timer.cancel()
        self._in_order.pop(sid, None)
        self.transport.fail_calls(sid)
        for hook in self._close_hooks:
            try:
                await hook(sid)
            except Exception:  # one failing hook must not keep the session in the pool
                log.exception("disconnect hook failed for %s", sid)
        try:
            await self.hub.pool.close(sid)
        except RtctlError as exc:
            log.warning("could not remove session %s from the pool: %s", sid, exc.message)

    async def on_unknown(self, event: str, sid: str, *args: Any) -> Any:
        self.metrics.events_in.inc("unknown")
        try:
            self.hub.pool.allow_event(sid)  # unknown events count against the rate too
        except RtctlError as exc:
            return await self._refuse(sid, event, exc)
        shown = event if len(event) <= payload.MAX_EVENT_NAME else event[:128] + "..."
        return await self._refuse(
            sid, event, RtctlError(f"unknown event {shown!r}", code="unknown_event")
        )

    def _guard(
        self, name: str, handler: EventHandler, *, paced: bool = False
    ) -> Callable[..., Awaitable[Any]]:
        async def handle(sid: str, *args: Any) -> Any:
            self.metrics.events_in.inc(name)
            try:
                if paced:
                    return await handler(sid, args[0] if args else None)
                self.hub.pool.allow_event(sid)
                async with self._order_of(sid):
                    return await handler(sid, args[0] if args else None)
            except RtctlError as exc:
                return await self._refuse(sid, name, exc)
            except Exception:
                log.exception("handler %s failed", name)
                return await self._refuse(sid, name, RtctlError("internal error", code="internal"))

        return handle

    def _order_of(self, sid: str) -> asyncio.Lock | contextlib.nullcontext[None]:
        lock = self._in_order.get(sid)
        if lock is None:
            if not self.hub.pool.hosts(sid):  # gone (or never here): nothing to order
                return contextlib.nullcontext()
            lock = self._in_order[sid] = asyncio.Lock()
        return lock

    async def _refuse(self, sid: str, event: str, exc: RtctlError) -> dict[str, Any]:
        self.metrics.errors.inc(exc.code)
        body = {
            "event": event if len(event) <= payload.MAX_EVENT_NAME else event[:128],
            **exc.to_dict(),
        }
        await self.sio.emit("error", body, to=sid)
        return {"ok": False, "error": exc.to_dict()}

    def _with_expiry(self, handler: EventHandler) -> EventHandler:
        """After a re-authentication, the session lives until the new token expires."""

        async def handle(sid: str, data: Any) -> Any:
            result = await handler(sid, data)
            self._arm_expiry(sid, self.hub.pool.identity(sid).expires_at)
            return result

        return handle

    def _arm_expiry(self, sid: str, expires_at: float | None) -> None:
        """Disconnect a session when its token expires, so no expired identity stays connected.

        The same clock leeway applies as at connect: a token accepted there is not cut
        off the moment after.
        """
        old = self._expiry.pop(sid, None)
        if old is not None:
            old.cancel()
        if expires_at is None:
            return
        loop = asyncio.get_running_loop()
        delay = max(0.0, expires_at + CLOCK_LEEWAY - time.time())
        self._expiry[sid] = loop.call_later(
            delay, lambda: asyncio.ensure_future(self.transport.disconnect(sid))
        )


def _forwarded_headers(scope: dict[str, Any]) -> dict[str, str]:
    """The request headers the auth hook is told (bounded: they are the client's)."""
    out = {}
    for name, value in scope.get("headers") or ():
        key = name.decode("latin-1").lower()
        if key in ("user-agent", "x-forwarded-for"):
            out[key] = value.decode("latin-1")[:1024]
    return out
