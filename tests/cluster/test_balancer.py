"""Load-balancing strategies: shares under a seeded rng, registration, peak EWMA."""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

import pytest

from rpcnet_runtime.cluster.balancer import (
    Endpoint,
    LoadBalancer,
    PeakEwma,
    PowerOfTwoChoices,
    available_strategies,
    create_strategy,
    register_strategy,
)

E = TypeVar("E", bound=Endpoint)


@dataclass(frozen=True)
class Ep:
    id: str
    in_flight: int = 0
    latency_ewma: float | None = None


def shares(strategy: LoadBalancer, candidates: Sequence[Ep], picks: int) -> Counter[str]:
    return Counter(strategy.pick(candidates).id for _ in range(picks))


def test_builtin_strategies_are_registered() -> None:
    assert {"round_robin", "random", "least_connections", "p2c"} <= set(available_strategies())
    for name in ("round_robin", "random", "least_connections", "p2c"):
        strategy = create_strategy(name, random.Random(1))
        assert strategy.name == name
        assert isinstance(strategy, LoadBalancer)


def test_unknown_strategy_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown load-balancing strategy 'fastest'.*p2c"):
        create_strategy("fastest")


def test_round_robin_gives_exact_shares() -> None:
    workers = [Ep("a"), Ep("b"), Ep("c"), Ep("d")]
    rr = create_strategy("round_robin", random.Random(7))
    picks = [rr.pick(workers).id for _ in range(400)]
    assert Counter(picks) == {"a": 100, "b": 100, "c": 100, "d": 100}
    # consecutive picks cycle through every worker once
    for i in range(0, 400, 4):
        assert sorted(picks[i : i + 4]) == ["a", "b", "c", "d"]


def test_round_robin_start_offset_depends_on_rng() -> None:
    workers = [Ep(str(i)) for i in range(16)]
    starts = {create_strategy("round_robin", random.Random(s)).pick(workers).id for s in range(40)}
    assert len(starts) > 4  # clients started together do not all hit the first worker


def test_round_robin_survives_a_shrinking_set() -> None:
    rr = create_strategy("round_robin", random.Random(3))
    for _ in range(5):
        rr.pick([Ep("a"), Ep("b"), Ep("c")])
    assert rr.pick([Ep("x")]).id == "x"
    assert shares(rr, [Ep("a"), Ep("b")], 10) == {"a": 5, "b": 5}


def test_random_shares_within_bounds() -> None:
    workers = [Ep("a"), Ep("b"), Ep("c")]
    counts = shares(create_strategy("random", random.Random(11)), workers, 3000)
    assert set(counts) == {"a", "b", "c"}
    for n in counts.values():
        assert 850 <= n <= 1150  # 1000 expected; ~7 standard deviations of slack


def test_random_is_reproducible_with_a_seed() -> None:
    workers = [Ep("a"), Ep("b"), Ep("c")]
    a = create_strategy("random", random.Random(5))
    b = create_strategy("random", random.Random(5))
    assert [a.pick(workers).id for _ in range(50)] == [b.pick(workers).id for _ in range(50)]


def test_least_connections_picks_the_idle_worker() -> None:
    lc = create_strategy("least_connections", random.Random(2))
    workers = [Ep("a", 5), Ep("b", 0), Ep("c", 3)]
    assert shares(lc, workers, 50) == {"b": 50}


def test_least_connections_breaks_ties_at_random() -> None:
    lc = create_strategy("least_connections", random.Random(2))
    workers = [Ep("a", 1), Ep("b", 1), Ep("c", 4)]
    counts = shares(lc, workers, 1000)
    assert set(counts) == {"a", "b"}
    assert 400 <= counts["a"] <= 600


def test_p2c_avoids_a_slow_worker() -> None:
    p2c = create_strategy("p2c", random.Random(9))
    workers = [Ep("fast1", 1, 0.010), Ep("fast2", 1, 0.012), Ep("slow", 1, 2.0)]
    counts = shares(p2c, workers, 3000)
    # The slow one can only win a pair it is not in, so it never wins.
    assert counts["slow"] == 0
    assert counts["fast1"] > counts["fast2"] > 0


def test_p2c_avoids_a_busy_worker_of_equal_latency() -> None:
    p2c = create_strategy("p2c", random.Random(9))
    workers = [Ep("a", 0, 0.05), Ep("b", 0, 0.05), Ep("busy", 40, 0.05)]
    counts = shares(p2c, workers, 3000)
    assert counts["busy"] == 0
    assert 1300 <= counts["a"] <= 1700


def test_p2c_uses_in_flight_when_latency_is_unknown() -> None:
    p2c = create_strategy("p2c", random.Random(4))
    assert p2c.pick([Ep("new", 0, None), Ep("old", 3, 0.1)]).id == "new"
    assert p2c.pick([Ep("new", 9, None), Ep("old", 0, 0.1)]).id == "old"
    assert PowerOfTwoChoices.cost(Ep("x", 1, None)) == 2.0


def test_p2c_spreads_load_among_equal_workers() -> None:
    p2c = create_strategy("p2c", random.Random(21))
    workers = [Ep(str(i), 0, 0.02) for i in range(4)]
    counts = shares(p2c, workers, 4000)
    assert all(800 <= counts[str(i)] <= 1200 for i in range(4))


@pytest.mark.parametrize("name", ["round_robin", "random", "least_connections", "p2c"])
def test_strategies_refuse_an_empty_pool(name: str) -> None:
    with pytest.raises(ValueError, match="at least one candidate"):
        create_strategy(name, random.Random(0)).pick([])


def test_user_strategy_is_pluggable() -> None:
    class First:
        name = "first_for_test"

        def __init__(self, rng: random.Random) -> None:
            self.rng = rng

        def pick(self, candidates: Sequence[E]) -> E:
            return candidates[0]

    register_strategy("first_for_test", First, replace=True)
    with pytest.raises(ValueError, match="already registered"):
        register_strategy("first_for_test", First)
    assert create_strategy("first_for_test").pick([Ep("z"), Ep("y")]).id == "z"


def test_peak_ewma_jumps_up_and_decays() -> None:
    ewma = PeakEwma(decay=10.0)
    assert ewma.value(0.0) is None
    ewma.observe(0.1, 0.0)
    assert ewma.value(0.0) == pytest.approx(0.1)
    ewma.observe(2.0, 1.0)  # a slow sample replaces the estimate at once
    assert ewma.value(1.0) == pytest.approx(2.0)
    assert ewma.value(11.0) == pytest.approx(2.0 * math.exp(-1.0))
    ewma.observe(0.1, 11.0)  # a fast one is blended in
    expected = 2.0 * math.exp(-1.0) + 0.1 * (1 - math.exp(-1.0))
    assert ewma.value(11.0) == pytest.approx(expected)
    assert (ewma.value(100.0) or 1.0) < 0.01  # a once-slow worker becomes attractive again


def test_peak_ewma_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        PeakEwma(decay=0)
    ewma = PeakEwma()
    for bad in (-1.0, math.nan, math.inf):
        with pytest.raises(ValueError):
            ewma.observe(bad, 0.0)
