"""WorkerRegistry: membership events, tag filters, selection, call accounting and health."""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter
from collections.abc import AsyncIterator, Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rpcnet_runtime.cluster.health import CallOutcome, HealthState, OutlierConfig
from rpcnet_runtime.cluster.registry import NoWorkersAvailable, WorkerRegistry, WorkerTable
from rpcnet_runtime.cluster.subscriptions import EventHub
from rpcnet_runtime.cluster.types import (
    ClusterEvent,
    Member,
    MemberState,
    NodeFailed,
    NodeJoined,
    NodeLeft,
    NodeRecovered,
    PartitionDetected,
)
from rpcnet_runtime.errors import RpcError
from rpcnet_runtime.metrics import ClusterMetrics
from rpcnet_runtime.policies.breaker import BreakerConfig, BreakerState
from rpcnet_runtime.status import Status

WORKER = {"role": "worker"}


def member(i: int, state: MemberState = MemberState.ALIVE, **tags: str) -> Member:
    return Member(f"w{i}", f"127.0.0.1:{7000 + i}", {"role": "worker", **tags}, state)


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


class FakeMembership:
    def __init__(self, members: list[Member], queue_size: int = 64) -> None:
        self.list = list(members)
        self.hub = EventHub(queue_size=queue_size)

    def members(self) -> list[Member]:
        return list(self.list)

    def subscribe(self) -> AsyncIterator[ClusterEvent]:
        return self.hub.subscribe()


def make(
    n: int = 3,
    strategy: str = "least_connections",
    *,
    clock: FakeClock | None = None,
    **kwargs: object,
) -> tuple[WorkerRegistry, FakeMembership, FakeClock]:
    clock = clock or FakeClock()
    membership = FakeMembership([member(i) for i in range(n)])
    registry = WorkerRegistry(
        membership,
        strategy,
        rng=random.Random(1),
        clock=clock,
        **kwargs,  # type: ignore[arg-type]
    )
    return registry, membership, clock


async def until(condition: Callable[[], bool], rounds: int = 200) -> None:
    """Let the registry's task run until `condition` holds (bounded)."""
    for _ in range(rounds):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition not reached")


# -- membership view ------------------------------------------------------------------------------


def test_initial_view_comes_from_members() -> None:
    registry, _, _ = make(3)
    assert [w.id for w in registry.workers()] == ["w0", "w1", "w2"]
    assert all(w.is_healthy and w.in_flight == 0 for w in registry.workers())
    assert not registry.following  # no running loop: nothing to follow yet


def test_events_update_the_view() -> None:
    registry, _, _ = make(2)
    registry.apply(NodeJoined(member(5)))
    assert "w5" in {w.id for w in registry.workers()}
    registry.apply(NodeFailed(member(0)))
    w0 = registry.worker("w0")
    assert w0 is not None and w0.state is MemberState.FAILED
    assert w0.health.state is HealthState.FAILED
    assert {registry.select_worker().id for _ in range(20)} == {"w1", "w5"}
    registry.apply(NodeRecovered(member(0)))
    assert registry.worker("w0").is_healthy  # type: ignore[union-attr]
    registry.apply(NodeLeft(member(1)))
    assert registry.worker("w1") is None
    registry.apply(PartitionDetected(frozenset({"w5"}), frozenset({"w0"})))
    assert [w.id for w in registry.workers()] == ["w0", "w5"]


def test_sync_drops_missing_and_left_members() -> None:
    table = WorkerTable()
    table.sync([member(0), member(1), member(2)])
    table.sync([member(0), member(1, MemberState.LEFT), member(3, MemberState.SUSPECT)])
    assert [w.id for w in table.workers(now=0.0)] == ["w0", "w3"]
    assert table.workers(now=0.0)[1].health.state is HealthState.DEGRADED


async def test_registry_follows_the_subscription() -> None:
    registry, membership, _ = make(2)
    assert registry.following
    membership.hub.publish([NodeJoined(member(7)), NodeFailed(member(0))])
    await until(lambda: registry.worker("w7") is not None)
    await until(lambda: registry.worker("w0").state is MemberState.FAILED)  # type: ignore[union-attr]
    await registry.aclose()
    assert not registry.following
    membership.hub.publish([NodeLeft(member(7))])
    await asyncio.sleep(0)
    assert registry.worker("w7") is not None  # stopped: the last view stays


