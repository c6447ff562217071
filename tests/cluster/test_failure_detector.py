"""PhiAccrualDetector: Akka's AccrualFailureDetectorSpec cases (in seconds) and properties."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rpcnet_runtime.cluster.failure_detector import PhiAccrualDetector, phi_value


def cdf(phi: float) -> float:
    return 1.0 - math.pow(10.0, -phi)


def akka_phi(time_diff: float, mean: float, std: float) -> float:
    """Akka's two-branch formula, evaluated literally (valid where exp does not overflow)."""
    y = (time_diff - mean) / std
    e = math.exp(-y * (1.5976 + 0.070566 * y * y))
    if time_diff > mean:
        return -math.log10(e / (1.0 + e))
    return -math.log10(1.0 - 1.0 / (1.0 + e))


def times(intervals_ms: list[int]) -> Iterator[float]:
    """Akka's fake clock: the first value, then running sums; in seconds."""
    now = 0.0
    for i, interval in enumerate(intervals_ms):
        now = interval / 1000.0 if i == 0 else now + interval / 1000.0
        yield now


# -- Akka: "An AccrualFailureDetector must ..." ----------------------------------------------------


def test_use_good_enough_cumulative_distribution_function() -> None:
    assert cdf(phi_value(0, 0, 10)) == pytest.approx(0.5, abs=0.001)
    assert cdf(phi_value(6, 0, 10)) == pytest.approx(0.7257, abs=0.001)
    assert cdf(phi_value(15, 0, 10)) == pytest.approx(0.9332, abs=0.001)
    assert cdf(phi_value(20, 0, 10)) == pytest.approx(0.97725, abs=0.001)
    assert cdf(phi_value(25, 0, 10)) == pytest.approx(0.99379, abs=0.001)
    assert cdf(phi_value(35, 0, 10)) == pytest.approx(0.99977, abs=0.001)
    assert cdf(phi_value(40, 0, 10)) == pytest.approx(0.99997, abs=0.0001)
    for x in range(40):
        assert phi_value(x, 0, 10) < phi_value(x + 1, 0, 10)
    assert cdf(phi_value(22, 20.0, 3)) == pytest.approx(0.7475, abs=0.001)


def test_handle_outliers_without_losing_precision_or_hitting_exceptions() -> None:
    assert phi_value(10, 0, 1) == pytest.approx(38.0, abs=1.0)
    assert phi_value(-25, 0, 1) == 0.0
    # Far beyond what Akka's literal formula survives (it relies on Java's infinities).
    assert math.isfinite(phi_value(1e6, 0, 1)) and phi_value(1e6, 0, 1) > 1e15
    assert phi_value(-1e6, 0, 1) == 0.0


@pytest.mark.parametrize(
    ("time_diff", "expected"),
    [(0.0, 0.0), (0.5, 0.1), (1.0, 0.3), (1.2, 1.6), (1.4, 4.7), (1.6, 10.8), (1.7, 15.3)],
)
def test_return_realistic_phi_values(time_diff: float, expected: float) -> None:
    assert phi_value(time_diff, mean=1.0, std_deviation=0.1) == pytest.approx(expected, abs=0.1)


def test_larger_std_deviation_gives_lower_phi() -> None:
    assert phi_value(1.1, 1.0, 0.5) < phi_value(1.1, 1.0, 0.1)


def test_return_phi_value_of_0_on_startup_when_no_heartbeats() -> None:
    fd = PhiAccrualDetector()
    assert fd.phi(0.0) == 0.0
    assert fd.phi(1000.0) == 0.0
    assert fd.is_available(1000.0)
    assert fd.unavailable_at() is None


def test_return_phi_based_on_guess_when_only_one_heartbeat() -> None:
    clock = times([0, 1000, 1000, 1000, 1000])
    fd = PhiAccrualDetector(first_heartbeat_estimate=1.0)
    fd.heartbeat(next(clock))
    assert fd.phi(next(clock)) == pytest.approx(0.3, abs=0.2)
    assert fd.phi(next(clock)) == pytest.approx(4.5, abs=0.3)
    assert fd.phi(next(clock)) > 15.0


