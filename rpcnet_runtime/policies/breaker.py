"""A per-endpoint circuit breaker: CLOSED, OPEN, HALF_OPEN, driven by (input, now).

Theory of operation
-------------------
CLOSED admits every call and watches outcomes. It trips to OPEN after `failure_threshold`
consecutive failures, or when, over the last `window` seconds, at least `minimum_calls` outcomes
were seen and the share of failures reached `failure_rate`.

OPEN refuses every call until its open period ends. The period is `open_duration`, multiplied by
`open_multiplier` for every trip in a row that did not close in between (a trial call that fails
sends the breaker back to OPEN for longer), capped at `max_open_duration`. Outcomes of calls
admitted before the trip are ignored.

HALF_OPEN admits at most `half_open_max_calls` trial calls at a time (a trial cancelled without
an outcome gives its slot back through `release`). `half_open_successes` successes close
the breaker (and reset the trip count); any failure opens it again.

The behaviour is one transition table, `TRANSITIONS`, from (state, input) to a handler; a pair
absent from the table raises `BreakerStateError`. The timer (OPEN's period ending) is an input
like the others, applied lazily whenever the breaker is consulted with a `now`.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

__all__ = [
    "TRANSITIONS",
    "BreakerConfig",
    "BreakerInput",
    "BreakerState",
    "BreakerStateError",
    "CircuitBreaker",
    "TransitionListener",
]


class BreakerState(enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class BreakerInput(enum.Enum):
    ALLOW = "allow"
    """A call asks to be admitted."""
    SUCCESS = "success"
    FAILURE = "failure"
    OPEN_EXPIRED = "open_expired"
    """The open period has ended."""
    RELEASE = "release"
    """An admitted call ended without an outcome (cancelled, e.g. a losing hedge)."""


class BreakerStateError(RuntimeError):
    """An input arrived in a state that has no transition for it (a bug, not a call failure)."""


@dataclass(frozen=True, slots=True)
class BreakerConfig:
    """When the breaker trips, how long it stays open and how it probes."""

    failure_threshold: int = 5
    """Consecutive failures that trip the breaker (0 disables this rule)."""
    failure_rate: float | None = 0.5
    """Share of failures over `window` that trips the breaker; None disables this rule."""
    window: float = 10.0
    """Seconds of outcomes the failure rate looks at."""
    minimum_calls: int = 20
    """Outcomes in the window needed before the failure rate counts."""
    open_duration: float = 5.0
    """Seconds the breaker stays open after the first trip."""
    open_multiplier: float = 2.0
    """Growth of the open period for each further trip without closing in between."""
    max_open_duration: float = 60.0
    half_open_max_calls: int = 1
    """Trial calls admitted while half-open."""
    half_open_successes: int = 1
    """Successful trials that close the breaker (<= half_open_max_calls)."""

    def __post_init__(self) -> None:
        if self.failure_threshold < 0 or self.minimum_calls < 1 or self.window <= 0:
            raise ValueError("bad breaker thresholds")
        if self.failure_rate is not None and not 0 < self.failure_rate <= 1:
            raise ValueError("failure_rate must be in (0, 1]")
        if self.open_duration <= 0 or self.open_multiplier < 1:
            raise ValueError("open_duration must be > 0 and open_multiplier >= 1")
        if self.max_open_duration < self.open_duration:
            raise ValueError("max_open_duration must be >= open_duration")
        if not 1 <= self.half_open_successes <= self.half_open_max_calls:
            raise ValueError("need 1 <= half_open_successes <= half_open_max_calls")


TransitionListener = Callable[[BreakerState, BreakerState, float], None]
"""Called with (old state, new state, now) on every state change."""

_Handler = Callable[["CircuitBreaker", float], tuple[BreakerState, bool]]


def _closed_allow(b: CircuitBreaker, now: float) -> tuple[BreakerState, bool]:
    return BreakerState.CLOSED, True


def _closed_success(b: CircuitBreaker, now: float) -> tuple[BreakerState, bool]:
    b._consecutive = 0
    b._observe(now, failed=False)
    return BreakerState.CLOSED, True


def _closed_failure(b: CircuitBreaker, now: float) -> tuple[BreakerState, bool]:
    b._consecutive += 1
    b._observe(now, failed=True)
    if b._tripped():
        return b._open(now), True
    return BreakerState.CLOSED, True


def _open_allow(b: CircuitBreaker, now: float) -> tuple[BreakerState, bool]:
    return BreakerState.OPEN, False


def _open_ignore(b: CircuitBreaker, now: float) -> tuple[BreakerState, bool]:
    return BreakerState.OPEN, True


def _open_expired(b: CircuitBreaker, now: float) -> tuple[BreakerState, bool]:
    b._trials = 0
    b._trial_successes = 0
    return BreakerState.HALF_OPEN, True


def _release_slot(b: CircuitBreaker, now: float) -> tuple[BreakerState, bool]:
    if b._state is BreakerState.HALF_OPEN and b._trials > b._trial_successes:
        b._trials -= 1  # the trial slot is free again
    return b._state, True


def _half_open_allow(b: CircuitBreaker, now: float) -> tuple[BreakerState, bool]:
    if b._trials >= b.config.half_open_max_calls:
        return BreakerState.HALF_OPEN, False
    b._trials += 1
    return BreakerState.HALF_OPEN, True


def _half_open_success(b: CircuitBreaker, now: float) -> tuple[BreakerState, bool]:
    b._trial_successes += 1
    if b._trial_successes >= b.config.half_open_successes:
        b._trips = 0
        b._consecutive = 0
        b._outcomes.clear()
        b._failures_in_window = 0
        return BreakerState.CLOSED, True
    return BreakerState.HALF_OPEN, True


def _half_open_failure(b: CircuitBreaker, now: float) -> tuple[BreakerState, bool]:
    return b._open(now), True


TRANSITIONS: dict[tuple[BreakerState, BreakerInput], _Handler] = {
    (BreakerState.CLOSED, BreakerInput.ALLOW): _closed_allow,
    (BreakerState.CLOSED, BreakerInput.SUCCESS): _closed_success,
    (BreakerState.CLOSED, BreakerInput.FAILURE): _closed_failure,
    (BreakerState.OPEN, BreakerInput.ALLOW): _open_allow,
    (BreakerState.OPEN, BreakerInput.SUCCESS): _open_ignore,
    (BreakerState.OPEN, BreakerInput.FAILURE): _open_ignore,
    (BreakerState.OPEN, BreakerInput.OPEN_EXPIRED): _open_expired,
    (BreakerState.HALF_OPEN, BreakerInput.ALLOW): _half_open_allow,
    (BreakerState.HALF_OPEN, BreakerInput.SUCCESS): _half_open_success,
    (BreakerState.HALF_OPEN, BreakerInput.FAILURE): _half_open_failure,
    (BreakerState.CLOSED, BreakerInput.RELEASE): _release_slot,
    (BreakerState.OPEN, BreakerInput.RELEASE): _release_slot,
    (BreakerState.HALF_OPEN, BreakerInput.RELEASE): _release_slot,
}
"""(state, input) -> handler returning (next state, admitted). Absent pairs are errors."""


class CircuitBreaker:
    """The breaker of one endpoint; see the module docstring. Time is always passed in."""

    def __init__(
        self,
        config: BreakerConfig | None = None,
        *,
        listener: TransitionListener | None = None,
        name: str = "",
    ) -> None:
        self.config = config or BreakerConfig()
        self.name = name
        self._listeners: list[TransitionListener] = [listener] if listener else []
        self._state = BreakerState.CLOSED
        self._consecutive = 0
        self._outcomes: deque[tuple[float, bool]] = deque()
        self._failures_in_window = 0
        self._trips = 0
        self._open_until: float | None = None
        self._trials = 0
        self._trial_successes = 0
        self.transitions: dict[tuple[BreakerState, BreakerState], int] = {}
        """How many times each (old, new) transition happened."""

    # -- public inputs -------------------------------------------------------------------------

    def allow(self, now: float) -> bool:
        """May a call go to this endpoint now? A True in HALF_OPEN uses up a trial slot."""
        self._expire(now)
        return self.apply(BreakerInput.ALLOW, now)

    def record_success(self, now: float) -> None:
        self._expire(now)
        self.apply(BreakerInput.SUCCESS, now)

    def record_failure(self, now: float) -> None:
        self._expire(now)
        self.apply(BreakerInput.FAILURE, now)

    def release(self, now: float) -> None:
        """An admitted call ended with no outcome (cancelled): free its half-open trial slot."""
        self._expire(now)
        self.apply(BreakerInput.RELEASE, now)

    def state(self, now: float) -> BreakerState:
        """The state at `now` (an ended open period has become HALF_OPEN)."""
        self._expire(now)
        return self._state

    def next_deadline(self) -> float | None:
        """When the open period ends, while OPEN; else None."""
        return self._open_until if self._state is BreakerState.OPEN else None

    def add_listener(self, listener: TransitionListener) -> None:
        self._listeners.append(listener)

    def apply(self, event: BreakerInput, now: float) -> bool:
        """Run one transition; returns whether a call is admitted (True for outcome inputs)."""
        handler = TRANSITIONS.get((self._state, event))
        if handler is None:
            raise BreakerStateError(f"no transition for {event.name} in {self._state.name}")
        old = self._state
        new, admitted = handler(self, now)
        if new is not old:
            self._state = new
            key = (old, new)
            self.transitions[key] = self.transitions.get(key, 0) + 1
            for listener in self._listeners:
                listener(old, new, now)
        return admitted

    # -- helpers used by the table ---------------------------------------------------------------

    def _expire(self, now: float) -> None:
        if (
            self._state is BreakerState.OPEN
            and self._open_until is not None
            and now >= self._open_until
        ):
            self.apply(BreakerInput.OPEN_EXPIRED, now)

    def _observe(self, now: float, *, failed: bool) -> None:
        self._outcomes.append((now, failed))
        self._failures_in_window += failed
        horizon = now - self.config.window
        while self._outcomes and self._outcomes[0][0] <= horizon:
            _, old_failed = self._outcomes.popleft()
            self._failures_in_window -= old_failed

    def _tripped(self) -> bool:
        cfg = self.config
        if cfg.failure_threshold and self._consecutive >= cfg.failure_threshold:
            return True
        seen = len(self._outcomes)
        return (
            cfg.failure_rate is not None
            and seen >= cfg.minimum_calls
            and self._failures_in_window >= cfg.failure_rate * seen
        )

    def _open(self, now: float) -> BreakerState:
        cfg = self.config
        duration = cfg.open_duration * cfg.open_multiplier ** min(self._trips, 64)
        self._trips += 1
        self._open_until = now + min(duration, cfg.max_open_duration)
        self._consecutive = 0
        self._outcomes.clear()
        self._failures_in_window = 0
        return BreakerState.OPEN

    def __repr__(self) -> str:
        return (
            f"CircuitBreaker(name={self.name!r}, state={self._state.name}, "
            f"open_until={self._open_until!r})"
        )
