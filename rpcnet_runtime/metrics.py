"""A tiny metrics registry (counters and gauges with labels) and Prometheus text exposition.

`MetricsRegistry` holds `Counter` and `Gauge` families; `snapshot()` returns plain numbers for
JSON or a status view, and `exposition()` renders the Prometheus text format (version 0.0.4):
through the optional ``prometheus_client`` when it is installed (``pip install
rpcnet[prometheus]``), otherwise with the small writer below, which produces the same format.

`ClusterMetrics` is the set the failure-handling chapter asks for (node failures, partitions,
retries, breaker openings, healthy nodes ...), under ``rpcnet_`` names, with helpers that
count cluster events. Nothing here does I/O or reads a clock.
"""

from __future__ import annotations

import importlib
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from .cluster.types import (
    ClusterEvent,
    NodeFailed,
    NodeJoined,
    NodeLeft,
    NodeRecovered,
    PartitionDetected,
    PartitionHealed,
)

__all__ = [
    "ClusterMetrics",
    "Counter",
    "Gauge",
    "MetricFamily",
    "MetricsRegistry",
    "render_text",
]

_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_MAX_SERIES = 10_000

LabelValues = tuple[str, ...]


class MetricFamily:
    """One named metric and its series, one per combination of label values."""

    kind = "untyped"

    def __init__(self, name: str, help: str, labelnames: Iterable[str] = ()) -> None:
        if not _NAME.match(name):
            raise ValueError(f"bad metric name {name!r}")
        self.name = name
        self.help = help
        self.labelnames: tuple[str, ...] = tuple(labelnames)
        for label in self.labelnames:
            if not _LABEL.match(label) or label.startswith("__"):
                raise ValueError(f"bad label name {label!r} for {name}")
        if len(set(self.labelnames)) != len(self.labelnames):
            raise ValueError(f"duplicate label names for {name}")
        self._values: dict[LabelValues, float] = {}
        self.max_series = _MAX_SERIES
        """Series kept at most; further label combinations are counted in `dropped_series`."""
        self.dropped_series = 0
        if not self.labelnames:
            self._values[()] = 0.0

    def _key(self, labels: Mapping[str, str]) -> LabelValues:
        if set(labels) != set(self.labelnames):
            raise ValueError(
                f"{self.name} takes labels {list(self.labelnames)}, got {sorted(labels)}"
            )
        return tuple(str(labels[n]) for n in self.labelnames)

    def _add(self, labels: Mapping[str, str], amount: float) -> None:
        key = self._key(labels)
        if key in self._values:
            self._values[key] += amount
        elif len(self._values) < self.max_series:
            self._values[key] = amount
        else:
            self.dropped_series += 1  # bounded memory: a new series past the cap is not kept

    def value(self, **labels: str) -> float:
        """The current value of one series (0 if it was never touched)."""
        return self._values.get(self._key(labels), 0.0)

    def series(self) -> list[tuple[dict[str, str], float]]:
        """Every series as (labels, value), in a stable order."""
        return [
            (dict(zip(self.labelnames, k, strict=True)), v) for k, v in sorted(self._values.items())
        ]

    def remove(self, **labels: str) -> int:
        """Drop every series whose labels include `labels` (a worker that left, say);
        returns how many were dropped."""
        unknown = set(labels) - set(self.labelnames)
        if unknown:
            raise ValueError(f"{self.name} has no labels {sorted(unknown)}")
        if not self.labelnames:
            return 0  # the one unlabelled series is never dropped
        index = {n: i for i, n in enumerate(self.labelnames)}
        doomed = [
            key for key in self._values if all(key[index[n]] == str(v) for n, v in labels.items())
        ]
        for key in doomed:
            del self._values[key]
        return len(doomed)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, series={len(self._values)})"


class Counter(MetricFamily):
    """A monotonically increasing count."""

    kind = "counter"

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        if amount < 0 or not math.isfinite(amount):
            raise ValueError(f"a counter only goes up, got {amount!r}")
        self._add(labels, amount)