async def test_lost_events_trigger_a_resync() -> None:
    membership = FakeMembership([member(0)], queue_size=1)
    async with WorkerRegistry(membership, rng=random.Random(0)) as registry:
        membership.list = [member(0), member(1), member(2)]
        membership.hub.publish([NodeJoined(member(1)), NodeJoined(member(2)), NodeLeft(member(9))])
        await until(lambda: len(registry.workers()) == 3)
    assert not registry.following


# -- selection -----------------------------------------------------------------------------------


def test_tag_filters_are_anded() -> None:
    membership = FakeMembership(
        [
            member(0, zone="a", gpu="yes"),
            member(1, zone="a"),
            member(2, zone="b", gpu="yes"),
            Member("d", "127.0.0.1:9", {"role": "client"}),
        ]
    )
    registry = WorkerRegistry(membership, "round_robin", rng=random.Random(0))
    assert {w.id for w in registry.workers(WORKER)} == {"w0", "w1", "w2"}
    assert {w.id for w in registry.workers({"zone": "a", "gpu": "yes"})} == {"w0"}
    picks = {registry.select_worker({"role": "worker", "gpu": "yes"}).id for _ in range(10)}
    assert picks == {"w0", "w2"}
    with pytest.raises(NoWorkersAvailable, match="none of 4 known workers has these tags"):
        registry.select_worker({"zone": "c"})


def test_no_workers_is_an_unavailable_rpc_error() -> None:
    registry, _, _ = make(2)
    with pytest.raises(RpcError) as info:
        registry.select_worker(WORKER, exclude=["w0", "w1"])
    assert isinstance(info.value, NoWorkersAvailable)
    assert info.value.status is Status.UNAVAILABLE
    assert "all 2 matching workers were excluded" in str(info.value)
    assert info.value.excluded == {"w0", "w1"}


def test_exclude_skips_workers() -> None:
    registry, _, _ = make(3, "round_robin")
    assert {registry.select_worker(exclude={"w1"}).id for _ in range(10)} == {"w0", "w2"}


def test_round_robin_share_through_the_registry() -> None:
    registry, _, _ = make(3, "round_robin")
    assert Counter(registry.select_worker().id for _ in range(300)) == {
        "w0": 100,
        "w1": 100,
        "w2": 100,
    }


def test_least_connections_through_call_accounting() -> None:
    registry, _, _ = make(3)
    assert registry.begin_call("w0") and registry.begin_call("w0") and registry.begin_call("w2")
    assert registry.worker("w0").in_flight == 2  # type: ignore[union-attr]
    assert registry.select_worker().id == "w1"
    registry.end_call("w0", 0.01, "success")
    registry.end_call("w0", 0.01, "success")
    assert registry.worker("w0").in_flight == 0  # type: ignore[union-attr]
    assert registry.select_worker(exclude={"w1"}).id == "w0"


def test_p2c_avoids_a_slow_worker_in_the_registry() -> None:
    registry, _, clock = make(3, "p2c")
    for worker, latency in (("w0", 0.01), ("w1", 0.012), ("w2", 1.5)):
        assert registry.begin_call(worker)
        registry.end_call(worker, latency, "success")
    counts = Counter(registry.select_worker().id for _ in range(600))
    assert counts["w2"] == 0 and counts["w0"] > 0 and counts["w1"] > 0
    clock.t += 120  # the slow sample decays; the worker is tried again
    assert registry.worker("w2").latency_ewma < 0.01  # type: ignore[union-attr,operator]


def test_unknown_worker_calls_are_ignored() -> None:
    registry, _, _ = make(1)
    assert not registry.begin_call("nope")
    registry.end_call("nope", 0.1, "failure")  # a worker that left mid-call: no error


def test_failed_workers_are_refused_calls() -> None:
    registry, _, _ = make(2)
    assert registry.begin_call("w0")
    registry.apply(NodeFailed(member(0)))
    assert not registry.begin_call("w0")
    registry.end_call("w0", 0.1, "failure")  # the call in flight ends
    assert registry.worker("w0").in_flight == 0  # type: ignore[union-attr]
    registry.apply(NodeRecovered(member(0)))
    assert registry.begin_call("w0")


