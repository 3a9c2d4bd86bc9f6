"""Assembling a daemon from settings: backend, verifier, Socket.IO server, hub, admin API.

The one place where embedded and Redis deployments differ in the daemon: which
manager delivers room emits (this process only, or across nodes over Redis pub/sub)
and how commands reach the node owning a session (in-process, or its channel).
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass
from typing import Any

from rtctl._version import __version__
from rtctl.auth import TokenVerifier
from rtctl.config import Settings
from rtctl.docs import open_doc_store
from rtctl.docs.health import WatchedStore
from rtctl.docs.inbox import Pace
from rtctl.docs.limits import DocLimits
from rtctl.docs.operator import DocOperator
from rtctl.docs.service import DocService
from rtctl.hooks import AppLink
from rtctl.hub.hub import Hub
from rtctl.hub.operator import Operator
from rtctl.hub.peers import Command, LocalPeers, Peers
from rtctl.hub.sessions import SessionPool
from rtctl.server import strictjson
from rtctl.server.admin import AdminApp
from rtctl.server.admin_dashboard import declare_dashboard_routes
from rtctl.server.admin_tail import declare_tail_routes
from rtctl.server.admin_tokens import declare_token_routes
from rtctl.server.logs import audit
from rtctl.server.looplag import LoopLag
from rtctl.server.manager import FanoutManager
from rtctl.server.metrics import CounterFn, Gauge, Metrics
from rtctl.server.sio import HubServer, SocketIOEndpoint, SocketIOTransport
from rtctl.state import open_state
from rtctl.state.base import NodeRecord, StateBackend


@dataclass
class Readiness:
    started: bool = False
    draining: bool = False
    bus: Any = None  # Redis mode: not ready while the listener is not subscribed
    docs: Any = None  # rtctl.docs.health.WatchedStore: not ready while it fails to write

    def check(self) -> tuple[bool, str]:
        if self.draining:
            return False, "draining"
        if not self.started:
            return False, "starting"
        if self.bus is not None and not self.bus.connected.is_set():
            return False, "not subscribed to Redis yet"
        if self.docs is not None and self.docs.failure is not None:
            return False, f"document store failing: {self.docs.failure}"
        return True, "ok"


@dataclass
class Components:
    settings: Settings
    sio: HubServer
    hub: Hub
    operator: Operator
    endpoint: SocketIOEndpoint
    admin: AdminApp
    metrics: Metrics
    readiness: Readiness
    asgi: Any
    bus: Any = None  # rtctl.server.bus.RedisBus in a Redis deployment
    reaper: Any = None  # rtctl.state.reaper.Reaper in a Redis deployment
    docs: Any = None  # rtctl.docs.service.DocService
    tasks: Any = None  # rtctl.tasks.runner.TaskRunner
    link: AppLink | None = None  # the auth hook and webhooks
    revocations: Any = None  # rtctl.state.revocation_keeper.RevocationKeeper (Redis mode)
    loop_lag: LoopLag | None = None  # run by the daemon; read by the node's heartbeat


def build(settings: Settings, admin_token: str, jwt_secret: str | None) -> Components:
    import socketio

    state = open_state(settings)
    verifier = TokenVerifier.from_settings(settings, secret=jwt_secret)
    node_id = settings.effective_node_id
    manager = _manager(settings, node_id)
    sio = _server(settings, manager)
    readiness = Readiness()
    # the gauges read objects created below; closures see them once they exist
    metrics = Metrics(
        connections=lambda: len(sio.eio.sockets),
        sessions=lambda: len(pool),
        pending_calls=lambda: transport.pending_calls(),
        bus_dropped=lambda: (bus.dropped if bus else 0) + getattr(manager, "foreign_dropped", 0),
    )
    transport = SocketIOTransport(sio, metrics)
    link = AppLink.from_settings(settings, state)
    pool = SessionPool(
        state, transport, verifier, node_id,
        max_sessions_per_user=settings.max_sessions_per_user,
        event_rate=settings.rate_limit, event_burst=settings.rate_burst,
        connect_rate=settings.connect_rate, hook=link.auth,
    )  # fmt: skip
    now = time.time()
    node = NodeRecord(node_id, socket.gethostname(), os.getpid(), __version__, now, now,
                      url=f"http://{settings.host}:{settings.port}")  # fmt: skip
    hub = Hub(state, transport, pool, node, usage_ttl=settings.usage_ttl,
              call_timeout=settings.call_timeout)  # fmt: skip
    hub.webhooks = link.webhooks
    lag = LoopLag()
    metrics.add(Gauge("rtctl_event_loop_lag_seconds",
                      "Worst delay of the event loop over the last 5 s", lag.gauge))  # fmt: skip
    hub.stats = lambda: {
        "events_in": int(metrics.events_in.total()), "events_out": int(metrics.events_out.total()),
        "deliveries": manager.deliveries, "connects": int(metrics.connects.total()),
        "loop_lag_ms": lag.take_worst_ms(), "connections": len(sio.eio.sockets),
    }  # fmt: skip
    peers, bus = _peers(settings, state, manager, hub)
    readiness.bus = bus
    reaper = _reaper(state, node_id)

    async def cleanup(dry_run: bool) -> dict[str, Any]:
        if reaper is None:  # embedded: one node, which cannot be dead while it answers
            return {"dry_run": dry_run, "complete": True, "sessions": 0, "nodes": []}
        return (await reaper.sweep(dry_run=dry_run)).to_json()

    operator = Operator(state, peers, transport, call_timeout=settings.call_timeout,
                        hook_cache=link.cache)  # fmt: skip
    endpoint = SocketIOEndpoint(sio, hub, transport, metrics, lambda: readiness.draining)
    docs = _docs(settings, pool, transport, state, link)
    readiness.docs = docs.store
    if bus is not None:  # relays lost while Redis was away: each node delivers its copies anew
        bus.on_recovered.append(docs.redeliver)
    _doc_metrics(metrics, docs)
    _link_metrics(metrics, link)
    for name, handler in docs.events().items():
        endpoint.register(name, handler, paced=name in docs.PACED)
    endpoint.on_session_closed(docs.session_closed)
    hub.on_reauthenticated.append(docs.reauthenticated)
    tasks = _tasks(settings, state, transport, pool, hub, endpoint, operator)
    admin = AdminApp(operator, node_id, metrics, admin_token, readiness.check, settings.max_payload,
                     cleanup, DocOperator(docs.store, state))  # fmt: skip
    declare_token_routes(admin.router, operator)
    declare_tail_routes(admin.router, manager.taps, operator)
    declare_dashboard_routes(admin.router)
    asgi = socketio.ASGIApp(sio, other_asgi_app=admin, socketio_path=settings.path.strip("/"))
    return Components(settings, sio, hub, operator, endpoint, admin, metrics, readiness, asgi, bus,
                      reaper, docs, tasks, link, _revocation_keeper(settings, state),
                      lag)  # fmt: skip


def _doc_metrics(metrics: Metrics, docs: DocService) -> None:
    stats = docs.stats
    metrics.add(
        CounterFn("rtctl_doc_reconnects_total",
                  "Sessions disconnected so their clients rejoin and resync a document",
                  lambda: stats.reconnects),
        CounterFn("rtctl_doc_history_requests_total",
                  "Requests to a session for document history the hub lacks",
                  lambda: stats.history_requests),
        Gauge("rtctl_doc_held_updates", "Updates waiting for their history", lambda: stats.held),
        Gauge("rtctl_doc_backlog_bytes", "Document traffic waiting in sessions' inboxes",
              lambda: stats.backlog_bytes),
    )  # fmt: skip


def _server(settings: Settings, manager: FanoutManager) -> HubServer:
    cors: list[str] | str | None = list(settings.cors_origins) or None
    sio = HubServer(
        async_mode="asgi",
        cors_allowed_origins="*" if cors == ["*"] else cors,
        max_http_buffer_size=settings.max_payload,
        always_connect=False,
        client_manager=manager,
        json=strictjson,
        logger=False,
        engineio_logger=False,
    )
    sio.connect_timeout = settings.connect_timeout
    return sio


def _link_metrics(metrics: Metrics, link: AppLink) -> None:
    if link.auth is not None:
        hook = link.auth.stats
        metrics.add(
            CounterFn("rtctl_auth_hook_calls_total", "Requests sent to the auth hook",
                      lambda: hook.calls),
            CounterFn("rtctl_auth_hook_cache_hits_total",
                      "Auth hook answers reused (cached, or shared with a call in flight)",
                      lambda: hook.hits),
            CounterFn("rtctl_auth_hook_failures_total",
                      "Auth hook calls unanswered in time or answered badly",
                      lambda: hook.failures),
        )  # fmt: skip
    if link.webhooks is not None:
        sender = link.webhooks
        sent = sender.stats
        metrics.add(
            CounterFn("rtctl_webhooks_sent_total", "Webhooks the app accepted", lambda: sent.sent),
            CounterFn("rtctl_webhook_retries_total", "Webhook tries that failed and were retried",
                      lambda: sent.retries),
            CounterFn("rtctl_webhooks_failed_total", "Webhooks refused or out of tries",
                      lambda: sent.failed),
            CounterFn("rtctl_webhooks_dropped_total", "Webhooks pushed out of a full queue",
                      lambda: sent.dropped),
            Gauge("rtctl_webhook_queue", "Webhooks waiting to be sent", sender.queued),
        )  # fmt: skip


def _docs(
    settings: Settings,
    pool: SessionPool,
    transport: SocketIOTransport,
    state: StateBackend,
    link: AppLink,
) -> DocService:
    pace = Pace(settings.doc_rate, settings.doc_burst, settings.doc_backlog_bytes,
                settings.doc_backlog_seconds)  # fmt: skip
    limits = DocLimits(settings.doc_max_items, settings.doc_max_clients,
                       settings.doc_max_array_state)  # fmt: skip
    return DocService(WatchedStore(open_doc_store(settings)), pool, transport, state,
                      max_update=min(settings.doc_max_update, settings.max_payload),
                      compact_updates=settings.doc_compact_updates, pace=pace,
                      limits=limits, watcher=link.documents)  # fmt: skip


def _tasks(
    settings: Settings,
    state: StateBackend,
    transport: SocketIOTransport,
    pool: SessionPool,
    hub: Hub,
    endpoint: SocketIOEndpoint,
    operator: Operator,
) -> Any:
    """The task runner with the chat kinds, ``task:resume``, its command ops, and the
    app (``--app``)."""
    from rtctl.tasks.app import App, load_app
    from rtctl.tasks.chat import ChatCompletions
    from rtctl.tasks.resume import TaskResume
    from rtctl.tasks.runner import TaskRunner

    runner = TaskRunner(state, transport, hub.node.id, settings)
    chat = ChatCompletions(runner, pool)
    events = {**chat.events(), **TaskResume(pool, operator).events()}
    for name, handler in events.items():
        endpoint.register(name, handler)
    hub.add_command("tasks_stop", runner.handle_command)
    hub.add_command("tasks_start", runner.handle_start)
    hub.add_command("tasks_so_far", runner.handle_so_far)
    if settings.app:
        load_app(settings.app, App(runner, chat, pool, transport, endpoint.register))
    return runner


def _revocation_keeper(settings: Settings, state: StateBackend) -> Any:
    if settings.embedded:  # the embedded state keeps its revocations in the data dir
        return None
    from rtctl.state.revocation_keeper import RevocationKeeper

    return RevocationKeeper(state, settings.data_path)


AUDITED_OPS = frozenset({"kick", "revoke", "rooms", "tasks_stop", "tasks_start", "emit", "call"})


def audited(handler: Any) -> Any:
    """A node's command handler that leaves an audit line for each command another
    node, the CLI or the Python client sent it (rtctl.server.logs)."""

    async def handle(command: Command) -> dict[str, Any]:
        reply: dict[str, Any] = await handler(command)
        op = command.get("op")
        if op in AUDITED_OPS:
            target = {k: v for k, v in command.items()
                      if k not in ("op", "reply", "from", "data")}  # fmt: skip
            result = "ok" if "error" not in reply else str(reply["error"].get("code"))
            audit(str(command.get("from") or "a peer"), f"command {op}", target, result)
        return reply

    return handle


def _reaper(state: StateBackend, node_id: str) -> Any:
    from rtctl.state.redis import RedisState

    if not isinstance(state, RedisState):
        return None
    from rtctl.state.reaper import Reaper

    return Reaper(state, node_id)


def _manager(settings: Settings, node_id: str) -> FanoutManager:
    if settings.embedded:
        return FanoutManager()
    from rtctl.server.cluster import ClusterManager
    from rtctl.state.keys import Keys

    return ClusterManager(Keys(settings.prefix), node_id)


def _peers(
    settings: Settings, state: StateBackend, manager: FanoutManager, hub: Hub
) -> tuple[Peers, Any]:
    if settings.embedded:
        return LocalPeers(hub.node.id, hub.handle_command), None
    from rtctl.server.bus import RedisBus
    from rtctl.server.cluster import ClusterManager
    from rtctl.state.redis import RedisState
    from rtctl.state.redis_peers import RedisPeers

    assert isinstance(state, RedisState) and isinstance(manager, ClusterManager)
    peers = RedisPeers(state.redis, state.keys, state.live_node_ids, sharded=settings.redis_cluster,
                       node_id=hub.node.id, local=hub.handle_command)  # fmt: skip

    async def on_command(command: Command) -> None:
        await peers.answer(command, audited(hub.handle_command))

    bus = RedisBus(state.redis, state.keys.node_channel(hub.node.id), manager.deliver,
                   sharded=settings.redis_cluster)  # fmt: skip
    manager.attach(bus, on_command)
    return peers, bus