class Gauge(MetricFamily):
    """A value that goes up and down."""

    kind = "gauge"

    def set(self, value: float, **labels: str) -> None:
        key = self._key(labels)
        self._add(labels, 0.0)
        if key in self._values:
            self._values[key] = float(value)

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        self._add(labels, amount)

    def dec(self, amount: float = 1.0, **labels: str) -> None:
        self.inc(-amount, **labels)


_F = TypeVar("_F", bound=MetricFamily)


class MetricsRegistry:
    """Named metric families; names are unique within a registry."""

    def __init__(self) -> None:
        self._families: dict[str, MetricFamily] = {}

    def counter(self, name: str, help: str, labelnames: Iterable[str] = ()) -> Counter:
        return self._add(Counter(name, help, labelnames))

    def gauge(self, name: str, help: str, labelnames: Iterable[str] = ()) -> Gauge:
        return self._add(Gauge(name, help, labelnames))

    def _add(self, family: _F) -> _F:
        if family.name in self._families:
            raise ValueError(f"metric {family.name!r} is already registered")
        self._families[family.name] = family
        return family

    def families(self) -> list[MetricFamily]:
        return [self._families[n] for n in sorted(self._families)]

    def get(self, name: str) -> MetricFamily | None:
        return self._families.get(name)

    def snapshot(self) -> dict[str, float | dict[str, float]]:
        """Plain numbers: an unlabelled metric maps to its value, a labelled one to
        ``{"label=value,...": value}`` per series."""
        out: dict[str, float | dict[str, float]] = {}
        for family in self.families():
            if not family.labelnames:
                out[family.name] = family.value()
                continue
            out[family.name] = {
                ",".join(f"{k}={v}" for k, v in labels.items()): value
                for labels, value in family.series()
            }
        return out

    def exposition(self, *, use_prometheus_client: bool = True) -> str:
        """Prometheus text format, via ``prometheus_client`` when it is installed."""
        if use_prometheus_client:
            rendered = _render_with_prometheus_client(self.families())
            if rendered is not None:
                return rendered
        return render_text(self.families())

    def __repr__(self) -> str:
        return f"MetricsRegistry(families={len(self._families)})"


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def render_text(families: Iterable[MetricFamily]) -> str:
    """The built-in Prometheus text exposition (format 0.0.4) of `families`."""
    lines: list[str] = []
    for family in families:
        lines.append(f"# HELP {family.name} {_escape_help(family.help)}")
        lines.append(f"# TYPE {family.name} {family.kind}")
        for labels, value in family.series():
            rendered = ",".join(f'{k}="{_escape_label(v)}"' for k, v in labels.items())
            name = f"{family.name}{{{rendered}}}" if rendered else family.name
            lines.append(f"{name} {_number(value)}")
    return "\n".join(lines) + "\n" if lines else ""


def _render_with_prometheus_client(families: list[MetricFamily]) -> str | None:
    """Exposition by ``prometheus_client`` (None when it is not installed)."""
    try:
        core = importlib.import_module("prometheus_client.core")
        exposition = importlib.import_module("prometheus_client.exposition")
    except ImportError:
        return None
    kinds = {"counter": core.CounterMetricFamily, "gauge": core.GaugeMetricFamily}

    class _Bridge:
        def collect(self) -> Iterable[Any]:
            for family in families:
                metric = kinds[family.kind](
                    family.name, family.help, labels=list(family.labelnames)
                )
                for labels, value in family.series():
                    metric.add_metric([labels[n] for n in family.labelnames], value)
                yield metric

    registry = core.CollectorRegistry(auto_describe=False)
    registry.register(_Bridge())
    text: bytes = exposition.generate_latest(registry)
    return text.decode("utf-8")


