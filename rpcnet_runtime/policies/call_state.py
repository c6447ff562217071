"""The state of one logical call inside the executor, and the steps its loops share.

`CallState` holds what a call decided once (its policy after the channel's defaults, deadline,
idempotency key, metadata, the endpoint's throttle and breaker) and counts its attempts. Its
methods are the small steps the loops in `retry_loop`, `hedge_loop` and `stream_loop` are made
of: admit the next attempt, record an outcome, bound an attempt by its deadline, decide a retry.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

from ..clock import Clock
from ..descriptors import MethodPolicy
from ..errors import RpcError, SchemaError
from ..status import Status
from .backoff import backoff_delays
from .breaker import CircuitBreaker
from .counters import PolicyCounters
from .deadline import attempt_deadline
from .retry import GiveUpReason, decide_retry, is_retryable
from .spec import AttemptFn, AttemptSpec
from .throttle import RetryThrottle

__all__ = ["BREAKER_FAILURES", "CallState", "DeadlineReached"]

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


class DeadlineReached(Exception):
    """Internal: the whole call's deadline passed while waiting."""


def record_failure(
    clock: Clock,
    policy: MethodPolicy,
    throttle: RetryThrottle | None,
    breaker: CircuitBreaker | None,
    failure: RpcError,
) -> None:
    """An attempt failed: a retryable failure (or pushback, or a non-fatal hedge status) takes a
    token; a failure in `BREAKER_FAILURES` counts against the breaker, any other answer for it."""
    now = clock.now()
    if throttle is not None:
        hedge = policy.hedge
        if (
            is_retryable(policy, failure)
            or failure.retry_after_seconds is not None
            or (hedge is not None and failure.status in hedge.non_fatal_statuses)
        ):
            throttle.record_failure()
    if breaker is not None:
        if failure.status in BREAKER_FAILURES and not isinstance(failure, SchemaError):
            breaker.record_failure(now)
        else:
            breaker.record_success(now)


def open_error(endpoint: str) -> RpcError:
    """The error of a call refused because the endpoint's breaker is open."""
    where = f" for {endpoint}" if endpoint else ""
    return RpcError(Status.UNAVAILABLE, f"circuit breaker open{where}", not_processed=True)