def test_return_phi_value_using_first_interval_after_second_heartbeat() -> None:
    clock = times([0, 100, 100, 100])
    fd = PhiAccrualDetector()
    fd.heartbeat(next(clock))
    assert fd.phi(next(clock)) > 0.0
    fd.heartbeat(next(clock))
    assert fd.phi(next(clock)) > 0.0


def test_mark_node_as_monitored_after_a_series_of_successful_heartbeats() -> None:
    clock = times([0, 1000, 100, 100])
    fd = PhiAccrualDetector()
    assert not fd.is_monitoring
    for _ in range(3):
        fd.heartbeat(next(clock))
    assert fd.is_monitoring
    assert fd.is_available(next(clock))


def test_mark_node_as_dead_if_heartbeats_are_missed() -> None:
    clock = times([0, 1000, 100, 100, 7000])
    fd = PhiAccrualDetector(threshold=3)
    fd.heartbeat(next(clock))  # 0
    fd.heartbeat(next(clock))  # 1.0
    fd.heartbeat(next(clock))  # 1.1
    assert fd.is_available(next(clock))  # 1.2
    assert not fd.is_available(next(clock))  # 8.2


def test_mark_node_available_again_when_heartbeats_resume_after_being_dead() -> None:
    # 1000 regular intervals, a 5 minute pause, then a 7 s pause that must be detected again:
    # intervals seen while unavailable are not learned.
    intervals = [0] + [1000] * 999 + [5 * 60 * 1000, 100, 900, 100, 7000, 100, 900, 100, 900]
    clock = times(intervals)
    fd = PhiAccrualDetector(threshold=8, acceptable_heartbeat_pause=3.0)
    for _ in range(1000):
        fd.heartbeat(next(clock))
    assert not fd.is_available(next(clock))  # after the long pause
    fd.heartbeat(next(clock))
    assert fd.is_available(next(clock))
    fd.heartbeat(next(clock))
    assert not fd.is_available(next(clock))  # after the 7 s pause
    fd.heartbeat(next(clock))
    assert fd.is_available(next(clock))
    fd.heartbeat(next(clock))
    assert fd.is_available(next(clock))


def test_accept_some_configured_missing_heartbeats() -> None:
    clock = times([0, 1000, 1000, 1000, 4000, 1000, 1000])
    fd = PhiAccrualDetector(acceptable_heartbeat_pause=3.0)
    for _ in range(4):
        fd.heartbeat(next(clock))
    assert fd.is_available(next(clock))
    fd.heartbeat(next(clock))
    assert fd.is_available(next(clock))


def test_fail_after_configured_acceptable_missing_heartbeats() -> None:
    clock = times([0, 1000, 1000, 1000, 1000, 1000, 500, 500, 5000])
    fd = PhiAccrualDetector(acceptable_heartbeat_pause=3.0)
    for _ in range(6):
        fd.heartbeat(next(clock))
    assert fd.is_available(next(clock))
    fd.heartbeat(next(clock))
    assert not fd.is_available(next(clock))


def test_use_max_sample_size_heartbeats() -> None:
    clock = times([0, 100, 100, 100, 100, 600, 500, 500, 500, 500, 500])
    fd = PhiAccrualDetector(max_sample_size=3)
    for _ in range(4):  # 100 ms intervals
        fd.heartbeat(next(clock))
    phi1 = fd.phi(next(clock))
    for _ in range(4):  # 500 ms intervals: same phi once the 100 ms ones are gone
        fd.heartbeat(next(clock))
    phi2 = fd.phi(next(clock))
    assert phi2 == pytest.approx(phi1, abs=0.001)


# -- Akka: "Statistics for heartbeats must ..." (through the public status view) -------------------


