"""Worker health assessment, the error window and outlier ejection, on a fake clock."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rpcnet_runtime.cluster.health import (
    ErrorWindow,
    HealthConfig,
    HealthState,
    OutlierConfig,
    OutlierDetector,
    assess,
)
from rpcnet_runtime.cluster.types import MemberState
from rpcnet_runtime.policies.breaker import BreakerState

CFG = HealthConfig()


def health(
    *,
    state: MemberState = MemberState.ALIVE,
    phi: float = 0.0,
    breaker: BreakerState = BreakerState.CLOSED,
    calls: int = 0,
    failures: int = 0,
    ejected: bool = False,
) -> HealthState:
    return assess(
        CFG,
        member_state=state,
        phi=phi,
        breaker=breaker,
        calls=calls,
        failures=failures,
        ejected=ejected,
    ).state


def test_a_quiet_alive_worker_is_healthy() -> None:
    assert health() is HealthState.HEALTHY
    assert str(assess(CFG, member_state=MemberState.ALIVE, phi=0, breaker=BreakerState.CLOSED,
                      calls=0, failures=0, ejected=False)) == "healthy"  # fmt: skip


@pytest.mark.parametrize(
    ("kwargs", "expected", "reason"),
    [
        ({"state": MemberState.FAILED}, HealthState.FAILED, "member failed"),
        ({"state": MemberState.LEFT}, HealthState.FAILED, "member left"),
        ({"phi": 8.0}, HealthState.FAILED, "phi 8.0"),
        ({"phi": math.inf}, HealthState.FAILED, "phi inf"),
        ({"breaker": BreakerState.OPEN}, HealthState.FAILED, "breaker open"),
        ({"ejected": True}, HealthState.FAILED, "ejected"),
        ({"state": MemberState.SUSPECT}, HealthState.DEGRADED, "member suspect"),
        ({"phi": 3.0}, HealthState.DEGRADED, "phi 3.0"),
        ({"phi": 7.9}, HealthState.DEGRADED, "phi 7.9"),
        ({"breaker": BreakerState.HALF_OPEN}, HealthState.DEGRADED, "breaker half-open"),
        ({"calls": 8, "failures": 2}, HealthState.DEGRADED, "2/8 calls failed"),
        ({"calls": 8, "failures": 1}, HealthState.HEALTHY, ""),
        ({"calls": 4, "failures": 4}, HealthState.HEALTHY, ""),  # too few calls to judge
        ({"phi": 2.9}, HealthState.HEALTHY, ""),
    ],
)
def test_health_table(kwargs: dict[str, object], expected: HealthState, reason: str) -> None:
    result = assess(
        CFG,
        member_state=kwargs.get("state", MemberState.ALIVE),  # type: ignore[arg-type]
        phi=kwargs.get("phi", 0.0),  # type: ignore[arg-type]
        breaker=kwargs.get("breaker", BreakerState.CLOSED),  # type: ignore[arg-type]
        calls=kwargs.get("calls", 0),  # type: ignore[arg-type]
        failures=kwargs.get("failures", 0),  # type: ignore[arg-type]
        ejected=kwargs.get("ejected", False),  # type: ignore[arg-type]
    )
    assert result.state is expected
    assert result.reason == reason


def test_failed_wins_over_degraded() -> None:
    assert health(state=MemberState.SUSPECT, breaker=BreakerState.OPEN) is HealthState.FAILED
    assert health(phi=5.0, ejected=True) is HealthState.FAILED


def test_health_config_is_validated() -> None:
    with pytest.raises(ValueError):
        HealthConfig(phi_degraded=9.0, phi_failed=8.0)
    with pytest.raises(ValueError):
        HealthConfig(degraded_error_rate=0.0)
    with pytest.raises(ValueError):
        HealthConfig(min_calls=0)


def test_error_window_slides_with_time() -> None:
    window = ErrorWindow(window=10.0)
    window.record(0.0, failed=True)
    window.record(1.0, failed=False)
    window.record(5.0, failed=True)
    assert window.counts(5.0) == (3, 2)
    assert window.rate(5.0) == pytest.approx(2 / 3)
    assert window.counts(10.5) == (2, 1)  # the outcome at t=0 left the window
    assert window.counts(15.0) == (0, 0)
    assert window.rate(15.0) == 0.0


def test_error_window_is_bounded() -> None:
    window = ErrorWindow(window=100.0, max_samples=10)
    for i in range(10):
        window.record(float(i), failed=True)
    for i in range(10, 15):
        window.record(float(i), failed=False)
    assert window.counts(15.0) == (10, 5)


def detector(workers: int, **config: float) -> OutlierDetector:
    d = OutlierDetector(OutlierConfig(**config))  # type: ignore[arg-type]
    for i in range(workers):
        d.track(f"w{i}")
    return d


def fail(d: OutlierDetector, worker: str, times: int, now: float) -> bool:
    return any([d.record(worker, failed=True, now=now) for _ in range(times)])


def test_consecutive_failures_eject_for_the_base_period() -> None:
    d = detector(4)
    assert not fail(d, "w0", 4, now=0.0)
    assert not d.is_ejected("w0", 0.0)
    assert d.record("w0", failed=True, now=1.0)
    assert d.is_ejected("w0", 1.0)
    assert d.ejected_until("w0") == 31.0
    assert d.next_deadline() == 31.0
    assert d.is_ejected("w0", 30.9)
    assert not d.is_ejected("w0", 31.0)
    assert d.next_deadline() is None


def test_a_success_resets_the_failure_run() -> None:
    d = detector(4)
    fail(d, "w0", 4, now=0.0)
    d.record("w0", failed=False, now=0.0)
    assert not fail(d, "w0", 4, now=0.0)
    assert not d.is_ejected("w0", 0.0)


def test_ejection_period_grows_and_is_capped() -> None:
    d = detector(4, base_ejection=10.0, max_ejection=25.0)
    periods = []
    now = 0.0
    for _ in range(4):
        assert fail(d, "w0", 5, now=now)
        until = d.ejected_until("w0")
        assert until is not None
        periods.append(until - now)
        now = until  # fails again as soon as it returns
    assert periods == [10.0, 20.0, 25.0, 25.0]


def test_quiet_periods_forget_earlier_ejections() -> None:
    d = detector(4, base_ejection=10.0, max_ejection=100.0)
    fail(d, "w0", 5, now=0.0)  # out until 10
    fail(d, "w0", 5, now=10.0)  # level 2: out until 30
    assert d.ejected_until("w0") == 30.0
    fail(d, "w0", 5, now=50.0)  # 20 s quiet after return forgets two levels
    assert d.ejected_until("w0") == 60.0


def test_ejection_is_bounded_by_percentage() -> None:
    d = detector(4)  # 50% of 4: at most 2 ejected
    assert fail(d, "w0", 5, now=0.0)
    assert fail(d, "w1", 5, now=0.0)
    assert not fail(d, "w2", 5, now=0.0)
    assert d.ejected(0.0) == {"w0", "w1"}
    assert d.refused == 1
    assert d.ejections == 2


def test_ejection_never_empties_the_cluster() -> None:
    d = detector(1, max_ejection_percent=100.0)
    assert not fail(d, "w0", 20, now=0.0)
    d2 = detector(2, max_ejection_percent=100.0)
    assert fail(d2, "w0", 5, now=0.0)
    assert not fail(d2, "w1", 5, now=0.0)  # the last worker in stays in


def test_a_returned_worker_may_be_ejected_again_once_others_return() -> None:
    d = detector(3)  # 50% of 3: one at a time
    assert fail(d, "w0", 5, now=0.0)
    assert not fail(d, "w1", 5, now=1.0)
    assert fail(d, "w1", 5, now=31.0)  # w0 is back at 30, so w1 may go now
    assert d.ejected(31.0) == {"w1"}


def test_forgotten_workers_do_not_count() -> None:
    d = detector(2)
    d.forget("w1")
    assert not fail(d, "w0", 5, now=0.0)
    assert "ejected=[]" in repr(d)


def test_outlier_config_is_validated() -> None:
    with pytest.raises(ValueError):
        OutlierConfig(consecutive_failures=0)
    with pytest.raises(ValueError):
        OutlierConfig(base_ejection=10, max_ejection=5)
    with pytest.raises(ValueError):
        OutlierConfig(max_ejection_percent=150)


@given(
    workers=st.integers(min_value=1, max_value=6),
    percent=st.sampled_from([0.0, 10.0, 34.0, 50.0, 100.0]),
    steps=st.lists(st.tuples(st.integers(0, 5), st.booleans(), st.floats(0.0, 20.0)), max_size=120),
)
def test_ejection_bounds_hold_for_any_history(
    workers: int, percent: float, steps: list[tuple[int, bool, float]]
) -> None:
    d = detector(workers, consecutive_failures=2, base_ejection=5.0, max_ejection_percent=percent)
    now = 0.0
    for index, failed, dt in steps:
        now += dt
        d.record(f"w{index % workers}", failed=failed, now=now)
        ejected = d.ejected(now)
        assert len(ejected) < workers  # never empties the cluster
        assert len(ejected) * 100 <= percent * workers
        for wid in ejected:
            until = d.ejected_until(wid)
            assert until is not None and now < until <= now + 300.0
