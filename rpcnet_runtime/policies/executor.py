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
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any, TypeVar

from ..channel import CallOptions
from ..clock import Clock
from ..descriptors import MethodDescriptor, MethodPolicy
from ..errors import RpcError, SchemaError
from ..status import Status
from .backoff import backoff_delays
from .breaker import BreakerConfig, CircuitBreaker
from .counters import PolicyCounters
from .deadline import attempt_deadline, call_deadline, earliest, inherited_deadline
from .hedging import HedgePlan, HedgeVerdict
from .retry import GiveUpReason, decide_retry, is_retryable
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

BREAKER_FAILURES = frozenset(
    {
        Status.UNAVAILABLE,
        Status.DEADLINE_EXCEEDED,
        Status.INTERNAL,
        Status.UNKNOWN,
        Status.RESOURCE_EXHAUSTED,
        Status.DATA_LOSS,
    }
)
"""Statuses that count against an endpoint's health; any other answer shows it is working."""


@dataclass(frozen=True, slots=True)
class AttemptSpec:
    """What the channel needs to send one attempt."""

    attempt_number: int
    """1 for the first attempt, 2 for the first retry or hedge, and so on."""
    is_hedge: bool
    idempotency_key: str | None
    deadline: float | None
    """Absolute, on the executor's clock: the channel sends the time remaining."""
    metadata: Mapping[str, str]


AttemptFn = Callable[[AttemptSpec], Awaitable[T]]
StreamAttemptFn = Callable[[AttemptSpec], AsyncIterator[T]]


_NO_METADATA: Mapping[str, str] = MappingProxyType({})


class _DeadlineReached(Exception):
    """Internal: the whole call's deadline passed while waiting."""


def choose_idempotency_key(
    policy: MethodPolicy, request: object, options: CallOptions, rng: random.Random
) -> str | None:
    """The call's key: the caller's, else the request's key field, else random if idempotent."""
    if options.idempotency_key:
        return options.idempotency_key
    if policy.idempotency_key_field:
        value = getattr(request, policy.idempotency_key_field, None)
        if value is not None and value != "":
            return str(value)
    if policy.idempotent:
        return f"{rng.getrandbits(128):032x}"
    return None


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

    # -- unary ------------------------------------------------------------------------------------

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
        call = _Call(self, policy, request, options, endpoint, replayable)
        policy = call.policy
        if policy.hedge is not None and policy.idempotent:
            return await call.hedged(attempt)
        if self._inline and policy.retry is None and policy.attempt_timeout is None:
            return await call.once(attempt)
        return await call.retried(attempt)

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
        return await _Call(self, policy, request, options, endpoint).retried(attempt)

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
        call = _Call(self, method.policy, request, options, endpoint, replayable)
        return call.streamed(attempt)


def _next_of(stream: AsyncIterator[T]) -> AttemptFn[T]:
    """An attempt function that reads the next message of `stream`."""

    def next_message(_spec: AttemptSpec) -> Awaitable[T]:
        return anext(stream)

    return next_message


