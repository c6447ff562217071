"""Pure planning of gRFC A6 hedging.

The first attempt goes out at once; another follows every `delay` seconds while no answer has
come, up to `max_attempts`. The first success wins and every other attempt is cancelled. A
failure with a *fatal* status (one not in the policy's non-fatal list, and not a
`not_processed` refusal) ends the call at once, cancelling the rest. A non-fatal failure starts
the next hedge at once, or after the server's pushback; a negative pushback stops further hedges.
Hedges after the first attempt need the per-server retry throttle's permission; once refused,
no more hedges are sent. When every attempt has failed and none may follow, the call fails with
the last failure.

`HedgePlan` holds this state for one call; time is passed in and nothing here awaits.
"""

from __future__ import annotations

import enum

from ..descriptors import HedgePolicy
from ..errors import RpcError

__all__ = ["HedgePlan", "HedgeVerdict"]


class HedgeVerdict(enum.Enum):
    WIN = "win"
    """This attempt's result is the call's: cancel the others."""
    FAIL = "fail"
    """The call fails with this attempt's error: cancel the others."""
    CONTINUE = "continue"
    """Keep waiting for outstanding attempts or the next hedge."""


class HedgePlan:
    """The hedging state of one logical call (see the module docstring)."""

    __slots__ = ("_next_due", "_policy", "outstanding", "started", "stopped", "throttled")

    def __init__(self, policy: HedgePolicy, now: float) -> None:
        if policy.max_attempts < 1 or policy.delay < 0:
            raise ValueError("hedging needs max_attempts >= 1 and delay >= 0")
        self._policy = policy
        self._next_due: float | None = now
        self.started = 0
        """Attempts launched so far."""
        self.outstanding = 0
        """Attempts launched and not yet finished."""
        self.stopped = False
        """True once no further attempt may be launched (pushback or throttle)."""
        self.throttled = False
        """True when the retry throttle refused a hedge."""

    def can_launch_more(self) -> bool:
        return not self.stopped and self.started < self._policy.max_attempts

    def next_deadline(self) -> float | None:
        """When the next attempt is due, or None when no more will be launched."""
        return self._next_due if self.can_launch_more() else None

    def due(self, now: float) -> bool:
        due = self.next_deadline()
        return due is not None and now >= due

    def launch(self, now: float, *, throttle_allows: bool = True) -> bool:
        """Ask to launch the attempt that is due; True means launch it now.

        A hedge (any attempt after the first) refused by the throttle stops hedging.
        """
        if not self.due(now):
            return False
        if self.started > 0 and not throttle_allows:
            self.stopped = True
            self.throttled = True
            return False
        self.started += 1
        self.outstanding += 1
        self._next_due = now + self._policy.delay
        return True

    def succeeded(self) -> HedgeVerdict:
        """An attempt returned a response: it wins."""
        self.outstanding -= 1
        self.stopped = True
        return HedgeVerdict.WIN

    def is_fatal(self, failure: RpcError) -> bool:
        return not failure.not_processed and failure.status not in self._policy.non_fatal_statuses

    def failed(self, now: float, failure: RpcError) -> HedgeVerdict:
        """An attempt failed: fail the call, or go on (perhaps launching the next hedge now)."""
        self.outstanding -= 1
        if self.is_fatal(failure):
            self.stopped = True
            return HedgeVerdict.FAIL
        pushback = failure.retry_after_seconds
        if pushback is not None and pushback < 0:
            self.stopped = True
        elif self.can_launch_more():
            self._next_due = now + (pushback if pushback is not None else 0.0)
        return HedgeVerdict.FAIL if self.exhausted() else HedgeVerdict.CONTINUE

    def stop(self) -> None:
        """Launch nothing more (the breaker refused, or the deadline is near)."""
        self.stopped = True

    def exhausted(self) -> bool:
        """Nothing outstanding and nothing more to launch: the call has failed."""
        return self.outstanding == 0 and not self.can_launch_more()

    def __repr__(self) -> str:
        return (
            f"HedgePlan(started={self.started}, outstanding={self.outstanding}, "
            f"next_due={self.next_deadline()!r}, stopped={self.stopped})"
        )
