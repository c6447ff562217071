"""The one async executor that carries out a method's policy around "attempt functions".

The channel gives `PolicyExecutor.unary` an `AttemptFn`: a coroutine function that sends one
attempt described by an `AttemptSpec` and returns the response or raises `RpcError`. The executor
decides nothing itself: deadlines come from `deadline`, retries from `retry.decide_retry`, hedges
from `hedging.HedgePlan`, admission from the endpoint's `CircuitBreaker` and `RetryThrottle`; it
only waits (on the injected `Clock`), launches and cancels.

- The idempotency key is chosen once per logical call and sent on every attempt and hedge: the
  caller's ``idempotency_key=``, else the ``@idempotent(key=...)`` field of the request, else a
  random 128-bit hex key for an ``@idempotent`` method (None for other methods).
- The whole call ends with DEADLINE_EXCEEDED no later than its deadline; the attempt running
  then is cancelled. An optional per-attempt timeout fails just that attempt (with
  DEADLINE_EXCEEDED, retryable where ``on`` lists it).
- While the endpoint's breaker is open the call fails at once with UNAVAILABLE, ``not_processed``.
- Streaming: `server_stream` retries only until the first response message has arrived (gRPC's
  rule); after that a failure reaches the caller. Client-streaming calls use `single` (one
  attempt): their requests are consumed as they are sent. Bidirectional calls are not retried.

The loops live in `retry_loop`, `hedge_loop` and `stream_loop`; the state they share in
`call_state`; `AttemptSpec` and the key rule in `spec`. This module is the facade.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any, TypeVar

from ..channel import CallOptions
from ..clock import Clock
from ..descriptors import MethodDescriptor, MethodPolicy
from .breaker import BreakerConfig, CircuitBreaker
from .call_state import BREAKER_FAILURES, CallState
from .counters import PolicyCounters
from .deadline import call_deadline, inherited_deadline
from .hedge_loop import run_hedged
from .retry_loop import run_once, run_retried
from .spec import NO_METADATA, AttemptFn, AttemptSpec, StreamAttemptFn, choose_idempotency_key
from .stream_loop import run_streamed
from .throttle import RetryThrottle

__all__ = [
    "BREAKER_FAILURES",
    "AttemptFn",
    "AttemptSpec",
    "PolicyExecutor",
    "StreamAttemptFn",
    "choose_idempotency_key",
]

T = TypeVar("T")


class PolicyExecutor:
    """Applies timeouts, retries, hedging, the breaker and the throttle to calls."""

    def __init__(
        self,
        *,
        clock: Clock,
        rng: random.Random | None = None,
        throttle_for: Callable[[str], RetryThrottle | None] | None = None,
        breaker_for: Callable[[str], CircuitBreaker | None] | None = None,
        counters: PolicyCounters | None = None,
        inherit_deadline: bool = True,
        default_timeout: float | None = None,
        breaker_config: BreakerConfig | None = None,
        attempts_enforce_deadline: bool = False,
        retries_enabled: bool = True,
    ) -> None:
        """
        :param throttle_for: the retry throttle of an endpoint (default: one `RetryThrottle`
            per endpoint); return None to disable throttling.
        :param breaker_for: the breaker of an endpoint (default: one `CircuitBreaker` per
            endpoint, configured by `breaker_config`); return None to disable it.
        :param inherit_deadline: take the running handler's deadline into account.
        :param default_timeout: the channel's default deadline, in seconds, for methods whose
            schema sets no ``@timeout`` (a call's ``timeout=`` still wins).
        :param attempts_enforce_deadline: the attempt functions end themselves at
            `AttemptSpec.deadline` (raising DEADLINE_EXCEEDED), as the QUIC channel's do; a call
            that cannot retry or hedge then runs its one attempt inline, with no task of its own.
        :param retries_enabled: False: every call makes one attempt, whatever its policy says.
        """
        if default_timeout is not None and default_timeout <= 0:
            raise ValueError(f"default_timeout must be > 0, got {default_timeout}")
        self.default_timeout = default_timeout
        self.breaker_config = breaker_config
        self.clock = clock
        self.rng = rng or random.Random()
        self.counters = counters or PolicyCounters()
        self._throttles: dict[str, RetryThrottle] = {}
        self._breakers: dict[str, CircuitBreaker] = {}
        self._throttle_for = throttle_for or self._default_throttle
        self._breaker_for = breaker_for or self._default_breaker
        self._inherit = inherit_deadline
        self._inline = attempts_enforce_deadline
        self.retries_enabled = retries_enabled

    def _default_throttle(self, endpoint: str) -> RetryThrottle:
        return self._throttles.setdefault(endpoint, RetryThrottle())

    def _default_breaker(self, endpoint: str) -> CircuitBreaker:
        breaker = self._breakers.get(endpoint)
        if breaker is None:
            breaker = CircuitBreaker(
                self.breaker_config, name=endpoint, listener=self.counters.on_breaker_transition
            )
            self._breakers[endpoint] = breaker
        return breaker

    def _call(
        self,
        policy: MethodPolicy,
        request: object,
        options: CallOptions,
        endpoint: str,
        replayable: Callable[[], bool] | None = None,
    ) -> CallState:
        """The state of a new logical call (counted), with the channel's defaults applied."""
        if policy.timeout is None and self.default_timeout is not None:
            policy = replace(policy, timeout=self.default_timeout)
        if not self.retries_enabled and (policy.retry is not None or policy.hedge is not None):
            policy = replace(policy, retry=None, hedge=None)
        inherited = inherited_deadline() if self._inherit else None
        started: float | None = None
        if options.timeout is None and policy.timeout is None:
            deadline = inherited  # the plain path: nothing to combine or validate
        else:
            started = now = self.clock.now()
            deadline = call_deadline(now, policy, options.timeout, inherited=inherited)
        key = choose_idempotency_key(policy, request, options, self.rng)
        metadata = NO_METADATA if options.metadata is None else dict(options.metadata)
        return CallState(
            clock=self.clock,
            counters=self.counters,
            rng=self.rng,
            policy=policy,
            deadline=deadline,
            started=started,
            key=key,
            metadata=metadata,
            throttle=self._throttle_for(endpoint),
            breaker=self._breaker_for(endpoint),
            endpoint=endpoint,
            inline=self._inline,
            replayable=replayable,
        )

    # -- the call kinds ---------------------------------------------------------------------------

    async def unary(
        self,
        method: MethodDescriptor[Any, Any],
        request: object,
        options: CallOptions,
        attempt: AttemptFn[T],
        *,
        endpoint: str = "",
        replayable: Callable[[], bool] | None = None,
    ) -> T:
        """Carry out one logical unary call.

        :param replayable: for a client-streaming call: says, after a failed attempt, whether
            the request stream can still be sent again (no hedging then, and no retry once it
            returns False).
        """
        policy = method.policy
        if replayable is not None and policy.hedge is not None:
            policy = replace(policy, hedge=None)
        call = self._call(policy, request, options, endpoint, replayable)
        policy = call.policy
        if policy.hedge is not None and policy.idempotent:
            return await run_hedged(call, attempt)
        if self._inline and policy.retry is None and policy.attempt_timeout is None:
            return await run_once(call, attempt)
        return await run_retried(call, attempt)

    async def single(
        self,
        method: MethodDescriptor[Any, Any],
        request: object,
        options: CallOptions,
        attempt: AttemptFn[T],
        *,
        endpoint: str = "",
    ) -> T:
        """One attempt only (client-streaming calls, whose requests cannot be replayed).

        The deadline, the breaker, the idempotency key and the counters still apply.
        """
        policy = replace(method.policy, retry=None, hedge=None)
        return await run_retried(self._call(policy, request, options, endpoint), attempt)

    def server_stream(
        self,
        method: MethodDescriptor[Any, Any],
        request: object,
        options: CallOptions,
        attempt: StreamAttemptFn[T],
        *,
        endpoint: str = "",
        replayable: Callable[[], bool] | None = None,
    ) -> AsyncIterator[T]:
        """A server-streaming (or bidirectional) call, retried only until its first response
        message arrives (and, with `replayable`, only while that returns True)."""
        call = self._call(method.policy, request, options, endpoint, replayable)
        return run_streamed(call, attempt)
