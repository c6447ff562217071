"""Lifeguard local health awareness.

A node that misses acks because *it* is slow (CPU starved, paused, its own link lossy) would
otherwise suspect healthy peers. Awareness keeps a score in ``[0, max_multiplier - 1]``: it goes
up when the node has evidence of its own trouble (an indirect probe whose relays did not even send
the expected nacks, having to refute a suspicion about itself) and down on each successful probe.
Probe timeouts and the protocol period are multiplied by ``score + 1``, so an unhealthy node probes
more slowly and waits longer before suspecting anyone.
"""

from __future__ import annotations

__all__ = ["Awareness"]


class Awareness:
    """A bounded health score; 0 is healthy."""

    __slots__ = ("_score", "max_multiplier")

    def __init__(self, max_multiplier: int) -> None:
        if max_multiplier < 1:
            raise ValueError("max_multiplier must be >= 1")
        self.max_multiplier = max_multiplier
        self._score = 0

    @property
    def score(self) -> int:
        return self._score

    def apply_delta(self, delta: int) -> int:
        """Add `delta` to the score, clamped to ``[0, max_multiplier - 1]``; returns the score."""
        self._score = min(self.max_multiplier - 1, max(0, self._score + delta))
        return self._score

    def scale(self, timeout: float) -> float:
        """`timeout` stretched by the current health: ``timeout * (score + 1)``."""
        return timeout * (self._score + 1)

    def __repr__(self) -> str:
        return f"Awareness(score={self._score}, max_multiplier={self.max_multiplier})"
