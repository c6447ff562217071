"""gRFC A6 exponential backoff with full jitter.

The n-th retry (n = 1 for the first retry) waits a delay drawn uniformly from
``[0, min(initial * multiplier ** (n - 1), maximum))``. The random source is injected so that
tests and benchmarks are reproducible.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

__all__ = ["backoff_bound", "backoff_delays"]


def backoff_bound(n: int, initial: float, maximum: float, multiplier: float = 2.0) -> float:
    """The upper bound of the n-th jittered delay (n >= 1), capped at `maximum`."""
    if n < 1:
        raise ValueError(f"retry number must be >= 1, got {n}")
    if initial < 0 or maximum < 0 or multiplier < 1:
        raise ValueError("backoff needs initial >= 0, maximum >= 0 and multiplier >= 1")
    bound = initial
    # Multiply step by step and stop at the cap: no overflow for large n.
    for _ in range(n - 1):
        if bound >= maximum:
            break
        bound *= multiplier
    return min(bound, maximum)


def backoff_delays(
    initial: float, maximum: float, multiplier: float, rng: random.Random
) -> Iterator[float]:
    """Yield the jittered delays of retries 1, 2, 3, ... forever."""
    n = 1
    while True:
        yield rng.uniform(0.0, backoff_bound(n, initial, maximum, multiplier))
        n += 1