class _Call:
    """The state of one logical call inside the executor."""

    def __init__(
        self,
        executor: PolicyExecutor,
        policy: MethodPolicy,
        request: object,
        options: CallOptions,
        endpoint: str,
        replayable: Callable[[], bool] | None = None,
    ) -> None:
        self.x = executor
        self.replayable = replayable
        self.clock = executor.clock
        self.counters = executor.counters
        if policy.timeout is None and executor.default_timeout is not None:
            policy = replace(policy, timeout=executor.default_timeout)
        if not executor.retries_enabled and (policy.retry is not None or policy.hedge is not None):
            policy = replace(policy, retry=None, hedge=None)
        self.policy = policy
        inherited = inherited_deadline() if executor._inherit else None
        self.started: float | None = None
        """When the call began; read here only when a timeout needs it (see `_now`)."""
        if options.timeout is None and policy.timeout is None:
            self.deadline = inherited  # the plain path: nothing to combine or validate
        else:
            self.started = now = self.clock.now()
            self.deadline = call_deadline(now, policy, options.timeout, inherited=inherited)
        self.key = choose_idempotency_key(policy, request, options, executor.rng)
        self.metadata: Mapping[str, str] = (
            _NO_METADATA if options.metadata is None else dict(options.metadata)
        )
        self.throttle = executor._throttle_for(endpoint)
        self.breaker = executor._breaker_for(endpoint)
        self.endpoint = endpoint
        self.attempts = 0
        self.counters.calls += 1

    # -- shared helpers ---------------------------------------------------------------------------

    def _spec(self, now: float, *, is_hedge: bool) -> AttemptSpec:
        self.attempts += 1
        self.counters.attempts += 1
        return AttemptSpec(
            attempt_number=self.attempts,
            is_hedge=is_hedge,
            idempotency_key=self.key,
            deadline=(
                self.deadline
                if self.policy.attempt_timeout is None
                else attempt_deadline(now, self.deadline, self.policy.attempt_timeout)
            ),
            metadata=self.metadata,
        )

    def _admit(self, now: float) -> bool:
        if self.breaker is None or self.breaker.allow(now):
            return True
        self.counters.breaker_rejections += 1
        return False

    def _open_error(self) -> RpcError:
        where = f" for {self.endpoint}" if self.endpoint else ""
        return RpcError(Status.UNAVAILABLE, f"circuit breaker open{where}", not_processed=True)

    def _deadline_error(self) -> RpcError:
        self.counters.deadline_exceeded += 1
        return RpcError(
            Status.DEADLINE_EXCEEDED,
            f"deadline exceeded after {self.attempts} attempt(s)",
            not_processed=self.attempts == 0,  # nothing left the caller
        )

    def _record_success(self) -> None:
        if self.throttle is not None:
            self.throttle.record_success()
        if self.breaker is not None:
            self.breaker.record_success(self.clock.now())

    def _record_failure(self, failure: RpcError) -> None:
        now = self.clock.now()
        if self.throttle is not None and (
            is_retryable(self.policy, failure)
            or failure.retry_after_seconds is not None
            or self._hedge_non_fatal(failure)
        ):
            self.throttle.record_failure()
        if self.breaker is not None:
            if failure.status in BREAKER_FAILURES and not isinstance(failure, SchemaError):
                self.breaker.record_failure(now)
            else:
                self.breaker.record_success(now)

    def _hedge_non_fatal(self, failure: RpcError) -> bool:
        hedge = self.policy.hedge
        return hedge is not None and failure.status in hedge.non_fatal_statuses

    def _release(self) -> None:
        if self.breaker is not None:
            self.breaker.release(self.clock.now())

    async def _wait_any(
        self, tasks: set[asyncio.Future[Any]], wake_at: float | None
    ) -> set[asyncio.Future[Any]]:
        """Wait until a task finishes or the clock reaches `wake_at`; returns finished tasks."""
        timer: asyncio.Task[None] | None = None
        waiting: set[asyncio.Future[Any]] = set(tasks)
        if wake_at is not None:
            timer = asyncio.create_task(self.clock.sleep(wake_at - self.clock.now()))
            waiting.add(timer)
        try:
            done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if timer is not None:
                timer.cancel()
        return {task for task in done if task is not timer}

    async def _bounded(self, attempt: AttemptFn[T], spec: AttemptSpec) -> T:
        """Run one attempt; fail it with DEADLINE_EXCEEDED at its deadline.

        Raises `_DeadlineReached` when the whole call's deadline is the one that passed. An
        attempt cancelled or timed out gives its breaker admission back.
        """
        task: asyncio.Future[T] = asyncio.ensure_future(attempt(spec))
        try:
            done = await self._wait_any({task}, spec.deadline)
        except BaseException:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            self._release()
            raise
        if task in done:
            result: T = task.result()
            return result
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        self._release()
        if (
            self.deadline is not None
            and spec.deadline is not None
            and spec.deadline >= self.deadline
        ):
            raise _DeadlineReached  # (the loop's clock may wake a hair early: compare deadlines)
        raise RpcError(Status.DEADLINE_EXCEEDED, "attempt timed out")

    def _decide(self, failure: RpcError, backoff: float) -> tuple[bool, float, bool]:
        if self.replayable is not None and not self.replayable():
            return False, 0.0, False  # the request stream was consumed: no second attempt
        throttle_ok = self.throttle.allows_retry() if self.throttle is not None else True
        decision = decide_retry(
            policy=self.policy,
            attempts_made=self.attempts,
            failure=failure,
            backoff=backoff,
            throttle_allows=throttle_ok,
            now=self.clock.now(),
            deadline=self.deadline,
        )
        if decision.reason is GiveUpReason.THROTTLED:
            self.counters.throttled += 1
        return decision.retry, decision.delay, decision.pushback

    def _backoff(self) -> Any:
        retry = self.policy.retry
        if retry is None:
            return iter(())
        return backoff_delays(
            retry.initial_backoff, retry.max_backoff, retry.backoff_multiplier, self.x.rng
        )

    # -- one inline attempt ---------------------------------------------------------------------

    async def once(self, attempt: AttemptFn[T]) -> T:
        """The single attempt of a call that cannot retry, awaited inline (the attempt function
        enforces the deadline itself): no task, no timer."""
        now = self._now()
        if self.deadline is not None and now >= self.deadline:
            raise self._deadline_error()
        if not self._admit(now):
            raise self._open_error()
        spec = self._spec(now, is_hedge=False)
        try:
            response = await attempt(spec)
        except RpcError as failure:
            self._record_failure(failure)
            if failure.status is Status.DEADLINE_EXCEEDED and self._past_deadline():
                self.counters.deadline_exceeded += 1
            raise
        except BaseException:
            self._release()
            raise
        self._record_success()
        return response

    def _now(self) -> float:
        """The start time, reading the clock only if something below uses it (a deadline, the
        breaker or a per-attempt timeout); 0.0 otherwise, which nothing reads."""
        if self.started is not None:
            return self.started
        if self.deadline is None and self.breaker is None and self.policy.attempt_timeout is None:
            return 0.0
        self.started = now = self.clock.now()
        return now

    def _past_deadline(self) -> bool:
        return self.deadline is not None and self.clock.now() >= self.deadline

    # -- retries ----------------------------------------------------------------------------------

    async def retried(self, attempt: AttemptFn[T]) -> T:
        backoff = self._backoff()
        last: RpcError | None = None
        while True:
            now = self.clock.now()
            if self.deadline is not None and now >= self.deadline:
                raise self._deadline_error() from last
            if not self._admit(now):
                raise last if last is not None else self._open_error()
            spec = self._spec(now, is_hedge=False)
            if spec.attempt_number > 1:
                self.counters.retries += 1
            try:
                response = await self._bounded(attempt, spec)
            except _DeadlineReached:
                if self.breaker is not None:
                    self.breaker.record_failure(self.clock.now())
                raise self._deadline_error() from last
            except RpcError as failure:
                self._record_failure(failure)
                retry, delay, pushback = self._decide(failure, next(backoff, 0.0))
                if not retry:
                    raise
                if pushback:
                    backoff = self._backoff()  # gRFC A6: backoff starts again after pushback
                last = failure
                await self.clock.sleep(delay)
                continue
            except Exception:
                self._release()  # not an RPC outcome (a bug in the attempt function): no verdict
                raise
            self._record_success()
            return response

    # -- hedging ----------------------------------------------------------------------------------

    async def hedged(self, attempt: AttemptFn[T]) -> T:
        assert self.policy.hedge is not None
        plan = HedgePlan(self.policy.hedge, self.clock.now())
        running: dict[asyncio.Future[Any], int] = {}
        last: RpcError | None = None
        try:
            while True:
                now = self.clock.now()
                if self.deadline is not None and now >= self.deadline:
                    raise self._deadline_error() from last
                self._launch_due(plan, attempt, running, now)
                if plan.exhausted():
                    if last is None:
                        raise self._open_error()
                    raise last
                wake_at = earliest(plan.next_deadline(), self.deadline)
                done = await self._wait_any(set(running), wake_at)
                for task in sorted(done, key=running.__getitem__):
                    del running[task]
                    error = task.exception()
                    if error is None:
                        plan.succeeded()
                        self._record_success()
                        result: T = task.result()
                        return result
                    if isinstance(error, _DeadlineReached):
                        continue  # the loop's own deadline check reports it
                    if not isinstance(error, RpcError):
                        self._release()
                        raise error
                    self._record_failure(error)
                    last = error
                    if plan.failed(self.clock.now(), error) is HedgeVerdict.FAIL:
                        raise error
        finally:
            for task in running:
                task.cancel()
            if running:
                await asyncio.gather(*running, return_exceptions=True)

    def _launch_due(
        self,
        plan: HedgePlan,
        attempt: AttemptFn[T],
        running: dict[asyncio.Future[Any], int],
        now: float,
    ) -> None:
        while plan.due(now):
            throttle_ok = self.throttle.allows_retry() if self.throttle is not None else True
            if not self._admit(now):
                plan.stop()
                return
            if not plan.launch(now, throttle_allows=throttle_ok):
                self.counters.throttled += plan.throttled
                self._release()  # the breaker admitted an attempt that is not sent
                return
            spec = self._spec(now, is_hedge=plan.started > 1)
            if spec.is_hedge:
                self.counters.hedges += 1
            task = asyncio.ensure_future(self._bounded(attempt, spec))
            running[task] = spec.attempt_number

    # -- server streaming -------------------------------------------------------------------------

    async def streamed(self, attempt: StreamAttemptFn[T]) -> AsyncIterator[T]:
        backoff = self._backoff()
        last: RpcError | None = None
        while True:
            now = self.clock.now()
            if self.deadline is not None and now >= self.deadline:
                raise self._deadline_error() from last
            if not self._admit(now):
                raise last if last is not None else self._open_error()
            spec = self._spec(now, is_hedge=False)
            if spec.attempt_number > 1:
                self.counters.retries += 1
            stream = attempt(spec)
            received = False
            try:
                while True:
                    try:
                        if self.x._inline:
                            item = await anext(stream)
                        else:
                            item = await self._bounded(_next_of(stream), spec)
                    except StopAsyncIteration:
                        break
                    received = True
                    yield item
            except _DeadlineReached:
                if self.breaker is not None:
                    self.breaker.record_failure(self.clock.now())
                raise self._deadline_error() from last
            except RpcError as failure:
                self._record_failure(failure)
                if received:
                    raise  # gRPC's rule: no retry once a response message has been seen
                retry, delay, pushback = self._decide(failure, next(backoff, 0.0))
                if not retry:
                    raise
                if pushback:
                    backoff = self._backoff()
                last = failure
                await self.clock.sleep(delay)
                continue
            except GeneratorExit:
                self._release()  # the caller stopped reading: no outcome to record
                raise
            finally:
                aclose = getattr(stream, "aclose", None)
                if aclose is not None:
                    await aclose()
            self._record_success()
            return