class CallState:
    """One logical call: what was decided once, and its attempts so far."""

    __slots__ = (
        "attempts",
        "breaker",
        "clock",
        "counters",
        "deadline",
        "endpoint",
        "inline",
        "key",
        "metadata",
        "policy",
        "replayable",
        "rng",
        "started",
        "throttle",
    )

    def __init__(
        self,
        clock: Clock,
        counters: PolicyCounters,
        rng: random.Random,
        policy: MethodPolicy,
        deadline: float | None,
        started: float | None,
        key: str | None,
        metadata: Mapping[str, str],
        throttle: RetryThrottle | None,
        breaker: CircuitBreaker | None,
        endpoint: str,
        inline: bool,
        replayable: Callable[[], bool] | None = None,
    ) -> None:
        """
        :param policy: the method's policy with the channel's defaults applied.
        :param started: when the call began, if the clock was read for its deadline.
        :param inline: the attempt functions enforce their own deadlines.
        """
        self.clock = clock
        self.counters = counters
        self.rng = rng
        self.policy = policy
        self.deadline = deadline
        self.started = started
        self.key = key
        self.metadata = metadata
        self.throttle = throttle
        self.breaker = breaker
        self.endpoint = endpoint
        self.inline = inline
        self.replayable = replayable
        self.attempts = 0
        counters.calls += 1

    # -- admission --------------------------------------------------------------------------------

    def spec(self, now: float, *, is_hedge: bool) -> AttemptSpec:
        """The next attempt's spec (counted as sent)."""
        self.attempts += 1
        self.counters.attempts += 1
        attempt_timeout = self.policy.attempt_timeout
        return AttemptSpec(
            attempt_number=self.attempts,
            is_hedge=is_hedge,
            idempotency_key=self.key,
            deadline=(
                self.deadline
                if attempt_timeout is None
                else attempt_deadline(now, self.deadline, attempt_timeout)
            ),
            metadata=self.metadata,
        )

    def admit(self, now: float) -> bool:
        """Ask the breaker; a refusal is counted."""
        if self.breaker is None or self.breaker.allow(now):
            return True
        self.counters.breaker_rejections += 1
        return False

    def next_attempt(self, last: RpcError | None) -> AttemptSpec:
        """The preamble of every attempt of a retry loop: fail at the deadline, ask the
        breaker (an open one fails the call with the last failure, if any), count a retry."""
        now = self.clock.now()
        if self.deadline is not None and now >= self.deadline:
            raise self.deadline_error() from last
        if not self.admit(now):
            raise last if last is not None else self.open_error()
        spec = self.spec(now, is_hedge=False)
        if spec.attempt_number > 1:
            self.counters.retries += 1
        return spec

    def open_error(self) -> RpcError:
        return open_error(self.endpoint)

    def deadline_error(self) -> RpcError:
        """The call's DEADLINE_EXCEEDED (counted)."""
        self.counters.deadline_exceeded += 1
        return RpcError(
            Status.DEADLINE_EXCEEDED,
            f"deadline exceeded after {self.attempts} attempt(s)",
            not_processed=self.attempts == 0,  # nothing left the caller
        )

    def past_deadline(self) -> bool:
        return self.deadline is not None and self.clock.now() >= self.deadline

    # -- outcomes ---------------------------------------------------------------------------------

    def record_success(self) -> None:
        if self.throttle is not None:
            self.throttle.record_success()
        if self.breaker is not None:
            self.breaker.record_success(self.clock.now())

    def record_failure(self, failure: RpcError) -> None:
        record_failure(self.clock, self.policy, self.throttle, self.breaker, failure)

    def deadline_reached(self) -> None:
        """The whole call's deadline passed during an attempt: a failure for the breaker."""
        if self.breaker is not None:
            self.breaker.record_failure(self.clock.now())

    def release(self) -> None:
        """An admitted attempt ended without an outcome: give the breaker its slot back."""
        if self.breaker is not None:
            self.breaker.release(self.clock.now())

    # -- retries ----------------------------------------------------------------------------------

    def backoff(self) -> Iterator[float]:
        retry = self.policy.retry
        if retry is None:
            return iter(())
        return backoff_delays(
            retry.initial_backoff, retry.max_backoff, retry.backoff_multiplier, self.rng
        )

    async def retry_after(
        self, failure: RpcError, backoff: Iterator[float]
    ) -> Iterator[float] | None:
        """After a failed attempt (already recorded): None when the call gives up; else waits
        out the delay and returns the backoff sequence to go on with (started over after
        pushback, as gRFC A6 says)."""
        bound = next(backoff, 0.0)
        if self.replayable is not None and not self.replayable():
            return None  # the request stream was consumed: no second attempt
        throttle_ok = self.throttle.allows_retry() if self.throttle is not None else True
        decision = decide_retry(
            policy=self.policy,
            attempts_made=self.attempts,
            failure=failure,
            backoff=bound,
            throttle_allows=throttle_ok,
            now=self.clock.now(),
            deadline=self.deadline,
        )
        if decision.reason is GiveUpReason.THROTTLED:
            self.counters.throttled += 1
        if not decision.retry:
            return None
        if decision.pushback:
            backoff = self.backoff()
        await self.clock.sleep(decision.delay)
        return backoff

    # -- waiting ----------------------------------------------------------------------------------

    async def wait_any(
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

    async def bounded(self, attempt: AttemptFn[T], spec: AttemptSpec) -> T:
        """Run one attempt; fail it with DEADLINE_EXCEEDED at its deadline.

        Raises `DeadlineReached` when the whole call's deadline is the one that passed. An
        attempt cancelled or timed out gives its breaker admission back.
        """
        task: asyncio.Future[T] = asyncio.ensure_future(attempt(spec))
        try:
            done = await self.wait_any({task}, spec.deadline)
        except BaseException:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            self.release()
            raise
        if task in done:
            result: T = task.result()
            return result
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        self.release()
        if (
            self.deadline is not None
            and spec.deadline is not None
            and spec.deadline >= self.deadline
        ):
            raise DeadlineReached  # (the loop's clock may wake a hair early: compare deadlines)
        raise RpcError(Status.DEADLINE_EXCEEDED, "attempt timed out")
