"""The metrics registry: counters, gauges, labels, snapshot and Prometheus text exposition."""

from __future__ import annotations

import importlib.util
import re

import pytest

from rpcnet_runtime.cluster.types import (
    Member,
    NodeFailed,
    NodeJoined,
    NodeLeft,
    NodeRecovered,
    PartitionDetected,
    PartitionHealed,
)
from rpcnet_runtime.metrics import ClusterMetrics, MetricsRegistry, render_text

NODE = Member("n1", "127.0.0.1:1")


def test_counters_and_gauges_with_labels() -> None:
    r = MetricsRegistry()
    calls = r.counter("calls_total", "Calls.", ["worker"])
    up = r.gauge("up", "Up.")
    calls.inc(worker="a")
    calls.inc(2, worker="a")
    calls.inc(worker="b")
    up.set(3)
    up.dec()
    assert calls.value(worker="a") == 3
    assert calls.value(worker="zzz") == 0
    assert r.snapshot() == {"calls_total": {"worker=a": 3, "worker=b": 1}, "up": 2}
    calls.remove(worker="b")
    assert r.snapshot()["calls_total"] == {"worker=a": 3}


def test_bad_use_is_refused() -> None:
    r = MetricsRegistry()
    c = r.counter("c_total", "C.", ["worker"])
    with pytest.raises(ValueError, match="only goes up"):
        c.inc(-1, worker="a")
    with pytest.raises(ValueError, match="takes labels"):
        c.inc(zone="x")
    with pytest.raises(ValueError, match="already registered"):
        r.gauge("c_total", "again")
    with pytest.raises(ValueError, match="bad metric name"):
        r.counter("1bad", "x")
    with pytest.raises(ValueError, match="bad label name"):
        r.counter("ok", "x", ["__reserved"])


def test_builtin_exposition_format() -> None:
    r = MetricsRegistry()
    c = r.counter("rpc_calls_total", "Calls, per worker.\nSecond line.", ["worker"])
    g = r.gauge("rpc_healthy", "Healthy workers.")
    c.inc(5, worker='we"ird\\name')
    c.inc(worker="plain")
    g.set(2.5)
    text = r.exposition(use_prometheus_client=False)
    assert text == (
        "# HELP rpc_calls_total Calls, per worker.\\nSecond line.\n"
        "# TYPE rpc_calls_total counter\n"
        'rpc_calls_total{worker="plain"} 1.0\n'
        'rpc_calls_total{worker="we\\"ird\\\\name"} 5.0\n'
        "# HELP rpc_healthy Healthy workers.\n"
        "# TYPE rpc_healthy gauge\n"
        "rpc_healthy 2.5\n"
    )
    sample = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_]\w*="([^"\\]|\\.)*",?)*\})? \S+$')
    for line in text.splitlines():
        assert line.startswith("# ") or sample.match(line), line


def test_special_values_render_as_prometheus_expects() -> None:
    r = MetricsRegistry()
    g = r.gauge("g", "G.", ["k"])
    g.set(float("inf"), k="a")
    g.set(float("-inf"), k="b")
    g.set(float("nan"), k="c")
    lines = render_text(r.families()).splitlines()[2:]
    assert lines == ['g{k="a"} +Inf', 'g{k="b"} -Inf', 'g{k="c"} NaN']
    assert render_text([]) == ""


def test_cluster_metrics_count_events() -> None:
    m = ClusterMetrics()
    for event in (
        NodeJoined(NODE),
        NodeFailed(NODE),
        NodeRecovered(NODE),
        NodeFailed(NODE),
        NodeLeft(NODE),
        PartitionDetected(frozenset({"a"}), frozenset({"b", "c"})),
    ):
        m.observe_event(event)
    snap = m.snapshot()
    assert snap["rpcnet_cluster_node_failures_total"] == 2
    assert snap["rpcnet_cluster_node_recoveries_total"] == 1
    assert snap["rpcnet_cluster_node_joins_total"] == 1
    assert snap["rpcnet_cluster_node_leaves_total"] == 1
    assert snap["rpcnet_cluster_partitions_total"] == 1
    assert snap["rpcnet_cluster_partition_active"] == 1
    m.observe_event(PartitionHealed())
    assert m.snapshot()["rpcnet_cluster_partition_active"] == 0
    m.retries.inc(3)
    m.breaker_openings.inc(worker="w1")
    m.set_health_counts(2, 1, 0)
    text = m.registry.exposition(use_prometheus_client=False)
    assert "rpcnet_calls_retries_total 3.0" in text
    assert 'rpcnet_breaker_openings_total{worker="w1"} 1.0' in text
    assert "rpcnet_cluster_healthy_nodes 2.0" in text
    assert "# TYPE rpcnet_cluster_node_failures_total counter" in text


def test_exposition_through_prometheus_client() -> None:
    if importlib.util.find_spec("prometheus_client") is None:
        pytest.skip("prometheus_client is not installed (optional extra 'prometheus')")
    r = MetricsRegistry()
    r.counter("rpc_calls_total", "Calls.", ["worker"]).inc(4, worker="a")
    r.gauge("rpc_healthy", "Healthy.").set(2)
    text = r.exposition()
    assert 'rpc_calls_total{worker="a"} 4.0' in text
    assert "rpc_healthy 2.0" in text
    assert "# TYPE rpc_healthy gauge" in text


def test_exposition_falls_back_without_prometheus_client() -> None:
    r = MetricsRegistry()
    r.gauge("x", "X.").set(1)
    if importlib.util.find_spec("prometheus_client") is None:
        assert r.exposition() == r.exposition(use_prometheus_client=False)
    assert "x 1.0" in r.exposition()


def test_remove_by_partial_labels() -> None:
    r = MetricsRegistry()
    c = r.counter("calls_total", "Calls.", ["worker", "outcome"])
    c.inc(worker="a", outcome="ok")
    c.inc(worker="a", outcome="failed")
    c.inc(worker="b", outcome="ok")
    assert c.remove(worker="a") == 2
    assert r.snapshot()["calls_total"] == {"worker=b,outcome=ok": 1}
    with pytest.raises(ValueError, match="no labels"):
        c.remove(zone="x")


def test_series_are_bounded() -> None:
    r = MetricsRegistry()
    g = r.gauge("g", "G.", ["k"])
    g.max_series = 3
    for i in range(5):
        g.set(i, k=str(i))
    g.set(7, k="0")  # existing series still update
    assert r.snapshot()["g"] == {"k=0": 7, "k=1": 1, "k=2": 2}
    assert g.dropped_series == 2
