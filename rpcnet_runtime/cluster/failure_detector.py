"""Phi accrual failure detector (Hayashibara et al.), with Akka's logistic approximation.

Theory of operation
-------------------
The detector keeps a bounded window of the intervals between heartbeats and models the next
interval as normally distributed with the window's mean and standard deviation. ``phi(now)`` is
``-log10(P(interval > now - last_heartbeat))``: phi 1 means a 10 % chance that the peer is still
alive and merely late, phi 8 (the default threshold) a 1e-8 chance.

The normal CDF uses the logistic approximation Akka's ``PhiAccrualFailureDetector`` uses, so the
figures compare with Akka's::

    y = (t - mean) / std
    e = exp(-y * (1.5976 + 0.070566 * y * y))
    phi = -log10(e / (1 + e))            if t > mean
    phi = -log10(1 - 1 / (1 + e))        otherwise

Both branches equal ``log10(1 + exp(a))`` with ``a = y * (1.5976 + 0.070566 * y * y)``; this
module evaluates that form as a stable softplus, so it neither overflows nor loses precision for
outliers (Akka relies on Java's infinities there).

As in Akka: ``mean`` includes ``acceptable_heartbeat_pause``; ``std`` is at least
``min_std_deviation``; the first heartbeat seeds the window with ``mean ± mean / 4`` where
``mean = first_heartbeat_estimate``; an interval is recorded only if the peer was still available
when its heartbeat arrived, so one long pause does not teach the detector to tolerate pauses.
The window keeps O(1) running sums (shifted to limit cancellation) and recomputes them exactly
each time it wraps around, so float drift cannot accumulate.

All times are seconds on any monotonic clock; the caller passes them in (sans-IO).
"""

from __future__ import annotations

import math
from collections import deque

__all__ = ["PhiAccrualDetector", "phi_value"]

_A = 1.5976
_B = 0.070566
_LN10 = math.log(10.0)


def phi_value(time_diff: float, mean: float, std_deviation: float) -> float:
    """Phi for a heartbeat `time_diff` seconds late, given the interval distribution.

    :param time_diff: seconds since the last heartbeat.
    :param mean: expected interval (seconds).
    :param std_deviation: interval standard deviation (seconds), > 0.
    """
    y = (time_diff - mean) / std_deviation
    a = y * (_A + _B * y * y)
    # log10(1 + exp(a)) without overflow (a large) or underflow to log(0) (a very negative).
    if a > 0.0:
        return (a + math.log1p(math.exp(-a))) / _LN10
    return math.log1p(math.exp(a)) / _LN10


def _time_at_phi(threshold: float, mean: float, std_deviation: float) -> float:
    """Smallest ``time_diff`` (approximately) at which ``phi_value`` reaches `threshold`."""
    # Invert the softplus, then solve the depressed cubic B*y^3 + A*y - a = 0 (one real root).
    a = threshold * _LN10 + math.log1p(-math.pow(10.0, -threshold))
    p = _A / _B
    q = -a / _B
    root = math.sqrt(q * q / 4.0 + p * p * p / 27.0)  # inf for absurd thresholds: handled below
    y = math.cbrt(-q / 2.0 + root) + math.cbrt(-q / 2.0 - root)
    if not math.isfinite(y):
        return math.inf
    for _ in range(3):  # Newton steps repair the cancellation in Cardano's formula
        y -= (_B * y * y * y + _A * y - a) / (3.0 * _B * y * y + _A)
    return mean + y * std_deviation


def _require_finite(name: str, value: float) -> None:
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")


class _History:
    """A bounded window of intervals with running mean and (population) variance."""

    __slots__ = ("_count_since_rebuild", "_shift", "_size", "_sum", "_sum_sq", "_values")

    def __init__(self, size: int, shift: float) -> None:
        self._size = size
        self._values: deque[float] = deque()
        self._shift = shift  # sums are of (value - shift): keeps them small, limits cancellation
        self._sum = 0.0
        self._sum_sq = 0.0
        self._count_since_rebuild = 0

    def __len__(self) -> int:
        return len(self._values)

    def append(self, value: float) -> None:
        if len(self._values) == self._size:
            old = self._values.popleft() - self._shift
            self._sum -= old
            self._sum_sq -= old * old
        self._values.append(value)
        d = value - self._shift
        self._sum += d
        self._sum_sq += d * d
        self._count_since_rebuild += 1
        if self._count_since_rebuild >= self._size:
            self._rebuild()

    def _rebuild(self) -> None:
        self._shift = math.fsum(self._values) / len(self._values)
        self._sum = math.fsum(v - self._shift for v in self._values)
        self._sum_sq = math.fsum((v - self._shift) ** 2 for v in self._values)
        self._count_since_rebuild = 0

    @property
    def mean(self) -> float:
        return self._shift + self._sum / len(self._values)

    @property
    def variance(self) -> float:
        n = len(self._values)
        m = self._sum / n
        return max(0.0, self._sum_sq / n - m * m)


