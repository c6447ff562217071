"""Lifeguard suspicion: a timeout that shrinks as independent members confirm the suspicion.

A suspicion starts at `max_timeout`. Each confirmation from a member other than those already
counted shortens it, following memberlist's formula

    timeout = max(min, max - (max - min) * log(C + 1) / log(K + 1))

where C is the number of confirmations so far and K the number expected, so after K
confirmations the timeout is `min_timeout`. With K == 0 (a cluster too small to expect
confirmations) the timeout is `min_timeout` from the start. Time is passed in; nothing here
schedules anything: the owner asks for `deadline` and acts when its clock passes it.
"""

from __future__ import annotations

import math

__all__ = ["Suspicion", "remaining_suspicion_time", "suspicion_timeout"]


def suspicion_timeout(
    confirmations: int, expected: int, min_timeout: float, max_timeout: float
) -> float:
    """Total suspicion timeout after `confirmations` of `expected` independent confirmations."""
    if expected < 1:
        return min_timeout
    frac = math.log(confirmations + 1) / math.log(expected + 1)
    return max(min_timeout, max_timeout - (max_timeout - min_timeout) * frac)


def remaining_suspicion_time(
    confirmations: int, expected: int, elapsed: float, min_timeout: float, max_timeout: float
) -> float:
    """Seconds left (negative when overdue) of a suspicion started `elapsed` seconds ago."""
    return suspicion_timeout(confirmations, expected, min_timeout, max_timeout) - elapsed


class Suspicion:
    """The suspicion of one member, started by `from_id` at time `start`."""

    __slots__ = ("_confirmed", "_deadline", "expected", "max_timeout", "min_timeout", "start")

    def __init__(
        self, from_id: str, expected: int, min_timeout: float, max_timeout: float, start: float
    ) -> None:
        if not 0 < min_timeout <= max_timeout:
            raise ValueError("need 0 < min_timeout <= max_timeout")
        self.expected = max(0, expected)
        self.min_timeout = min_timeout
        self.max_timeout = max_timeout
        self.start = start
        self._confirmed: set[str] = {from_id}
        self._deadline = start + suspicion_timeout(0, self.expected, min_timeout, max_timeout)

    @property
    def confirmations(self) -> int:
        """Independent confirmations received after the suspicion started."""
        return len(self._confirmed) - 1

    @property
    def deadline(self) -> float:
        """Time at which the suspect is to be declared failed."""
        return self._deadline

    def confirm(self, from_id: str) -> bool:
        """Count a confirmation from `from_id`; True if it was new and shortened the timeout."""
        if self.confirmations >= self.expected or from_id in self._confirmed:
            return False
        self._confirmed.add(from_id)
        timeout = suspicion_timeout(
            self.confirmations, self.expected, self.min_timeout, self.max_timeout
        )
        self._deadline = self.start + timeout
        return True

    def postpone(self, seconds: float) -> None:
        """Shift the suspicion later by `seconds` (time this node spent stalled)."""
        self.start += seconds
        self._deadline += seconds

    def remaining(self, now: float) -> float:
        """Seconds until `deadline` (negative when overdue)."""
        return self._deadline - now

    def __repr__(self) -> str:
        return (
            f"Suspicion(confirmations={self.confirmations}/{self.expected}, "
            f"deadline={self._deadline:.3f})"
        )
