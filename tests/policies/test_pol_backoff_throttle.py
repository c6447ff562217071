"""gRFC A6 backoff (full jitter) and the retry throttle's token arithmetic."""

from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rpcnet_runtime.policies import RetryThrottle, backoff_bound, backoff_delays


def test_bound_grows_geometrically_then_caps() -> None:
    bounds = [backoff_bound(n, 0.05, 1.0, 2.0) for n in range(1, 8)]
    assert bounds == pytest.approx([0.05, 0.1, 0.2, 0.4, 0.8, 1.0, 1.0])
    assert backoff_bound(10_000, 0.05, 1.0, 2.0) == 1.0  # no overflow far out


def test_bound_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        backoff_bound(0, 0.1, 1.0)
    with pytest.raises(ValueError):
        backoff_bound(1, 0.1, 1.0, multiplier=0.5)


def test_delays_are_uniform_draws_under_the_bound() -> None:
    # The same seed replays the same draws; each draw is rng.uniform(0, bound_n).
    delays = list(itertools.islice(backoff_delays(0.1, 0.5, 2.0, random.Random(7)), 6))
    reference = random.Random(7)
    expected = [reference.uniform(0, min(0.1 * 2.0 ** (n - 1), 0.5)) for n in range(1, 7)]
    assert delays == expected


@settings(derandomize=True, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    initial=st.floats(0.001, 2.0),
    maximum=st.floats(0.001, 30.0),
    multiplier=st.floats(1.0, 5.0),
)
def test_every_delay_is_within_zero_and_its_bound(
    seed: int, initial: float, maximum: float, multiplier: float
) -> None:
    gen = backoff_delays(initial, maximum, multiplier, random.Random(seed))
    for n, delay in enumerate(itertools.islice(gen, 12), start=1):
        assert 0.0 <= delay <= backoff_bound(n, initial, maximum, multiplier)
        assert delay <= maximum


def test_full_jitter_spreads_over_the_whole_range() -> None:
    rng = random.Random(1)
    draws = [next(backoff_delays(1.0, 1.0, 2.0, rng)) for _ in range(2000)]
    assert min(draws) < 0.05 and max(draws) > 0.95
    assert 0.45 < sum(draws) / len(draws) < 0.55


def test_throttle_arithmetic_is_exact_in_milli_tokens() -> None:
    throttle = RetryThrottle(max_tokens=10, token_ratio=0.1)
    assert throttle.milli_tokens == 10_000 and throttle.allows_retry()
    for _ in range(5):
        throttle.record_failure()
    # 5 tokens left: retries need strictly more than max/2.
    assert throttle.milli_tokens == 5_000
    assert not throttle.allows_retry()
    throttle.record_success()
    assert throttle.milli_tokens == 5_100 and throttle.allows_retry()
    for _ in range(100):
        throttle.record_success()
    assert throttle.milli_tokens == 10_000  # capped at max_tokens
    for _ in range(50):
        throttle.record_failure()
    assert throttle.milli_tokens == 0  # floored at zero


def test_throttle_ratio_keeps_three_decimals() -> None:
    throttle = RetryThrottle(max_tokens=3, token_ratio=0.0125)
    for _ in range(3):
        throttle.record_failure()
    for _ in range(10):
        throttle.record_success()
    assert throttle.milli_tokens == 10 * 12  # 0.0125 keeps three decimals: 12 milli-tokens


@settings(derandomize=True, deadline=None)
@given(st.lists(st.booleans(), max_size=300))
def test_throttle_matches_a_reference_model(outcomes: list[bool]) -> None:
    throttle = RetryThrottle(max_tokens=10, token_ratio=0.1)
    model = 10_000
    for ok in outcomes:
        if ok:
            throttle.record_success()
            model = min(10_000, model + 100)
        else:
            throttle.record_failure()
            model = max(0, model - 1000)
        assert throttle.milli_tokens == model
        assert throttle.allows_retry() == (model > 5000)


def test_throttle_validates_its_config() -> None:
    with pytest.raises(ValueError):
        RetryThrottle(max_tokens=0)
    with pytest.raises(ValueError):
        RetryThrottle(token_ratio=0)
