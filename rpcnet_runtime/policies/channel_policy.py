"""`ChannelPolicy`: a client channel's defaults for the call policies, and its executor."""

from __future__ import annotations

import random
from dataclasses import dataclass

from ..clock import AsyncioClock, Clock
from .breaker import BreakerConfig, CircuitBreaker
from .counters import PolicyCounters
from .executor import PolicyExecutor
from .throttle import RetryThrottle

__all__ = ["ChannelPolicy"]


@dataclass(frozen=True, slots=True)
class ChannelPolicy:
    """What a channel adds to the schema's per-method policies.

    The schema says what each method may do (``@timeout``, ``@retry``, ``@hedge``); this says
    how the channel treats its server as a whole.
    """

    default_timeout: float | None = None
    """Seconds for the whole logical call of methods whose schema sets no ``@timeout``."""
    retries_enabled: bool = True
    """False: every call is made once (no retries, no hedges), whatever the schema says."""
    inherit_deadline: bool = True
    """Calls made inside a handler end no later than the call that handler serves."""
    throttle_enabled: bool = True
    throttle_max_tokens: float = 10.0
    throttle_token_ratio: float = 0.1
    breaker_enabled: bool = False
    """Off by default: a channel has one server and nowhere else to send a call, and failing
    fast for seconds after the server came back hurts health checks and failure detectors
    (SWIM's pings to a healed node). Turn it on where failing fast protects the caller."""
    breaker: BreakerConfig | None = None
    """The endpoint's circuit breaker settings (None: `BreakerConfig()` defaults)."""

    def __post_init__(self) -> None:
        if self.default_timeout is not None and self.default_timeout <= 0:
            raise ValueError(f"default_timeout must be > 0, got {self.default_timeout}")
        RetryThrottle(self.throttle_max_tokens, self.throttle_token_ratio)  # validates

    def executor(
        self,
        *,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        counters: PolicyCounters | None = None,
    ) -> PolicyExecutor:
        """An executor carrying out this policy; its attempts enforce their own deadlines."""
        counters = counters or PolicyCounters()
        throttles: dict[str, RetryThrottle] = {}
        breakers: dict[str, CircuitBreaker] = {}

        def throttle_for(endpoint: str) -> RetryThrottle | None:
            if not self.throttle_enabled:
                return None
            throttle = throttles.get(endpoint)
            if throttle is None:
                throttle = RetryThrottle(self.throttle_max_tokens, self.throttle_token_ratio)
                throttles[endpoint] = throttle
            return throttle

        def breaker_for(endpoint: str) -> CircuitBreaker | None:
            if not self.breaker_enabled:
                return None
            breaker = breakers.get(endpoint)
            if breaker is None:
                breaker = CircuitBreaker(
                    self.breaker, name=endpoint, listener=counters.on_breaker_transition
                )
                breakers[endpoint] = breaker
            return breaker

        return PolicyExecutor(
            clock=clock or AsyncioClock(),
            rng=rng,
            throttle_for=throttle_for,
            breaker_for=breaker_for,
            counters=counters,
            inherit_deadline=self.inherit_deadline,
            default_timeout=self.default_timeout,
            attempts_enforce_deadline=True,
            retries_enabled=self.retries_enabled,
            stable_endpoints=True,  # throttle_for / breaker_for above answer the same each time
        )