def detector_with_intervals(intervals: list[float], max_sample_size: int) -> PhiAccrualDetector:
    fd = PhiAccrualDetector(max_sample_size=max_sample_size, min_std_deviation=1e-12)
    now = 0.0
    fd.heartbeat(now)
    for interval in intervals:
        now += interval
        fd.heartbeat(now)
    return fd


def variance(fd: PhiAccrualDetector) -> float:
    assert fd.std_deviation is not None
    return fd.std_deviation**2


def test_calculate_correct_mean_and_variance() -> None:
    fd = detector_with_intervals([0.100, 0.200, 0.125, 0.340, 0.130], max_sample_size=5)
    assert fd.sample_count == 5  # the two seed samples have been pushed out
    assert fd.mean_interval == pytest.approx(0.179, abs=1e-9)
    assert variance(fd) == pytest.approx(0.007584, abs=1e-9)


def test_have_zero_variance_for_one_sample() -> None:
    fd = detector_with_intervals([1.0], max_sample_size=1)
    assert variance(fd) == pytest.approx(0.0, abs=1e-12)


def test_be_capped_by_the_specified_max_sample_size() -> None:
    fd = detector_with_intervals([0.100, 0.110, 0.090], max_sample_size=3)
    assert fd.mean_interval == pytest.approx(0.100, abs=1e-9)
    assert variance(fd) == pytest.approx(66.6666667e-6, abs=1e-9)
    fd.heartbeat(fd.last_heartbeat + 0.140)  # type: ignore[operator]
    assert fd.mean_interval == pytest.approx(0.113333333, abs=1e-9)
    assert variance(fd) == pytest.approx(422.222222e-6, abs=1e-9)
    fd.heartbeat(fd.last_heartbeat + 0.080)  # type: ignore[operator]
    assert fd.mean_interval == pytest.approx(0.103333333, abs=1e-9)
    assert variance(fd) == pytest.approx(688.88888889e-6, abs=1e-9)


# -- beyond Akka -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("y", "mean", "std"),
    [(y / 2, m, s) for y in range(-20, 21) for m in (0.5, 1.0, 2.0) for s in (0.1, 0.25, 1.0)],
)
def test_stable_formula_equals_akkas_literal_formula(y: float, mean: float, std: float) -> None:
    time_diff = mean + y * std
    assert phi_value(time_diff, mean, std) == pytest.approx(
        akka_phi(time_diff, mean, std), rel=1e-9, abs=1e-12
    )


@pytest.mark.parametrize(
    ("late", "available"),
    [(0.5, True), (1.0, True), (1.2, True), (1.4, True), (1.5, True), (1.6, False), (2.0, False)],
)
def test_phi_grows_with_lateness_on_a_regular_heartbeat(late: float, available: bool) -> None:
    fd = PhiAccrualDetector(min_std_deviation=0.1)
    for i in range(20):
        fd.heartbeat(float(i))
    # Regular 1 s intervals: mean 1.0, std floored at 0.1.
    assert fd.phi(19.0 + late) == pytest.approx(akka_phi(late, 1.0, 0.1), rel=1e-9)
    assert fd.phi(19.0 + late) > fd.phi(19.0 + late - 0.1)
    assert fd.is_available(19.0 + late) is available


def test_acceptable_pause_shifts_the_mean() -> None:
    plain = PhiAccrualDetector()
    paused = PhiAccrualDetector(acceptable_heartbeat_pause=2.0)
    for i in range(10):
        plain.heartbeat(float(i))
        paused.heartbeat(float(i))
    assert paused.phi(9.0 + 3.0) == pytest.approx(plain.phi(9.0 + 1.0))


@pytest.mark.parametrize("threshold", [0.01, 0.5, 1.0, 3.0, 8.0, 16.0, 100.0, 1e6])
def test_unavailable_at_is_where_phi_crosses_the_threshold(threshold: float) -> None:
    fd = PhiAccrualDetector(threshold=threshold)
    for i in range(10):
        fd.heartbeat(i * 0.5)
    deadline = fd.unavailable_at()
    assert deadline is not None
    assert not fd.is_available(deadline)
    assert fd.is_available(deadline - 1e-6)
    assert fd.phi(deadline) == pytest.approx(threshold, rel=1e-9)


