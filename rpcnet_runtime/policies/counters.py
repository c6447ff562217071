"""Counters of what the policies did, readable from the channel and the server."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .breaker import BreakerState

__all__ = ["PolicyCounters"]


@dataclass(slots=True)
class PolicyCounters:
    """Monotonic counts; `snapshot()` returns them as a plain dict."""

    calls: int = 0
    """Logical calls the executor carried out."""
    attempts: int = 0
    """Attempts sent, the first of each call, retries and hedges included."""
    retries: int = 0
    hedges: int = 0
    """Hedged attempts sent (the first attempt of a hedged call is not counted)."""
    throttled: int = 0
    """Retries or hedges the retry throttle refused."""
    deadline_exceeded: int = 0
    """Calls that ended because their whole-call deadline passed."""
    breaker_rejections: int = 0
    """Attempts refused at once because the endpoint's breaker was open."""
    breaker_transitions: int = 0
    breaker_opened: int = 0
    dedupe_hits: int = 0
    """Repeated idempotency keys answered from the store without running the handler."""
    dedupe_waits: int = 0
    """Repeats that waited for an in-flight first execution."""
    dedupe_conflicts: int = 0
    """Keys reused with a different request."""
    dedupe_rejected: int = 0
    """Claims refused because the store or a key's waiters were full."""
    shed: int = 0
    """Calls refused before dispatch by load shedding."""
    queued: int = 0
    """Calls that waited in the admission queue."""

    def snapshot(self) -> dict[str, int]:
        return dataclasses.asdict(self)

    def on_breaker_transition(self, old: BreakerState, new: BreakerState, now: float) -> None:
        """A `TransitionListener` for `CircuitBreaker`."""
        self.breaker_transitions += 1
        if new is BreakerState.OPEN:
            self.breaker_opened += 1