# -- health, breaker, ejection --------------------------------------------------------------------


def fail_calls(registry: WorkerRegistry, worker: str, n: int, latency: float = 0.001) -> None:
    for _ in range(n):
        assert registry.begin_call(worker)
        registry.end_call(worker, latency, "failure")


def test_breaker_opens_excludes_then_probes_and_closes() -> None:
    breaker = BreakerConfig(failure_threshold=3, open_duration=5.0)
    registry, _, clock = make(
        3, "round_robin", breaker=breaker, outliers=OutlierConfig(consecutive_failures=50)
    )
    fail_calls(registry, "w1", 3)
    w1 = registry.worker("w1")
    assert w1 is not None and w1.breaker is BreakerState.OPEN
    assert w1.health.state is HealthState.FAILED and w1.health.reason == "breaker open"
    assert not registry.begin_call("w1")
    assert "w1" not in {registry.select_worker().id for _ in range(20)}
    clock.t += 5.0  # half-open: offered again so that a trial can close the breaker
    assert registry.worker("w1").breaker is BreakerState.HALF_OPEN  # type: ignore[union-attr]
    assert "w1" in {registry.select_worker().id for _ in range(6)}
    assert registry.begin_call("w1")
    assert not registry.begin_call("w1")  # one trial at a time
    registry.end_call("w1", 0.01, "success")
    assert registry.worker("w1").is_healthy  # type: ignore[union-attr]


def test_shed_calls_do_not_count_as_failures() -> None:
    registry, _, _ = make(3, breaker=BreakerConfig(failure_threshold=2))
    for _ in range(50):
        assert registry.begin_call("w0")
        registry.end_call("w0", 0.5, "shed")
    w0 = registry.worker("w0")
    assert w0 is not None and w0.is_healthy and w0.breaker is BreakerState.CLOSED
    assert w0.in_flight == 0 and w0.latency_ewma is None
    assert registry.table.outliers.ejections == 0


def test_cancelled_trial_frees_the_half_open_slot() -> None:
    registry, _, clock = make(2, breaker=BreakerConfig(failure_threshold=1, open_duration=1.0))
    fail_calls(registry, "w0", 1)
    clock.t += 1.0
    assert registry.begin_call("w0")
    registry.end_call("w0", 0.2, "cancelled")
    assert registry.begin_call("w0")


def test_outlier_ejection_through_the_registry() -> None:
    registry, _, clock = make(
        4,
        "round_robin",
        breaker=BreakerConfig(failure_threshold=0, failure_rate=None),
        outliers=OutlierConfig(consecutive_failures=3, base_ejection=10.0),
    )
    fail_calls(registry, "w3", 3)
    w3 = registry.worker("w3")
    assert w3 is not None and w3.health.reason == "ejected"
    assert w3.state is MemberState.ALIVE  # gossip is fine; calls are not
    assert "w3" not in {registry.select_worker().id for _ in range(12)}
    assert registry.table.next_deadline() == clock.t + 10.0
    fail_calls(registry, "w0", 3)
    fail_calls(registry, "w1", 3)  # 50% of 4 already out: refused, w1 stays in
    assert {w.id for w in registry.workers() if w.health.reason == "ejected"} == {"w0", "w3"}
    clock.t += 10.0
    assert registry.worker("w3").health.reason != "ejected"  # type: ignore[union-attr]


def test_recent_errors_degrade_and_degraded_workers_are_a_fallback() -> None:
    registry, _, _ = make(2, breaker=BreakerConfig(failure_threshold=0, failure_rate=None),
                          outliers=OutlierConfig(consecutive_failures=100))  # fmt: skip
    for _ in range(4):
        assert registry.begin_call("w0")
        registry.end_call("w0", 0.01, "success")
        assert registry.begin_call("w0")
        registry.end_call("w0", 0.01, "failure")
    w0 = registry.worker("w0")
    assert w0 is not None and w0.is_degraded and w0.health.reason == "4/8 calls failed"
    assert {registry.select_worker().id for _ in range(10)} == {"w1"}
    assert registry.select_worker(exclude={"w1"}).id == "w0"  # degraded beats nothing


