"""Worker health (healthy / degraded / failed) and outlier ejection; time is passed in.

Health
------
`assess` folds what is known about a worker into one `Health` (a state and the reason for it).
The first rule that matches wins:

=========  ==================================================================================
FAILED     membership says FAILED or LEFT; phi >= ``phi_failed`` (8.0, the membership
           threshold); the worker's circuit breaker is OPEN; the worker is ejected as an
           outlier (see below).
DEGRADED   membership says SUSPECT; phi >= ``phi_degraded`` (3.0: the detector's estimate of
           a false alarm is ~0.1%); the breaker is HALF_OPEN (recovering); over the last
           ``error_window`` seconds (10) at least ``min_calls`` (5) calls ended and at least
           ``degraded_error_rate`` (25%) of them failed.
HEALTHY    anything else.
=========  ==================================================================================

A call refused because the worker sheds load is neither a success nor a failure: it tells us
the worker is busy, not broken, and counts in none of these figures.

Outlier ejection
----------------
Membership only sees whether a node answers gossip. A worker whose gossip is fine but whose
calls fail (a broken disk, a bad deploy) is caught by `OutlierDetector`, as Envoy's outlier
detection does: ``consecutive_failures`` (5) failed calls in a row eject the worker for
``base_ejection`` seconds (30) times the number of times it has been ejected, capped at
``max_ejection`` (300). Each ``base_ejection`` period that passes after a return without a new
ejection forgets one earlier ejection. An ejection is refused when it would take the share of
ejected workers above ``max_ejection_percent`` (50%) or leave no worker in, so outlier
ejection never empties the cluster; a refused worker stays in (its breaker still guards it).
"""

from __future__ import annotations

import enum
import math
from collections import deque
from dataclasses import dataclass

from ..policies.breaker import BreakerState
from .types import MemberState

__all__ = [
    "CallOutcome",
    "ErrorWindow",
    "Health",
    "HealthConfig",
    "HealthState",
    "OutlierConfig",
    "OutlierDetector",
    "assess",
]


class HealthState(enum.Enum):
    HEALTHY = "healthy"
    DEGRADED = "degraded"
    FAILED = "failed"


class CallOutcome(enum.Enum):
    """How a call to a worker ended, as the registry's call accounting sees it."""

    SUCCESS = "success"
    FAILURE = "failure"
    """The worker failed the call: connection lost, timeout, INTERNAL, UNAVAILABLE ..."""
    SHED = "shed"
    """The worker refused the call unprocessed because it is overloaded: not a failure."""
    CANCELLED = "cancelled"
    """The caller gave up (a losing hedge, a cancelled call): says nothing about the worker."""


@dataclass(frozen=True, slots=True)
class Health:
    state: HealthState
    reason: str = ""
    """Why the worker is not healthy (empty when it is)."""

    def __str__(self) -> str:
        return f"{self.state.value} ({self.reason})" if self.reason else self.state.value


HEALTHY = Health(HealthState.HEALTHY)


@dataclass(frozen=True, slots=True)
class HealthConfig:
    """Thresholds of `assess`; the defaults are documented in the module docstring."""

    phi_degraded: float = 3.0
    phi_failed: float = 8.0
    error_window: float = 10.0
    """Seconds of call outcomes the error rate looks at."""
    min_calls: int = 5
    """Outcomes needed in the window before the error rate counts."""
    degraded_error_rate: float = 0.25
    max_samples: int = 1000
    """Bound on the outcomes kept per worker (the oldest go first)."""

    def __post_init__(self) -> None:
        if not 0 <= self.phi_degraded <= self.phi_failed:
            raise ValueError("need 0 <= phi_degraded <= phi_failed")
        if self.error_window <= 0 or self.min_calls < 1 or self.max_samples < self.min_calls:
            raise ValueError("need error_window > 0 and 1 <= min_calls <= max_samples")
        if not 0 < self.degraded_error_rate <= 1:
            raise ValueError("degraded_error_rate must be in (0, 1]")


class ErrorWindow:
    """Outcomes of the last `window` seconds (at most `max_samples`), with their error rate."""

    __slots__ = ("_failures", "_outcomes", "window")

    def __init__(self, window: float = 10.0, max_samples: int = 1000) -> None:
        if window <= 0 or max_samples < 1:
            raise ValueError("need window > 0 and max_samples >= 1")
        self.window = window
        self._outcomes: deque[tuple[float, bool]] = deque(maxlen=max_samples)
        self._failures = 0

    def record(self, now: float, *, failed: bool) -> None:
        if len(self._outcomes) == self._outcomes.maxlen:
            self._failures -= self._outcomes[0][1]  # evicted by the append below
        self._outcomes.append((now, failed))
        self._failures += failed
        self._expire(now)

    def counts(self, now: float) -> tuple[int, int]:
        """(calls, failures) within the window ending at `now`."""
        self._expire(now)
        return len(self._outcomes), self._failures

    def rate(self, now: float) -> float:
        """Share of failures in the window (0.0 when empty)."""
        calls, failures = self.counts(now)
        return failures / calls if calls else 0.0

    def _expire(self, now: float) -> None:
        horizon = now - self.window
        while self._outcomes and self._outcomes[0][0] <= horizon:
            self._failures -= self._outcomes.popleft()[1]

    def __repr__(self) -> str:
        return f"ErrorWindow(calls={len(self._outcomes)}, failures={self._failures})"