def test_unavailable_at_is_infinite_for_an_absurd_threshold() -> None:
    fd = PhiAccrualDetector(threshold=1e300)
    fd.heartbeat(0.0)
    assert fd.unavailable_at() == math.inf
    assert fd.is_available(1e9)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"threshold": 0.0}, ValueError),
        ({"threshold": -1.0}, ValueError),
        ({"threshold": math.nan}, ValueError),
        ({"max_sample_size": 0}, ValueError),
        ({"max_sample_size": 2.5}, TypeError),
        ({"max_sample_size": True}, TypeError),
        ({"min_std_deviation": 0.0}, ValueError),
        ({"acceptable_heartbeat_pause": -0.1}, ValueError),
        ({"acceptable_heartbeat_pause": math.inf}, ValueError),
        ({"first_heartbeat_estimate": 0.0}, ValueError),
    ],
)
def test_invalid_arguments_are_rejected(kwargs: dict[str, float], error: type[Exception]) -> None:
    with pytest.raises(error, match=next(iter(kwargs))):
        PhiAccrualDetector(**kwargs)  # type: ignore[arg-type]


def test_heartbeat_rejects_time_going_backwards_and_non_finite_times() -> None:
    fd = PhiAccrualDetector()
    fd.heartbeat(10.0)
    with pytest.raises(ValueError, match="backwards"):
        fd.heartbeat(9.0)
    with pytest.raises(ValueError, match="finite"):
        fd.heartbeat(math.nan)
    assert fd.last_heartbeat == 10.0


def test_running_sums_do_not_drift_over_a_long_run() -> None:
    intervals = [0.9 + (i * 7919 % 200) / 1000.0 for i in range(20_000)]
    fd = detector_with_intervals(intervals, max_sample_size=7)
    window = intervals[-7:]
    assert fd.mean_interval == pytest.approx(statistics.fmean(window), abs=1e-12)
    assert variance(fd) == pytest.approx(statistics.pvariance(window), abs=1e-12)


intervals_st = st.lists(st.floats(0.001, 10.0), min_size=0, max_size=60)


@settings(max_examples=150, deadline=None)
@given(intervals=intervals_st, offsets=st.lists(st.floats(0.0, 100.0), min_size=1, max_size=20))
def test_phi_is_monotone_after_the_last_heartbeat(
    intervals: list[float], offsets: list[float]
) -> None:
    fd = PhiAccrualDetector()
    now = 0.0
    fd.heartbeat(now)
    for interval in intervals:
        now += interval
        fd.heartbeat(now)
    previous = 0.0
    for offset in sorted(offsets):
        phi = fd.phi(now + offset)
        assert phi >= previous
        assert fd.is_available(now + offset) is (phi < fd.threshold)
        previous = phi
    deadline = fd.unavailable_at()
    assert deadline is not None
    assert not fd.is_available(deadline)
    assert all(fd.is_available(now + o) for o in offsets if now + o < deadline)


@settings(max_examples=150, deadline=None)
@given(intervals=intervals_st, size=st.integers(1, 12))
def test_window_statistics_match_a_naive_computation(intervals: list[float], size: int) -> None:
    # A huge threshold keeps the peer available, so every interval is learned.
    fd = PhiAccrualDetector(threshold=1e300, max_sample_size=size, min_std_deviation=1e-3)
    now = 0.0
    fd.heartbeat(now)
    for interval in intervals:
        now += interval
        fd.heartbeat(now)
    window = [0.75, 1.25, *intervals][-size:]  # seeded with estimate 1.0 ± 1.0 / 4
    assert fd.sample_count == len(window)
    assert fd.mean_interval == pytest.approx(statistics.fmean(window), rel=1e-9, abs=1e-9)
    expected_std = max(statistics.pstdev(window), 1e-3)
    assert fd.std_deviation == pytest.approx(expected_std, rel=1e-6, abs=1e-9)