def test_fast_failures_do_not_make_a_worker_look_fast() -> None:
    registry, _, _ = make(2, outliers=OutlierConfig(consecutive_failures=100))
    assert registry.begin_call("w0")
    registry.end_call("w0", 0.2, "success")
    fail_calls(registry, "w0", 1, latency=0.0001)
    assert registry.worker("w0").latency_ewma == pytest.approx(0.2)  # type: ignore[union-attr]


def test_phi_source_degrades_and_fails_workers() -> None:
    phis = {"w0": 0.5, "w1": 4.0, "w2": 12.0}
    registry, _, _ = make(3, phi=lambda wid: phis.get(wid, 0.0))
    states = {w.id: w.health.state for w in registry.workers()}
    assert states == {
        "w0": HealthState.HEALTHY,
        "w1": HealthState.DEGRADED,
        "w2": HealthState.FAILED,
    }
    assert registry.worker("w1").phi == 4.0  # type: ignore[union-attr]


# -- rendezvous order ----------------------------------------------------------------------------


def test_order_for_key_is_stable_and_health_aware() -> None:
    registry, _, _ = make(5)
    first = [w.id for w in registry.order_for_key("call-42", WORKER)]
    assert sorted(first) == ["w0", "w1", "w2", "w3", "w4"]
    assert [w.id for w in registry.order_for_key("call-42", WORKER)] == first
    other, _, _ = make(5, "p2c")  # another process, another strategy: same order
    assert [w.id for w in other.order_for_key("call-42", WORKER)] == first

    home, second = first[0], first[1]
    registry.set_phi(home, 5.0)  # degraded: goes to the back
    assert [w.id for w in registry.order_for_key("call-42")] == [*first[1:], home]
    registry.apply(NodeFailed(member(int(second[1:]))))  # failed: left out
    order = [w.id for w in registry.order_for_key("call-42", exclude={first[2]})]
    assert order == [*(w for w in first[3:]), home]


def test_removing_a_worker_only_moves_its_keys() -> None:
    registry, _, _ = make(4)
    keys = [f"k{i}" for i in range(200)]
    before = {k: registry.order_for_key(k)[0].id for k in keys}
    registry.apply(NodeLeft(member(2)))
    after = {k: registry.order_for_key(k)[0].id for k in keys}
    assert all(after[k] == before[k] for k in keys if before[k] != "w2")
    assert all(after[k] != "w2" for k in keys)


# -- status and metrics ---------------------------------------------------------------------------


def test_worker_repr_is_informative() -> None:
    registry, _, _ = make(1)
    assert registry.begin_call("w0")
    registry.end_call("w0", 0.0123, "success")
    assert registry.begin_call("w0")
    text = repr(registry.worker("w0"))
    for part in ("'w0'", "127.0.0.1:7000", "alive", "healthy", "in_flight=1", "12.3ms",
                 "breaker=closed", "role=worker"):  # fmt: skip
        assert part in text
    assert "strategy='least_connections'" in repr(registry)
    registry.set_phi("w0", float("inf"))
    fields = registry.worker("w0").to_dict()  # type: ignore[union-attr]
    assert json.loads(json.dumps(fields)) == fields
    assert fields["phi"] is None and fields["health"] == "failed" and fields["in_flight"] == 1
    assert fields["tags"] == {"role": "worker"} and fields["breaker"] == "closed"
    assert "failed=1" in repr(registry)


def test_metrics_follow_events_and_calls() -> None:
    metrics = ClusterMetrics()
    registry, _, _ = make(3, metrics=metrics, breaker=BreakerConfig(failure_threshold=2))
    registry.apply(NodeFailed(member(0)))
    fail_calls(registry, "w1", 2)
    assert registry.begin_call("w2")
    registry.end_call("w2", 0.1, "shed")
    registry.workers()  # refreshes the health gauges
    snap = metrics.snapshot()
    assert snap["rpcnet_cluster_node_failures_total"] == 1
    assert snap["rpcnet_breaker_openings_total"] == {"worker=w1": 1}
    assert snap["rpcnet_calls_shed_total"] == 1
    assert snap["rpcnet_cluster_healthy_nodes"] == 1
    assert snap["rpcnet_cluster_nodes"] == {
        "health=degraded": 0,
        "health=failed": 2,
        "health=healthy": 1,
    }
    assert snap["rpcnet_cluster_worker_calls_total"] == {
        "worker=w1,outcome=failure": 2,
        "worker=w2,outcome=shed": 1,
    }


