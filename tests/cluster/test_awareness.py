"""Lifeguard local health awareness: score bounds and timeout scaling."""

from __future__ import annotations

import pytest

from rpcnet_runtime.cluster.awareness import Awareness


@pytest.mark.parametrize(
    ("deltas", "score", "scaled"),
    [
        ([], 0, 0.5),
        ([1], 1, 1.0),
        ([3], 3, 2.0),
        ([3, 3, 3], 7, 4.0),  # clamped at max_multiplier - 1
        ([20], 7, 4.0),
        ([-1], 0, 0.5),  # never below zero
        ([2, -1], 1, 1.0),
        ([7, -3, -10, 1], 1, 1.0),
    ],
)
def test_score_and_scaling(deltas: list[int], score: int, scaled: float) -> None:
    a = Awareness(max_multiplier=8)
    for d in deltas:
        a.apply_delta(d)
    assert a.score == score
    assert a.scale(0.5) == pytest.approx(scaled)


def test_multiplier_one_disables_scaling() -> None:
    a = Awareness(max_multiplier=1)
    assert a.apply_delta(5) == 0
    assert a.scale(0.2) == 0.2


def test_invalid_multiplier() -> None:
    with pytest.raises(ValueError):
        Awareness(0)
