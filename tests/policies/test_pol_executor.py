"""The policy executor with fake attempt functions on a virtual clock (nothing really sleeps)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from typing import Any

import pytest
from policy_vclock import VirtualClock

from rpcnet_runtime.channel import CallOptions
from rpcnet_runtime.context import CallContext, _current_call
from rpcnet_runtime.descriptors import (
    HedgePolicy,
    MethodDescriptor,
    MethodKind,
    MethodPolicy,
    RetryPolicy,
)
from rpcnet_runtime.errors import RpcError
from rpcnet_runtime.policies import (
    AttemptSpec,
    BreakerConfig,
    BreakerState,
    CircuitBreaker,
    PolicyCounters,
    PolicyExecutor,
    RetryThrottle,
)
from rpcnet_runtime.status import Status


@dataclass
class Req:
    id: str = ""

    def to_wire(self) -> dict[int, Any]:
        return {1: self.id}

    @classmethod
    def from_wire(cls, data: Any) -> Req:
        return cls(data.get(1, ""))


RETRY = RetryPolicy(
    max_attempts=4,
    initial_backoff=0.05,
    max_backoff=1.0,
    retryable_statuses=frozenset({Status.UNAVAILABLE, Status.DEADLINE_EXCEEDED}),
)
HEDGE = HedgePolicy(max_attempts=3, delay=0.1, non_fatal_statuses=frozenset({Status.UNAVAILABLE}))


def method(**policy: Any) -> MethodDescriptor[Any, Any]:
    return MethodDescriptor(
        service="t.v1.Svc",
        name="Do",
        py_name="do",
        kind=MethodKind.UNARY_UNARY,
        request_type=Req,
        response_type=Req,
        policy=MethodPolicy(**policy),
    )


class Backend:
    """A fake attempt function: a script of outcomes, a log of the specs it was called with."""

    def __init__(self, clock: VirtualClock, script: list[Any] | Callable[[int], Any]) -> None:
        self.clock = clock
        self.script = script
        self.specs: list[AttemptSpec] = []
        self.started: list[float] = []
        self.cancelled: list[int] = []

    async def __call__(self, spec: AttemptSpec) -> str:
        self.specs.append(spec)
        self.started.append(self.clock.now())
        n = len(self.specs)
        step = self.script(n) if callable(self.script) else self.script[n - 1]
        try:
            if isinstance(step, tuple):  # (seconds, outcome): take a while first
                await self.clock.sleep(step[0])
                step = step[1]
            if isinstance(step, BaseException):
                raise step
            return str(step)
        except asyncio.CancelledError:
            self.cancelled.append(spec.attempt_number)
            raise


def executor(clock: VirtualClock, **kwargs: Any) -> PolicyExecutor:
    return PolicyExecutor(clock=clock, rng=random.Random(42), **kwargs)


OPTS = CallOptions()


async def test_two_unavailable_then_success_makes_three_attempts_with_one_key() -> None:
    clock = VirtualClock()
    backend = Backend(clock, [RpcError(Status.UNAVAILABLE), RpcError(Status.UNAVAILABLE), "ok"])
    ex = executor(clock)
    start = clock.now()
    result = await clock.run(ex.unary(method(idempotent=True, retry=RETRY), Req(), OPTS, backend))
    assert result == "ok"
    assert [s.attempt_number for s in backend.specs] == [1, 2, 3]
    keys = {s.idempotency_key for s in backend.specs}
    assert len(keys) == 1 and len(next(iter(keys)) or "") == 32
    assert not any(s.is_hedge for s in backend.specs)
    gaps = [b - a for a, b in zip([start, *backend.started], backend.started, strict=False)]
    assert gaps[0] == 0.0
    assert 0.0 <= gaps[1] <= 0.05 and 0.0 <= gaps[2] <= 0.1  # full-jitter bounds
    snap = ex.counters.snapshot()
    assert (snap["calls"], snap["attempts"], snap["retries"]) == (1, 3, 2)


async def test_non_idempotent_failure_after_dispatch_is_not_retried() -> None:
    clock = VirtualClock()
    backend = Backend(clock, [RpcError(Status.UNAVAILABLE), "ok"])
    with pytest.raises(RpcError) as info:
        await clock.run(executor(clock).unary(method(retry=RETRY), Req(), OPTS, backend))
    assert info.value.status is Status.UNAVAILABLE
    assert len(backend.specs) == 1 and backend.specs[0].idempotency_key is None


async def test_non_idempotent_call_that_never_reached_a_handler_is_retried() -> None:
    clock = VirtualClock()
    shed = RpcError(Status.RESOURCE_EXHAUSTED, not_processed=True, retry_after_seconds=0.3)
    backend = Backend(clock, [shed, "ok"])
    start = clock.now()
    result = await clock.run(executor(clock).unary(method(retry=RETRY), Req(), OPTS, backend))
    assert result == "ok" and len(backend.specs) == 2
    assert backend.started[1] - start == pytest.approx(0.3)  # the server's pushback


async def test_idempotency_key_sources() -> None:
    clock = VirtualClock()
    ex = executor(clock)
    field_method = method(idempotent=True, idempotency_key_field="id", retry=RETRY)
    for options, request, expected in [
        (CallOptions(idempotency_key="mine"), Req(id="t1"), "mine"),
        (OPTS, Req(id="t1"), "t1"),
    ]:
        backend = Backend(clock, [RpcError(Status.UNAVAILABLE), "ok"])
        await clock.run(ex.unary(field_method, request, options, backend))
        assert [s.idempotency_key for s in backend.specs] == [expected, expected]
    backend = Backend(clock, ["ok", "ok"])
    await clock.run(ex.unary(method(idempotent=True), Req(), OPTS, backend))
    await clock.run(ex.unary(method(idempotent=True), Req(), OPTS, backend))
    first, second = (s.idempotency_key for s in backend.specs)
    assert first and second and first != second  # one random key per logical call


async def test_metadata_is_passed_to_every_attempt() -> None:
    clock = VirtualClock()
    backend = Backend(clock, [RpcError(Status.UNAVAILABLE), "ok"])
    options = CallOptions(metadata={"x-trace": "abc"})
    await clock.run(
        executor(clock).unary(method(idempotent=True, retry=RETRY), Req(), options, backend)
    )
    assert [dict(s.metadata) for s in backend.specs] == [{"x-trace": "abc"}] * 2


async def test_hedge_returns_after_the_delay_and_cancels_the_stalled_attempt() -> None:
    clock = VirtualClock()
    backend = Backend(clock, [(500.0, "slow"), (0.01, "fast"), "unused"])
    ex = executor(clock)
    start = clock.now()
    result = await clock.run(ex.unary(method(idempotent=True, hedge=HEDGE), Req(), OPTS, backend))
    assert result == "fast"
    assert clock.now() - start == pytest.approx(0.11)
    assert backend.cancelled == [1]
    assert [(s.attempt_number, s.is_hedge) for s in backend.specs] == [(1, False), (2, True)]
    assert len({s.idempotency_key for s in backend.specs}) == 1
    assert ex.counters.hedges == 1 and ex.counters.attempts == 2


async def test_hedge_fatal_error_fails_at_once_and_cancels_the_rest() -> None:
    clock = VirtualClock()
    backend = Backend(clock, [(5.0, "slow"), (0.02, RpcError(Status.INVALID_ARGUMENT))])
    with pytest.raises(RpcError) as info:
        await clock.run(
            executor(clock).unary(method(idempotent=True, hedge=HEDGE), Req(), OPTS, backend)
        )
    assert info.value.status is Status.INVALID_ARGUMENT
    assert backend.cancelled == [1]


async def test_hedge_non_fatal_error_sends_the_next_hedge_at_once() -> None:
    clock = VirtualClock()
    backend = Backend(clock, [(0.03, RpcError(Status.UNAVAILABLE)), (0.01, "ok")])
    start = clock.now()
    result = await clock.run(
        executor(clock).unary(method(idempotent=True, hedge=HEDGE), Req(), OPTS, backend)
    )
    assert result == "ok"
    assert backend.started[1] - start == pytest.approx(0.03)


async def test_hedges_all_failing_fail_with_the_last_error() -> None:
    clock = VirtualClock()
    backend = Backend(clock, lambda n: (0.01, RpcError(Status.UNAVAILABLE, f"#{n}")))
    with pytest.raises(RpcError) as info:
        await clock.run(
            executor(clock).unary(method(idempotent=True, hedge=HEDGE), Req(), OPTS, backend)
        )
    assert info.value.message == "#3" and len(backend.specs) == 3


async def test_deadline_with_retries_ends_no_later_than_the_deadline() -> None:
    clock = VirtualClock()
    # Every attempt takes 0.3 s and fails: the 1 s deadline falls inside the fourth attempt.
    backend = Backend(clock, lambda n: (0.3, RpcError(Status.UNAVAILABLE)))
    ex = executor(clock)
    policy = replace(RETRY, max_attempts=10, initial_backoff=0.01, max_backoff=0.01)
    start = clock.now()
    with pytest.raises(RpcError) as info:
        await clock.run(
            ex.unary(method(idempotent=True, timeout=1.0, retry=policy), Req(), OPTS, backend)
        )
    assert info.value.status is Status.DEADLINE_EXCEEDED
    assert clock.now() - start <= 1.0 + 1e-9
    assert backend.cancelled == [len(backend.specs)]  # the attempt in flight was cancelled
    assert all(s.deadline == pytest.approx(start + 1.0) for s in backend.specs)
    assert ex.counters.deadline_exceeded == 1


async def test_caller_timeout_overrides_the_schema_timeout() -> None:
    clock = VirtualClock()
    backend = Backend(clock, [(10.0, "late")])
    start = clock.now()
    with pytest.raises(RpcError) as info:
        await clock.run(
            executor(clock).unary(method(timeout=5.0), Req(), CallOptions(timeout=0.25), backend)
        )
    assert info.value.status is Status.DEADLINE_EXCEEDED
    assert clock.now() - start == pytest.approx(0.25)


async def test_a_handlers_outgoing_call_inherits_its_deadline() -> None:
    clock = VirtualClock()
    backend = Backend(clock, [(10.0, "late")])
    ctx = CallContext(method="t.v1.Up/Call", clock=clock.now, deadline=clock.now() + 0.4)
    token = _current_call.set(ctx)
    try:
        call = executor(clock).unary(method(timeout=5.0), Req(), OPTS, backend)
        with pytest.raises(RpcError) as info:
            await clock.run(call)
    finally:
        _current_call.reset(token)
    assert info.value.status is Status.DEADLINE_EXCEEDED
    assert backend.specs[0].deadline == pytest.approx(ctx.deadline)


async def test_per_attempt_timeout_fails_the_attempt_and_is_retried() -> None:
    clock = VirtualClock()
    backend = Backend(clock, [(10.0, "stuck"), (0.1, "ok")])
    policy = method(idempotent=True, timeout=5.0, attempt_timeout=0.5, retry=RETRY)
    start = clock.now()
    assert await clock.run(executor(clock).unary(policy, Req(), OPTS, backend)) == "ok"
    assert backend.cancelled == [1]
    assert backend.specs[0].deadline == pytest.approx(start + 0.5)
    assert backend.specs[1].deadline <= start + 5.0  # type: ignore[operator]


async def test_throttle_caps_amplification_against_an_always_failing_backend() -> None:
    clock = VirtualClock()
    backend = Backend(clock, lambda n: RpcError(Status.UNAVAILABLE))
    # The breaker is off here: this measures the throttle alone.
    ex = executor(clock, breaker_for=lambda endpoint: None)
    m = method(idempotent=True, retry=RETRY)
    attempts_after: list[int] = []
    for call in range(200):
        before = len(backend.specs)
        with pytest.raises(RpcError):
            await clock.run(ex.unary(m, Req(), OPTS, backend, endpoint="srv:1"))
        if call >= 10:
            attempts_after.append(len(backend.specs) - before)
    assert sum(attempts_after) / len(attempts_after) <= 1.1
    assert ex.counters.throttled >= 190


async def test_throttle_is_per_endpoint() -> None:
    clock = VirtualClock()
    throttles = {"a": RetryThrottle(), "b": RetryThrottle()}
    ex = executor(clock, throttle_for=throttles.get, breaker_for=lambda e: None)
    failing = Backend(clock, lambda n: RpcError(Status.UNAVAILABLE))
    m = method(idempotent=True, retry=RETRY)
    for _ in range(5):
        with pytest.raises(RpcError):
            await clock.run(ex.unary(m, Req(), OPTS, failing, endpoint="a"))
    assert not throttles["a"].allows_retry() and throttles["b"].allows_retry()
    healthy = Backend(clock, [RpcError(Status.UNAVAILABLE), "ok"])
    assert await clock.run(ex.unary(m, Req(), OPTS, healthy, endpoint="b")) == "ok"


async def test_open_breaker_fails_fast_without_sending() -> None:
    clock = VirtualClock()
    counters = PolicyCounters()
    breaker = CircuitBreaker(
        BreakerConfig(failure_threshold=2, failure_rate=None, open_duration=1.0),
        listener=counters.on_breaker_transition,
    )
    ex = executor(clock, breaker_for=lambda e: breaker, counters=counters)
    backend = Backend(clock, lambda n: RpcError(Status.UNAVAILABLE))
    m = method()
    for _ in range(2):
        with pytest.raises(RpcError):
            await clock.run(ex.unary(m, Req(), OPTS, backend))
    assert breaker.state(clock.now()) is BreakerState.OPEN
    with pytest.raises(RpcError) as info:
        await clock.run(ex.unary(m, Req(), OPTS, backend))
    assert info.value.status is Status.UNAVAILABLE and info.value.not_processed
    assert len(backend.specs) == 2 and counters.breaker_rejections == 1
    # After the open period one trial goes through; its success closes the breaker.
    ok = Backend(clock, ["ok"])

    async def later() -> str:
        await clock.sleep(1.0)
        return await ex.unary(m, Req(), OPTS, ok)

    assert await clock.run(later()) == "ok"
    assert breaker.state(clock.now()) is BreakerState.CLOSED
    assert counters.breaker_transitions == 3


async def test_application_errors_do_not_count_against_the_breaker() -> None:
    clock = VirtualClock()
    breaker = CircuitBreaker(BreakerConfig(failure_threshold=2, failure_rate=None))
    ex = executor(clock, breaker_for=lambda e: breaker)
    backend = Backend(clock, lambda n: RpcError(Status.NOT_FOUND))
    for _ in range(5):
        with pytest.raises(RpcError):
            await clock.run(ex.unary(method(), Req(), OPTS, backend))
    assert breaker.state(clock.now()) is BreakerState.CLOSED


async def test_caller_cancellation_cancels_the_attempt() -> None:
    clock = VirtualClock()
    backend = Backend(clock, [(10.0, "late")])
    ex = executor(clock)

    async def main() -> None:
        task = asyncio.ensure_future(
            ex.unary(method(idempotent=True, hedge=HEDGE), Req(), OPTS, backend)
        )
        await clock.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    await clock.run(main())
    assert backend.cancelled == [1]


async def test_server_stream_retries_only_before_the_first_message() -> None:
    clock = VirtualClock()
    calls: list[AttemptSpec] = []

    def stream_attempt(fail_after: int) -> Callable[[AttemptSpec], AsyncIterator[int]]:
        async def attempt(spec: AttemptSpec) -> AsyncIterator[int]:
            calls.append(spec)
            for i in range(3):
                if i == fail_after and spec.attempt_number == 1:
                    raise RpcError(Status.UNAVAILABLE)
                await clock.sleep(0.01)
                yield i

        return attempt

    ex = executor(clock)
    m = method(idempotent=True, retry=RETRY)

    async def collect(fail_after: int) -> list[int]:
        return [item async for item in ex.server_stream(m, Req(), OPTS, stream_attempt(fail_after))]

    assert await clock.run(collect(0)) == [0, 1, 2]  # failed before any message: retried
    assert [s.attempt_number for s in calls] == [1, 2]
    calls.clear()
    received: list[int] = []

    async def collect_partial() -> None:
        async for item in ex.server_stream(m, Req(), OPTS, stream_attempt(1)):
            received.append(item)

    with pytest.raises(RpcError):
        await clock.run(collect_partial())
    assert received == [0] and len(calls) == 1  # a message had arrived: not retried


async def test_server_stream_deadline() -> None:
    clock = VirtualClock()

    async def slow(spec: AttemptSpec) -> AsyncIterator[int]:
        for i in range(100):
            await clock.sleep(0.1)
            yield i

    ex = executor(clock)
    got: list[int] = []
    start = clock.now()

    async def main() -> None:
        async for item in ex.server_stream(method(timeout=0.35), Req(), OPTS, slow):
            got.append(item)

    with pytest.raises(RpcError) as info:
        await clock.run(main())
    assert info.value.status is Status.DEADLINE_EXCEEDED
    assert got == [0, 1, 2] and clock.now() - start == pytest.approx(0.35)


async def test_single_makes_one_attempt_but_keeps_the_key_and_deadline() -> None:
    clock = VirtualClock()
    backend = Backend(clock, [RpcError(Status.UNAVAILABLE), "ok"])
    m = method(idempotent=True, timeout=2.0, retry=RETRY)
    start = clock.now()
    with pytest.raises(RpcError):
        await clock.run(executor(clock).single(m, Req(), OPTS, backend))
    assert len(backend.specs) == 1
    assert backend.specs[0].idempotency_key and backend.specs[0].deadline == start + 2.0


async def test_on_the_real_loop_clock_deadline_and_hedge() -> None:
    from rpcnet_runtime.clock import AsyncioClock

    clock = AsyncioClock()
    ex = PolicyExecutor(clock=clock, rng=random.Random(1))
    stalled: list[int] = []

    async def attempt(spec: AttemptSpec) -> str:
        if spec.attempt_number == 1:
            try:
                await asyncio.sleep(5.0)
            except asyncio.CancelledError:
                stalled.append(1)
                raise
        return f"attempt {spec.attempt_number}"

    hedge = HedgePolicy(max_attempts=2, delay=0.02)
    start = clock.now()
    assert await ex.unary(method(idempotent=True, hedge=hedge), Req(), OPTS, attempt) == "attempt 2"
    assert 0.02 <= clock.now() - start < 1.0 and stalled == [1]

    async def hang(spec: AttemptSpec) -> str:
        await asyncio.sleep(5.0)
        return "late"

    start = clock.now()
    with pytest.raises(RpcError) as info:
        await ex.unary(method(timeout=0.03), Req(), OPTS, hang)
    assert info.value.status is Status.DEADLINE_EXCEEDED
    assert clock.now() - start < 1.0


async def test_channel_default_timeout_applies_only_without_a_schema_timeout() -> None:
    clock = VirtualClock()
    ex = executor(clock, default_timeout=3.0)
    for m, options, expected in [
        (method(), OPTS, 3.0),
        (method(timeout=1.0), OPTS, 1.0),
        (method(), CallOptions(timeout=0.5), 0.5),
    ]:
        backend = Backend(clock, ["ok"])
        start = clock.now()
        await clock.run(ex.unary(m, Req(), options, backend))
        assert backend.specs[0].deadline == pytest.approx(start + expected)
    with pytest.raises(ValueError):
        executor(clock, default_timeout=0)


async def test_default_breakers_use_the_given_config() -> None:
    clock = VirtualClock()
    ex = executor(clock, breaker_config=BreakerConfig(failure_threshold=1, failure_rate=None))
    backend = Backend(clock, lambda n: RpcError(Status.UNAVAILABLE))
    with pytest.raises(RpcError):
        await clock.run(ex.unary(method(), Req(), OPTS, backend, endpoint="e1"))
    with pytest.raises(RpcError) as info:
        await clock.run(ex.unary(method(), Req(), OPTS, backend, endpoint="e1"))
    assert info.value.not_processed and len(backend.specs) == 1
    assert ex.counters.breaker_opened == 1
    ok = Backend(clock, ["ok"])
    assert await clock.run(ex.unary(method(), Req(), OPTS, ok, endpoint="e2")) == "ok"