def assess(
    config: HealthConfig,
    *,
    member_state: MemberState,
    phi: float,
    breaker: BreakerState,
    calls: int,
    failures: int,
    ejected: bool,
) -> Health:
    """The health of one worker; see the table in the module docstring."""
    if member_state in (MemberState.FAILED, MemberState.LEFT):
        return Health(HealthState.FAILED, f"member {member_state.value}")
    if phi >= config.phi_failed:
        return Health(HealthState.FAILED, f"phi {_fmt_phi(phi)}")
    if breaker is BreakerState.OPEN:
        return Health(HealthState.FAILED, "breaker open")
    if ejected:
        return Health(HealthState.FAILED, "ejected")
    if member_state is MemberState.SUSPECT:
        return Health(HealthState.DEGRADED, "member suspect")
    if phi >= config.phi_degraded:
        return Health(HealthState.DEGRADED, f"phi {_fmt_phi(phi)}")
    if breaker is BreakerState.HALF_OPEN:
        return Health(HealthState.DEGRADED, "breaker half-open")
    if calls >= config.min_calls and failures >= config.degraded_error_rate * calls:
        return Health(HealthState.DEGRADED, f"{failures}/{calls} calls failed")
    return HEALTHY


def _fmt_phi(phi: float) -> str:
    return "inf" if math.isinf(phi) else f"{phi:.1f}"


@dataclass(frozen=True, slots=True)
class OutlierConfig:
    """When a worker is ejected and for how long; defaults in the module docstring."""

    consecutive_failures: int = 5
    base_ejection: float = 30.0
    max_ejection: float = 300.0
    max_ejection_percent: float = 50.0

    def __post_init__(self) -> None:
        if self.consecutive_failures < 1:
            raise ValueError("consecutive_failures must be >= 1")
        if not 0 < self.base_ejection <= self.max_ejection:
            raise ValueError("need 0 < base_ejection <= max_ejection")
        if not 0 <= self.max_ejection_percent <= 100:
            raise ValueError("max_ejection_percent must be in [0, 100]")


@dataclass(slots=True)
class _Outlier:
    consecutive: int = 0
    level: int = 0
    """Ejections not yet forgotten; the next one lasts ``base * (level + 1)``."""
    ejected_until: float | None = None
    returned_at: float | None = None


class OutlierDetector:
    """Per-worker consecutive-failure ejection with a growing, bounded period."""

    def __init__(self, config: OutlierConfig | None = None) -> None:
        self.config = config or OutlierConfig()
        self._workers: dict[str, _Outlier] = {}
        self._next_release: float | None = None
        self.ejections = 0
        """Ejections carried out."""
        self.refused = 0
        """Ejections refused by the ejection-percentage bound."""

    def track(self, worker_id: str) -> None:
        self._workers.setdefault(worker_id, _Outlier())

    def forget(self, worker_id: str) -> None:
        self._workers.pop(worker_id, None)

    def record(self, worker_id: str, *, failed: bool, now: float) -> bool:
        """Feed one call outcome; True when this outcome ejected the worker."""
        self._release(now)
        state = self._workers.setdefault(worker_id, _Outlier())
        if not failed:
            state.consecutive = 0
            return False
        state.consecutive += 1
        if state.ejected_until is not None or state.consecutive < self.config.consecutive_failures:
            return False
        if not self._may_eject():
            self.refused += 1
            return False
        self._forget_levels(state, now)
        period = min(self.config.base_ejection * (state.level + 1), self.config.max_ejection)
        state.level += 1
        state.ejected_until = now + period
        if self._next_release is None or state.ejected_until < self._next_release:
            self._next_release = state.ejected_until
        state.consecutive = 0
        self.ejections += 1
        return True

    def is_ejected(self, worker_id: str, now: float) -> bool:
        self._release(now)
        state = self._workers.get(worker_id)
        return state is not None and state.ejected_until is not None

    def ejected(self, now: float) -> set[str]:
        self._release(now)
        return {wid for wid, s in self._workers.items() if s.ejected_until is not None}

    def ejected_until(self, worker_id: str) -> float | None:
        state = self._workers.get(worker_id)
        return state.ejected_until if state is not None else None

    def next_deadline(self) -> float | None:
        """When the next ejected worker returns; None when none is ejected."""
        times = [s.ejected_until for s in self._workers.values() if s.ejected_until is not None]
        return min(times) if times else None

    def _may_eject(self) -> bool:
        total = len(self._workers)
        already = sum(1 for s in self._workers.values() if s.ejected_until is not None)
        if already + 1 >= total:
            return False  # never eject the last worker in
        return (already + 1) * 100 <= self.config.max_ejection_percent * total

    def _forget_levels(self, state: _Outlier, now: float) -> None:
        if state.returned_at is None or state.level == 0:
            return
        quiet = int((now - state.returned_at) // self.config.base_ejection)
        state.level = max(0, state.level - quiet)

    def _release(self, now: float) -> None:
        if self._next_release is None or now < self._next_release:
            return  # the common case costs one comparison
        for state in self._workers.values():
            if state.ejected_until is not None and now >= state.ejected_until:
                state.returned_at = state.ejected_until
                state.ejected_until = None
                state.consecutive = 0
        self._next_release = self.next_deadline()

    def __repr__(self) -> str:
        ejected = sorted(w for w, s in self._workers.items() if s.ejected_until is not None)
        return f"OutlierDetector(workers={len(self._workers)}, ejected={ejected})"