def test_periodic_resync_picks_up_suspects() -> None:
    registry, membership, clock = make(3)
    membership.list[1] = member(1, MemberState.SUSPECT)
    assert registry.worker("w1").is_healthy  # type: ignore[union-attr]  # not re-read yet
    clock.t += 1.0
    w1 = registry.worker("w1")
    assert w1 is not None and w1.is_degraded and w1.health.reason == "member suspect"
    assert registry.order_for_key("k")[-1].id == "w1"


def test_resync_can_be_turned_off() -> None:
    registry, membership, clock = make(2, resync_interval=None)
    membership.list = []
    clock.t += 100.0
    assert len(registry.workers()) == 2


async def test_a_broken_subscription_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    class Broken(FakeMembership):
        def subscribe(self) -> AsyncIterator[ClusterEvent]:
            async def gen() -> AsyncIterator[ClusterEvent]:
                raise OSError("transport gone")
                yield NodeJoined(member(0))  # pragma: no cover

            return gen()

    registry = WorkerRegistry(Broken([member(0)]), rng=random.Random(0))
    task = registry._task
    assert task is not None
    await task
    assert not registry.following
    assert isinstance(registry.follow_error, OSError)
    assert "stopped following membership" in caplog.text
    assert registry.select_worker().id == "w0"  # the last view still answers
    await registry.aclose()


def test_leaving_worker_drops_its_metric_series() -> None:
    metrics = ClusterMetrics()
    registry, membership, _ = make(2, metrics=metrics)
    assert registry.begin_call("w1")
    registry.end_call("w1", 0.1, "success")
    membership.list = [member(0)]
    registry.apply(NodeLeft(member(1)))
    snap = metrics.snapshot()
    assert snap["rpcnet_cluster_worker_calls_total"] == {}
    assert snap["rpcnet_cluster_node_leaves_total"] == 1


_EVENTS = st.sampled_from([NodeJoined, NodeFailed, NodeRecovered, NodeLeft])


@settings(max_examples=60, deadline=None)
@given(
    strategy=st.sampled_from(["round_robin", "random", "least_connections", "p2c"]),
    steps=st.lists(
        st.one_of(
            st.tuples(st.just("event"), _EVENTS, st.integers(0, 4)),
            st.tuples(st.just("call"), st.sampled_from(list(CallOutcome)), st.integers(0, 4)),
            st.tuples(st.just("tick"), st.just(None), st.integers(0, 40)),
        ),
        max_size=60,
    ),
    exclude=st.frozensets(st.sampled_from([f"w{i}" for i in range(5)]), max_size=3),
)
def test_selection_invariants(
    strategy: str, steps: list[tuple[str, object, int]], exclude: frozenset[str]
) -> None:
    registry, _, clock = make(3, strategy, resync_interval=None)
    for kind, what, n in steps:
        if kind == "event":
            registry.apply(what(member(n)))  # type: ignore[operator]
        elif kind == "call" and registry.begin_call(f"w{n}"):
            registry.end_call(f"w{n}", n / 10, what)  # type: ignore[arg-type]
        else:
            clock.t += n / 4
        workers = registry.workers()
        fit = [w for w in workers if w.id not in exclude and w.state in _LIVE]
        usable = [w for w in fit if w.health.state is not HealthState.FAILED]
        try:
            chosen = registry.select_worker(exclude=exclude)
        except NoWorkersAvailable:
            assert not usable
        else:
            assert chosen.id in {w.id for w in usable}
            healthy = [w for w in usable if w.is_healthy]
            if healthy:
                assert chosen.is_healthy or chosen.breaker is BreakerState.HALF_OPEN
        order = registry.order_for_key("key", exclude=exclude)
        assert sorted(w.id for w in order) == sorted(w.id for w in usable)
        assert all(w.in_flight >= 0 for w in workers)


_LIVE = (MemberState.ALIVE, MemberState.SUSPECT)