class PhiAccrualDetector:
    """Phi accrual failure detector for one peer; pure, time passed in (seconds).

    :param threshold: phi at or above which the peer is considered unavailable (> 0).
    :param max_sample_size: number of intervals kept (>= 1).
    :param min_std_deviation: floor for the interval standard deviation (> 0), so a very regular
        peer is not declared failed on the first slightly late heartbeat.
    :param acceptable_heartbeat_pause: extra seconds added to the mean interval (>= 0), e.g. for
        garbage-collection pauses or lost heartbeats.
    :param first_heartbeat_estimate: expected interval (> 0) used until real intervals exist.
    """

    __slots__ = (
        "_acceptable_pause",
        "_first_estimate",
        "_history",
        "_last",
        "_max_sample_size",
        "_min_std",
        "_threshold",
    )

    def __init__(
        self,
        threshold: float = 8.0,
        max_sample_size: int = 1000,
        min_std_deviation: float = 0.1,
        acceptable_heartbeat_pause: float = 0.0,
        first_heartbeat_estimate: float = 1.0,
    ) -> None:
        for name, value in (
            ("threshold", threshold),
            ("min_std_deviation", min_std_deviation),
            ("acceptable_heartbeat_pause", acceptable_heartbeat_pause),
            ("first_heartbeat_estimate", first_heartbeat_estimate),
        ):
            _require_finite(name, value)
        if threshold <= 0.0:
            raise ValueError(f"threshold must be > 0, got {threshold!r}")
        if isinstance(max_sample_size, bool) or not isinstance(max_sample_size, int):
            raise TypeError(f"max_sample_size must be an int, got {max_sample_size!r}")
        if max_sample_size < 1:
            raise ValueError(f"max_sample_size must be >= 1, got {max_sample_size!r}")
        if min_std_deviation <= 0.0:
            raise ValueError(f"min_std_deviation must be > 0, got {min_std_deviation!r}")
        if acceptable_heartbeat_pause < 0.0:
            raise ValueError(
                f"acceptable_heartbeat_pause must be >= 0, got {acceptable_heartbeat_pause!r}"
            )
        if first_heartbeat_estimate <= 0.0:
            raise ValueError(
                f"first_heartbeat_estimate must be > 0, got {first_heartbeat_estimate!r}"
            )
        self._threshold = float(threshold)
        self._max_sample_size = max_sample_size
        self._min_std = float(min_std_deviation)
        self._acceptable_pause = float(acceptable_heartbeat_pause)
        self._first_estimate = float(first_heartbeat_estimate)
        self._history: _History | None = None
        self._last: float | None = None

    def __repr__(self) -> str:
        return (
            f"PhiAccrualDetector(threshold={self._threshold}, samples={self.sample_count}, "
            f"mean_interval={self.mean_interval}, last_heartbeat={self._last})"
        )

    # -- inputs -------------------------------------------------------------------------------

    def heartbeat(self, now: float) -> None:
        """Record a heartbeat (any sign of life) received at `now`.

        :raises ValueError: if `now` is not finite or earlier than the previous heartbeat.
        """
        _require_finite("now", now)
        if self._last is None or self._history is None:
            mean = self._first_estimate
            std = mean / 4.0
            self._history = _History(self._max_sample_size, shift=mean)
            self._history.append(mean - std)
            self._history.append(mean + std)
        else:
            if now < self._last:
                raise ValueError(
                    f"heartbeat time went backwards: {now!r} < previous {self._last!r}"
                )
            if self.is_available(now):
                self._history.append(now - self._last)
        self._last = now

    # -- outputs ------------------------------------------------------------------------------

    def phi(self, now: float) -> float:
        """Suspicion level at `now`: 0.0 before the first heartbeat, growing while none arrives."""
        if self._last is None or self._history is None:
            return 0.0
        return phi_value(now - self._last, self._mean(self._history), self._std(self._history))

    def is_available(self, now: float) -> bool:
        """True while ``phi(now)`` is below the threshold."""
        return self.phi(now) < self._threshold

    def unavailable_at(self) -> float | None:
        """The time at which the peer becomes unavailable if no heartbeat arrives first.

        None before the first heartbeat. ``is_available(t)`` is False for every ``t`` at or
        after the returned time, so a driver can arm one timer for it.
        """
        if self._last is None or self._history is None:
            return None
        mean = self._mean(self._history)
        std = self._std(self._history)
        t = self._last + _time_at_phi(self._threshold, mean, std)
        step = math.ulp(t)
        for _ in range(64):  # the closed form is exact to a few ulps: step past any rounding
            if not self.is_available(t):
                break
            t += step
            step *= 2.0
        return t

    # -- status view --------------------------------------------------------------------------

    @property
    def threshold(self) -> float:
        return self._threshold

    @property
    def is_monitoring(self) -> bool:
        """True once a heartbeat has been recorded."""
        return self._last is not None

    @property
    def last_heartbeat(self) -> float | None:
        return self._last

    @property
    def sample_count(self) -> int:
        """Number of intervals in the window (the two seed samples included)."""
        return 0 if self._history is None else len(self._history)

    @property
    def mean_interval(self) -> float | None:
        """Mean of the recorded intervals in seconds (without the acceptable pause)."""
        return None if self._history is None else self._history.mean

    @property
    def std_deviation(self) -> float | None:
        """Standard deviation used for phi (at least ``min_std_deviation``)."""
        return None if self._history is None else self._std(self._history)

    def _mean(self, history: _History) -> float:
        return history.mean + self._acceptable_pause

    def _std(self, history: _History) -> float:
        return max(math.sqrt(history.variance), self._min_std)
