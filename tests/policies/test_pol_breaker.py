"""The circuit breaker: every (state, input) pair, the trip rules, and Hypothesis invariants."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rpcnet_runtime.policies import (
    BreakerConfig,
    BreakerInput,
    BreakerState,
    BreakerStateError,
    CircuitBreaker,
)
from rpcnet_runtime.policies.breaker import TRANSITIONS

CLOSED, OPEN, HALF = BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN
CFG = BreakerConfig(
    failure_threshold=3,
    failure_rate=None,
    open_duration=10.0,
    open_multiplier=2.0,
    max_open_duration=35.0,
    half_open_max_calls=2,
    half_open_successes=2,
)


def breaker_in(state: BreakerState, now: float = 0.0) -> CircuitBreaker:
    """A breaker brought into `state` at time `now` through its public inputs."""
    breaker = CircuitBreaker(CFG)
    if state is CLOSED:
        return breaker
    for _ in range(3):
        breaker.record_failure(now - 10.0 if state is HALF else now)
    if state is HALF:
        assert breaker.state(now) is HALF
    assert breaker.state(now) is state
    return breaker


# (state, input) -> (next state, admitted); None means "not in the table: raises".
EXPECTED: dict[tuple[BreakerState, BreakerInput], tuple[BreakerState, bool] | None] = {
    (CLOSED, BreakerInput.ALLOW): (CLOSED, True),
    (CLOSED, BreakerInput.SUCCESS): (CLOSED, True),
    (CLOSED, BreakerInput.FAILURE): (CLOSED, True),  # one failure of three
    (CLOSED, BreakerInput.OPEN_EXPIRED): None,
    (CLOSED, BreakerInput.RELEASE): (CLOSED, True),
    (OPEN, BreakerInput.ALLOW): (OPEN, False),
    (OPEN, BreakerInput.SUCCESS): (OPEN, True),  # a late result is ignored
    (OPEN, BreakerInput.FAILURE): (OPEN, True),
    (OPEN, BreakerInput.OPEN_EXPIRED): (HALF, True),
    (OPEN, BreakerInput.RELEASE): (OPEN, True),
    (HALF, BreakerInput.ALLOW): (HALF, True),  # first trial of two
    (HALF, BreakerInput.SUCCESS): (HALF, True),  # one success of two needed
    (HALF, BreakerInput.FAILURE): (OPEN, True),
    (HALF, BreakerInput.OPEN_EXPIRED): None,
    (HALF, BreakerInput.RELEASE): (HALF, True),
}


def test_expected_table_covers_every_pair() -> None:
    assert set(EXPECTED) == {(s, i) for s in BreakerState for i in BreakerInput}
    assert {k for k, v in EXPECTED.items() if v is not None} == set(TRANSITIONS)


@pytest.mark.parametrize(("state", "event"), list(EXPECTED))
def test_every_state_and_input(state: BreakerState, event: BreakerInput) -> None:
    breaker = breaker_in(state)
    expected = EXPECTED[(state, event)]
    if expected is None:
        with pytest.raises(BreakerStateError):
            breaker.apply(event, 0.0)
        assert breaker.state(0.0) is state  # unchanged
        return
    admitted = breaker.apply(event, 0.0)
    assert (breaker.state(0.0) if event is not BreakerInput.OPEN_EXPIRED else HALF) is expected[0]
    assert admitted is expected[1]


def test_consecutive_failures_trip_and_success_resets_the_count() -> None:
    breaker = CircuitBreaker(CFG)
    breaker.record_failure(0)
    breaker.record_failure(0)
    breaker.record_success(0)
    breaker.record_failure(0)
    breaker.record_failure(0)
    assert breaker.state(0) is CLOSED
    breaker.record_failure(0)
    assert breaker.state(0) is OPEN and breaker.next_deadline() == 10.0


def test_failure_rate_over_the_window_trips() -> None:
    cfg = BreakerConfig(failure_threshold=0, failure_rate=0.5, window=10.0, minimum_calls=4)
    breaker = CircuitBreaker(cfg)
    for t, ok in [(0, True), (1, False), (2, True)]:
        (breaker.record_success if ok else breaker.record_failure)(t)
    assert breaker.state(3) is CLOSED  # only 3 outcomes seen
    breaker.record_failure(3)  # 2 of 4 failed
    assert breaker.state(3) is OPEN


def test_old_outcomes_leave_the_window() -> None:
    cfg = BreakerConfig(failure_threshold=0, failure_rate=0.5, window=10.0, minimum_calls=4)
    breaker = CircuitBreaker(cfg)
    breaker.record_failure(0)
    breaker.record_failure(1)
    for t in (20, 21, 22):
        breaker.record_success(t)
    breaker.record_failure(23)  # the failures at 0 and 1 have left the window: 1 of 4
    assert breaker.state(23) is CLOSED


def test_open_period_grows_on_repeated_trips_and_is_capped() -> None:
    breaker = breaker_in(OPEN, now=0.0)
    assert breaker.next_deadline() == 10.0
    assert not breaker.allow(9.999)
    assert breaker.allow(10.0)  # half-open trial
    breaker.record_failure(10.0)
    assert breaker.next_deadline() == 30.0  # 20 s second time
    assert breaker.allow(30.0)
    breaker.record_failure(30.0)
    assert breaker.next_deadline() == 65.0  # 40 s capped at 35


def test_half_open_admits_limited_trials_and_closes_after_successes() -> None:
    breaker = breaker_in(HALF, now=0.0)
    assert breaker.allow(0) and breaker.allow(0)
    assert not breaker.allow(0)  # two trials at most
    breaker.record_success(0)
    assert breaker.state(0) is HALF
    breaker.record_success(0)
    assert breaker.state(0) is CLOSED
    # Closing resets the trip count: the next trip is 10 s again.
    for _ in range(3):
        breaker.record_failure(1)
    assert breaker.next_deadline() == 11.0


def test_release_frees_a_trial_slot() -> None:
    breaker = breaker_in(HALF, now=0.0)
    assert breaker.allow(0) and breaker.allow(0) and not breaker.allow(0)
    breaker.release(0)
    assert breaker.allow(0)


def test_listener_and_transition_counts() -> None:
    seen: list[tuple[BreakerState, BreakerState, float]] = []
    breaker = CircuitBreaker(CFG, listener=lambda a, b, t: seen.append((a, b, t)))
    for _ in range(3):
        breaker.record_failure(1.0)
    breaker.allow(11.0)
    breaker.record_success(11.5)
    breaker.record_success(11.6)
    assert seen == [(CLOSED, OPEN, 1.0), (OPEN, HALF, 11.0), (HALF, CLOSED, 11.6)]
    assert breaker.transitions == {(CLOSED, OPEN): 1, (OPEN, HALF): 1, (HALF, CLOSED): 1}


def test_config_is_validated() -> None:
    with pytest.raises(ValueError):
        BreakerConfig(half_open_max_calls=1, half_open_successes=2)
    with pytest.raises(ValueError):
        BreakerConfig(open_duration=10.0, max_open_duration=5.0)


steps = st.lists(
    st.tuples(
        st.sampled_from(["allow", "success", "failure", "release", "state"]),
        st.floats(0.0, 15.0),
    ),
    max_size=120,
)


@settings(max_examples=500, derandomize=True, deadline=None)
@given(steps)
def test_invariants_over_random_outcome_sequences(sequence: list[tuple[str, float]]) -> None:
    breaker = CircuitBreaker(CFG)
    now = 0.0
    open_until: float | None = None
    trials = 0
    previous = CLOSED
    for action, dt in sequence:
        now += dt
        before = breaker.state(now)
        if before is HALF and previous is not HALF:
            trials = 0  # a new half-open period (the timer may fire inside state())
        if before is OPEN:
            assert open_until is not None
            assert now < open_until  # never still OPEN past its period
        if action == "allow":
            admitted = breaker.allow(now)
            if before is OPEN:
                assert not admitted  # open never admits before open_duration
            if before is HALF:
                trials += admitted
                assert trials <= CFG.half_open_max_calls  # half-open admits at most N
        elif action == "success":
            breaker.record_success(now)
        elif action == "failure":
            breaker.record_failure(now)
        elif action == "release":
            breaker.release(now)
            if before is HALF and trials:
                trials -= 1
        after = breaker.state(now)
        if after is OPEN and before is not OPEN:
            open_until = breaker.next_deadline()
            assert open_until is not None
            open_for = open_until - now
            assert CFG.open_duration - 1e-9 <= open_for <= CFG.max_open_duration + 1e-9
        if after is HALF and before is not HALF:
            trials = 0
        previous = after