class ClusterMetrics:
    """The counters and gauges of the failure-handling chapter, in one registry."""

    def __init__(self, registry: MetricsRegistry | None = None) -> None:
        self.registry = registry if registry is not None else MetricsRegistry()
        r = self.registry
        self.node_joins = r.counter("rpcnet_cluster_node_joins_total", "Nodes seen joining.")
        self.node_failures = r.counter(
            "rpcnet_cluster_node_failures_total", "Nodes declared failed."
        )
        self.node_recoveries = r.counter(
            "rpcnet_cluster_node_recoveries_total", "Failed nodes seen alive again."
        )
        self.node_leaves = r.counter("rpcnet_cluster_node_leaves_total", "Nodes that left.")
        self.partitions = r.counter(
            "rpcnet_cluster_partitions_total", "Network partitions detected."
        )
        self.partition_active = r.gauge(
            "rpcnet_cluster_partition_active", "1 while this node sees a partition."
        )
        self.nodes = r.gauge(
            "rpcnet_cluster_nodes", "Members known to the registry, by health.", ["health"]
        )
        self.healthy_nodes = r.gauge("rpcnet_cluster_healthy_nodes", "Healthy members.")
        self.calls_in_flight = r.gauge(
            "rpcnet_cluster_calls_in_flight", "Calls in flight per worker.", ["worker"]
        )
        self.worker_calls = r.counter(
            "rpcnet_cluster_worker_calls_total",
            "Calls ended per worker and outcome.",
            ["worker", "outcome"],
        )
        self.retries = r.counter("rpcnet_calls_retries_total", "Retry attempts sent.")
        self.hedges = r.counter("rpcnet_calls_hedges_total", "Hedged attempts sent.")
        self.failovers = r.counter(
            "rpcnet_calls_failovers_total", "Attempts moved to another worker."
        )
        self.failed_calls = r.counter(
            "rpcnet_calls_failed_total", "Logical calls that failed after all attempts."
        )
        self.breaker_openings = r.counter(
            "rpcnet_breaker_openings_total", "Circuit breakers opened, per worker.", ["worker"]
        )
        self.outlier_ejections = r.counter(
            "rpcnet_outlier_ejections_total", "Workers ejected as outliers.", ["worker"]
        )
        self.shed = r.counter("rpcnet_calls_shed_total", "Calls refused by an overloaded worker.")
        self.panic_routed = r.counter(
            "rpcnet_calls_panic_routed_total",
            "Attempts sent to an unfit worker because no worker was fit (panic routing).",
        )

    def observe_event(self, event: ClusterEvent) -> None:
        """Count one membership event."""
        if isinstance(event, NodeJoined):
            self.node_joins.inc()
        elif isinstance(event, NodeFailed):
            self.node_failures.inc()
        elif isinstance(event, NodeRecovered):
            self.node_recoveries.inc()
        elif isinstance(event, NodeLeft):
            self.node_leaves.inc()
        elif isinstance(event, PartitionDetected):
            self.partitions.inc()
            self.partition_active.set(1)
        elif isinstance(event, PartitionHealed):
            self.partition_active.set(0)

    def forget_worker(self, worker_id: str) -> None:
        """Drop the per-worker series of a worker that left the cluster."""
        for family in (
            self.calls_in_flight,
            self.worker_calls,
            self.breaker_openings,
            self.outlier_ejections,
        ):
            family.remove(worker=worker_id)

    def set_health_counts(self, healthy: int, degraded: int, failed: int) -> None:
        self.healthy_nodes.set(healthy)
        self.nodes.set(healthy, health="healthy")
        self.nodes.set(degraded, health="degraded")
        self.nodes.set(failed, health="failed")

    def snapshot(self) -> dict[str, float | dict[str, float]]:
        return self.registry.snapshot()

    def exposition(self) -> str:
        return self.registry.exposition()

    def __repr__(self) -> str:
        return f"ClusterMetrics(failures={self.node_failures.value():g})"
