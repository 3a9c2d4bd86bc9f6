"""Prometheus metrics in the text exposition format (version 0.0.4).

A handful of counters, gauges and one histogram; labelled series are created on
first use. Label values come from a bounded set (event names are counted under
``other`` past ``MAX_SERIES``) so a hostile client cannot grow memory.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable

MAX_SERIES = 200
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class Counter:
    def __init__(self, name: str, help: str, label: str | None = None) -> None:
        self.name, self.help, self.label = name, help, label
        self.values: dict[str, float] = {}

    def inc(self, label: str = "", amount: float = 1.0) -> None:
        if label not in self.values and len(self.values) >= MAX_SERIES:
            label = "other"
        self.values[label] = self.values.get(label, 0.0) + amount

    def total(self) -> float:
        """The sum over every label."""
        return sum(self.values.values())

    def render(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} counter"
        if not self.values and self.label is None:
            yield f"{self.name} 0"
        for label, value in sorted(self.values.items()):
            if self.label is None:
                yield f"{self.name} {value:g}"
            else:
                yield f'{self.name}{{{self.label}="{_escape(label)}"}} {value:g}'


class Gauge:
    def __init__(self, name: str, help: str, read: Callable[[], float]) -> None:
        self.name, self.help, self.read = name, help, read

    def render(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} gauge"
        yield f"{self.name} {self.read():g}"


class CounterFn(Gauge):
    """A counter kept by another object, read at scrape time."""

    def render(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} counter"
        yield f"{self.name} {self.read():g}"


class Histogram:
    def __init__(self, name: str, help: str, buckets: tuple[float, ...] = LATENCY_BUCKETS) -> None:
        self.name, self.help, self.buckets = name, help, buckets
        self.counts = [0] * (len(buckets) + 1)
        self.total = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.total += value
        self.count += 1

    def render(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} histogram"
        cumulative = 0
        for bound, n in zip(self.buckets, self.counts, strict=False):
            cumulative += n
            yield f'{self.name}_bucket{{le="{bound:g}"}} {cumulative}'
        yield f'{self.name}_bucket{{le="+Inf"}} {self.count}'
        yield f"{self.name}_sum {self.total:g}"
        yield f"{self.name}_count {self.count}"


class Metrics:
    def __init__(
        self,
        connections: Callable[[], float],
        sessions: Callable[[], float],
        pending_calls: Callable[[], float] = lambda: 0,
        bus_dropped: Callable[[], float] = lambda: 0,
    ) -> None:
        self.events_in = Counter("rtctl_events_in_total", "Events received from clients", "event")
        self.events_out = Counter("rtctl_events_out_total", "Events emitted to clients", "event")
        self.errors = Counter("rtctl_errors_total", "Requests refused or failed", "code")
        self.connects = Counter("rtctl_connects_total", "Connections accepted")
        self.refused = Counter("rtctl_connects_refused_total", "Connections refused", "code")
        self.slow_clients = Counter(
            "rtctl_slow_clients_disconnected_total",
            "Connections closed because their client stopped reading (max_unsent_bytes)",
        )
        self.emit_latency = Histogram(
            "rtctl_emit_latency_seconds", "Time to hand an emit to the transport"
        )
        self._all: list[Counter | Gauge | Histogram] = [
            Gauge("rtctl_connections", "Open Engine.IO connections", connections),
            Gauge("rtctl_sessions", "Authenticated sessions on this node", sessions),
            Gauge("rtctl_pending_calls", "Server-to-client calls awaiting an ack", pending_calls),
            CounterFn("rtctl_bus_dropped_total",
                      "Messages between daemons lost (Redis away, outbox full) or malformed",
                      bus_dropped),
            self.connects, self.refused, self.slow_clients, self.events_in, self.events_out,
            self.errors, self.emit_latency,
        ]  # fmt: skip

    def add(self, *metrics: Counter | Gauge | Histogram) -> None:
        """Metrics another part of the daemon keeps (documents, tasks)."""
        self._all.extend(metrics)

    def render(self) -> str:
        return "\n".join(line for metric in self._all for line in metric.render()) + "\n"
