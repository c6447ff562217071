"""gRFC A6 retry throttling: one token bucket per server.

Every failed attempt (a retryable status, or server pushback) takes one token; every success
gives back `token_ratio` tokens; the bucket holds at most `max_tokens`. Retries and hedges are
allowed only while the bucket holds more than half of `max_tokens`. As in gRPC the arithmetic is
done in integer milli-tokens, so it is exact (0.1 + 0.1 + ... never drifts).
"""

from __future__ import annotations

__all__ = ["RetryThrottle"]

_MILLI = 1000


class RetryThrottle:
    """The retry token bucket for one server (see the module docstring)."""

    __slots__ = ("_max", "_ratio", "_tokens")

    def __init__(self, max_tokens: float = 10.0, token_ratio: float = 0.1) -> None:
        if not 0 < max_tokens <= 1000:
            raise ValueError(f"max_tokens must be in (0, 1000], got {max_tokens}")
        if token_ratio <= 0:
            raise ValueError(f"token_ratio must be > 0, got {token_ratio}")
        self._max = round(max_tokens * _MILLI)
        # As in gRPC, digits of the ratio beyond the third decimal place are ignored.
        self._ratio = max(1, int(round(token_ratio * _MILLI, 6)))
        self._tokens = self._max

    @property
    def milli_tokens(self) -> int:
        """The tokens in the bucket, in thousandths."""
        return self._tokens

    @property
    def tokens(self) -> float:
        return self._tokens / _MILLI

    def allows_retry(self) -> bool:
        """True while tokens > max_tokens / 2: a retry or hedge may be sent."""
        return self._tokens * 2 > self._max

    def record_failure(self) -> None:
        """An attempt failed with a retryable status or carried pushback."""
        self._tokens = max(0, self._tokens - _MILLI)

    def record_success(self) -> None:
        """An attempt succeeded."""
        if self._tokens < self._max:  # full, as it usually is: nothing to add
            self._tokens = min(self._max, self._tokens + self._ratio)

    def __repr__(self) -> str:
        return f"RetryThrottle(tokens={self.tokens}, max_tokens={self._max / _MILLI})"
