"""Lifeguard suspicion timeouts: the formula as a table, and the confirmation rules."""

from __future__ import annotations

import math

import pytest

from rpcnet_runtime.cluster.suspicion import (
    Suspicion,
    remaining_suspicion_time,
    suspicion_timeout,
)

# (confirmations, expected, elapsed, min, max, remaining) - memberlist's published cases.
REMAINING = [
    (0, 3, 0.0, 2.0, 30.0, 30.0),
    (1, 3, 2.0, 2.0, 30.0, 14.0),
    (2, 3, 3.0, 2.0, 30.0, 4.8104),
    (3, 3, 4.0, 2.0, 30.0, -2.0),
    (4, 3, 5.0, 2.0, 30.0, -3.0),
    (5, 3, 10.0, 2.0, 30.0, -8.0),
]


@pytest.mark.parametrize(("c", "k", "elapsed", "lo", "hi", "expected"), REMAINING)
def test_remaining_suspicion_time(
    c: int, k: int, elapsed: float, lo: float, hi: float, expected: float
) -> None:
    assert remaining_suspicion_time(c, k, elapsed, lo, hi) == pytest.approx(expected, abs=1e-3)


@pytest.mark.parametrize(
    ("c", "k", "expected"),
    [
        (0, 0, 1.2),  # nobody to confirm: the minimum at once
        (5, 0, 1.2),
        (0, 1, 3.6),
        (1, 1, 1.2),
        (0, 4, 3.6),
        (1, 4, 3.6 - 2.4 * math.log(2) / math.log(5)),
        (4, 4, 1.2),
    ],
)
def test_timeout_shrinks_with_confirmations(c: int, k: int, expected: float) -> None:
    assert suspicion_timeout(c, k, 1.2, 3.6) == pytest.approx(expected)


def test_timeout_is_monotonic_and_bounded() -> None:
    values = [suspicion_timeout(c, 5, 1.0, 6.0) for c in range(10)]
    assert values == sorted(values, reverse=True)
    assert values[0] == 6.0 and values[-1] == 1.0


def test_confirmations_shorten_the_deadline_once_per_member() -> None:
    s = Suspicion("a", expected=3, min_timeout=2.0, max_timeout=30.0, start=100.0)
    assert s.deadline == 130.0 and s.confirmations == 0
    assert not s.confirm("a")  # the originator does not confirm itself
    assert s.confirm("b")
    assert s.deadline == pytest.approx(116.0)
    assert not s.confirm("b")  # duplicates do not count
    assert s.confirm("c")
    assert s.confirm("d")
    assert s.deadline == pytest.approx(102.0)
    assert not s.confirm("e")  # beyond the expected count nothing changes
    assert s.confirmations == 3
    assert s.remaining(101.0) == pytest.approx(1.0)
    assert s.remaining(103.0) == pytest.approx(-1.0)


def test_no_expected_confirmations_means_minimum() -> None:
    s = Suspicion("a", expected=0, min_timeout=1.5, max_timeout=4.5, start=10.0)
    assert s.deadline == 11.5
    assert not s.confirm("b")


@pytest.mark.parametrize(("lo", "hi"), [(0.0, 1.0), (2.0, 1.0), (-1.0, 1.0)])
def test_invalid_timeouts_rejected(lo: float, hi: float) -> None:
    with pytest.raises(ValueError):
        Suspicion("a", 1, lo, hi, 0.0)
