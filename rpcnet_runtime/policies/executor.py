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
`call_state`; `AttemptSpec` and the key rule in `spec`; per-method decisions in `method_plan`.
Settings, plans and endpoint state are in `executor_base`. This module is the facade; it runs
the plain unary call (no retry, no hedge: one inline attempt) itself, in `unary`'s own frame,
with no call object and, when the call has no deadline, key or metadata, no new objects at all.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

from ..channel import CallOptions
from ..context import _current_call
from ..descriptors import MethodDescriptor
from ..errors import RpcError
from ..status import Status
from .call_state import BREAKER_FAILURES, open_error, record_failure
from .deadline import call_deadline
from .executor_base import ExecutorBase
from .hedge_loop import run_hedged
from .method_plan import Loop, unary_loop
from .retry_loop import run_once, run_retried
from .spec import NO_METADATA, AttemptFn, AttemptSpec, StreamAttemptFn, choose_idempotency_key
from .stream_loop import run_streamed

__all__ = [
    "BREAKER_FAILURES",
    "AttemptFn",
    "AttemptSpec",
    "PolicyExecutor",
    "StreamAttemptFn",
    "choose_idempotency_key",
]

T = TypeVar("T")

_FIRST_PLAIN = AttemptSpec(
    attempt_number=1, is_hedge=False, idempotency_key=None, deadline=None, metadata=NO_METADATA
)
"""The spec of a plain call's only attempt (immutable, so shared by every such call)."""


class PolicyExecutor(ExecutorBase):
    """Applies timeouts, retries, hedging, the breaker and the throttle to calls.

    Constructed with the keywords of `ExecutorBase` (clock, rng, throttle_for, breaker_for,
    counters, inherit_deadline, default_timeout, breaker_config, attempts_enforce_deadline,
    retries_enabled, stable_endpoints).
    """

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
        plan = self._plans.get(id(method))
        if plan is None or plan.method is not method:
            plan = self._plan(method)
        if replayable is not None or plan.loop is not Loop.ONCE:
            if replayable is None:
                policy, loop = plan.policy, plan.loop
            else:
                policy = plan.replayable_policy()
                loop = unary_loop(policy, self._inline)
            call = self._call(policy, request, options, endpoint, replayable)
            if loop is Loop.HEDGED:
                return await run_hedged(call, attempt)
            if loop is Loop.ONCE:
                return await run_once(call, attempt)
            return await run_retried(call, attempt)

        # The plain call: what `_call` and `run_once` do, building only what is asked for.
        policy = plan.policy
        clock = self.clock
        counters = self.counters
        inherited = None
        if self._inherit and (serving := _current_call.get()) is not None:
            inherited = serving.deadline
        now: float | None = None
        if options.timeout is None and plan.timeout is None:
            deadline = inherited
        else:
            now = clock.now()
            deadline = call_deadline(now, policy, options.timeout, inherited=inherited)
        if plan.caller_key_only:
            key = options.idempotency_key or None
        else:
            key = choose_idempotency_key(policy, request, options, self.rng)
        metadata = NO_METADATA if options.metadata is None else dict(options.metadata)
        last = self._last_endpoint
        _, throttle, breaker = (
            last if last is not None and last[0] == endpoint else self._endpoint(endpoint)
        )
        counters.calls += 1
        if deadline is not None or breaker is not None:
            if now is None:
                now = clock.now()
            if deadline is not None and now >= deadline:
                counters.deadline_exceeded += 1
                raise RpcError(
                    Status.DEADLINE_EXCEEDED,
                    "deadline exceeded after 0 attempt(s)",
                    not_processed=True,
                )
            if breaker is not None and not breaker.allow(now):
                counters.breaker_rejections += 1
                raise open_error(endpoint)
        counters.attempts += 1
        if deadline is None and key is None and metadata is NO_METADATA:
            spec = _FIRST_PLAIN
        else:
            spec = AttemptSpec(1, False, key, deadline, metadata)
        try:
            response = await attempt(spec)
        except RpcError as failure:
            record_failure(clock, policy, throttle, breaker, failure)
            if (
                failure.status is Status.DEADLINE_EXCEEDED
                and deadline is not None
                and clock.now() >= deadline
            ):
                counters.deadline_exceeded += 1
            raise
        except BaseException:
            if breaker is not None:
                breaker.release(clock.now())
            raise
        if throttle is not None:
            throttle.record_success()
        if breaker is not None:
            breaker.record_success(clock.now())
        return response

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
        policy = self._plan(method).single_policy()
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
        call = self._call(self._plan(method).policy, request, options, endpoint, replayable)
        return run_streamed(call, attempt)
