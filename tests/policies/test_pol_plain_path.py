"""The executor's plain unary path (no retry, no hedge, inline attempt) against the general one.

`PolicyExecutor.unary` runs a call that cannot retry or hedge in its own frame, with per-method
decisions cached; these tests check that it does exactly what the general path (`CallState` +
`run_once`) does, and that the caches follow the executor's settings. Manual clock: nothing
sleeps.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from rpcnet_runtime.channel import CallOptions
from rpcnet_runtime.context import CallContext, _current_call
from rpcnet_runtime.descriptors import MethodDescriptor, MethodKind, MethodPolicy, RetryPolicy
from rpcnet_runtime.errors import RpcError
from rpcnet_runtime.policies import (
    AttemptSpec,
    BreakerConfig,
    BreakerState,
    ChannelPolicy,
    CircuitBreaker,
    PolicyExecutor,
    RetryThrottle,
)
from rpcnet_runtime.policies.executor_base import MAX_PLANS
from rpcnet_runtime.policies.retry_loop import run_once
from rpcnet_runtime.status import Status

START = 1000.0


class ManualClock:
    """A clock that moves only when a test sets `t`; the plain path never sleeps."""

    def __init__(self) -> None:
        self.t = START

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        raise AssertionError("the plain path never sleeps")


@dataclass
class Req:
    id: str = ""


def method(**policy: Any) -> MethodDescriptor[Any, Any]:
    return MethodDescriptor(
        "t.v1.S", "M", "m", MethodKind.UNARY_UNARY, Req, Req, policy=MethodPolicy(**policy)
    )


Outcome = Callable[[ManualClock, AttemptSpec], Any]


def ok(clock: ManualClock, spec: AttemptSpec) -> Any:
    return "ok"


def unavailable(clock: ManualClock, spec: AttemptSpec) -> Any:
    raise RpcError(Status.UNAVAILABLE, "down", not_processed=True)


def late(clock: ManualClock, spec: AttemptSpec) -> Any:
    clock.t = (spec.deadline if spec.deadline is not None else clock.t) + 1.0
    raise RpcError(Status.DEADLINE_EXCEEDED, "deadline exceeded")


def cancelled(clock: ManualClock, spec: AttemptSpec) -> Any:
    raise asyncio.CancelledError


async def _observe(
    executor: PolicyExecutor,
    clock: ManualClock,
    m: MethodDescriptor[Any, Any],
    options: CallOptions,
    outcome: Outcome,
    *,
    general: bool,
) -> dict[str, Any]:
    """Two calls (the given outcome, then a success) and everything they left behind."""
    specs: list[tuple[Any, ...]] = []
    results: list[Any] = []
    for behave in (outcome, ok):

        async def attempt(spec: AttemptSpec, behave: Outcome = behave) -> Any:
            key = (spec.attempt_number, spec.is_hedge, spec.idempotency_key, spec.deadline)
            specs.append((*key, dict(spec.metadata)))
            return behave(clock, spec)

        try:
            if general:
                call = executor._call(executor._plan(m).policy, Req("r1"), options, "e")
                results.append(await run_once(call, attempt))
            else:
                results.append(await executor.unary(m, Req("r1"), options, attempt, endpoint="e"))
        except RpcError as error:
            results.append((error.status, error.message, error.not_processed))
        except asyncio.CancelledError:
            results.append("cancelled")
    _, throttle, breaker = executor._endpoint("e")
    return {
        "results": results,
        "specs": specs,
        "counters": executor.counters.snapshot(),
        "tokens": throttle.milli_tokens if throttle is not None else None,
        "breaker": breaker.state(clock.now()) if breaker is not None else None,
        "clock": clock.now(),
    }


async def test_the_plain_path_does_what_the_general_path_does() -> None:
    options = [
        CallOptions(),
        CallOptions(timeout=5.0),
        CallOptions(timeout=0.0),
        CallOptions(metadata={"a": "1"}),
        CallOptions(idempotency_key="k"),
        CallOptions(idempotency_key=""),
    ]
    policies = [
        {},
        {"timeout": 3.0},
        {"idempotent": True},
        {"idempotency_key_field": "id"},
    ]
    combos = itertools.product(
        options,
        policies,
        (None, START + 2.0),
        (False, True),
        (None, 4.0),
        (ok, unavailable, late, cancelled),
    )
    checked = 0
    for opts, policy, inherited, breaker_on, default_timeout, outcome in combos:
        seen = []
        for general in (False, True):
            clock = ManualClock()
            channel = ChannelPolicy(
                breaker_enabled=breaker_on,
                default_timeout=default_timeout,
                breaker=BreakerConfig(failure_threshold=1, failure_rate=None),
            )
            executor = channel.executor(clock=clock, rng=random.Random(7))
            throttle = executor._endpoint("e")[1]
            assert throttle is not None
            for _ in range(3):
                throttle.record_failure()  # below the top, so that successes show
            ctx = CallContext(method="t.v1.Up/Call", clock=clock.now, deadline=inherited)
            token = _current_call.set(ctx)
            try:
                seen.append(
                    await _observe(
                        executor, clock, method(**policy), opts, outcome, general=general
                    )
                )
            finally:
                _current_call.reset(token)
        combo = (opts, policy, inherited, breaker_on, default_timeout, outcome.__name__)
        assert seen[0] == seen[1], combo
        checked += 1
    assert checked == 6 * 4 * 2 * 2 * 2 * 4


async def test_a_plain_call_with_nothing_to_send_shares_one_spec() -> None:
    executor = ChannelPolicy().executor(clock=ManualClock())
    specs: list[AttemptSpec] = []

    async def attempt(spec: AttemptSpec) -> str:
        specs.append(spec)
        return "ok"

    m = method()
    for options in (CallOptions(), CallOptions(), CallOptions(metadata={"a": "1"})):
        assert await executor.unary(m, None, options, attempt, endpoint="e") == "ok"
    assert specs[0] is specs[1]
    assert specs[0] == AttemptSpec(1, False, None, None, {})
    assert specs[2] is not specs[0] and dict(specs[2].metadata) == {"a": "1"}
    assert executor.counters.calls == 3 and executor.counters.attempts == 3


async def test_a_plain_call_inherits_the_handler_deadline() -> None:
    clock = ManualClock()
    executor = ChannelPolicy().executor(clock=clock)
    deadlines: list[float | None] = []

    async def attempt(spec: AttemptSpec) -> str:
        deadlines.append(spec.deadline)
        return "ok"

    ctx = CallContext(method="t.v1.Up/Call", clock=clock.now, deadline=START + 0.5)
    token = _current_call.set(ctx)
    try:
        await executor.unary(method(), None, CallOptions(), attempt, endpoint="e")
        await executor.unary(method(timeout=9.0), None, CallOptions(), attempt, endpoint="e")
        await executor.unary(method(), None, CallOptions(timeout=0.25), attempt, endpoint="e")
    finally:
        _current_call.reset(token)
    await executor.unary(method(), None, CallOptions(), attempt, endpoint="e")
    assert deadlines == [START + 0.5, START + 0.5, START + 0.25, None]


async def test_a_cancelled_plain_call_gives_its_half_open_slot_back() -> None:
    clock = ManualClock()
    config = BreakerConfig(failure_threshold=1, failure_rate=None, open_duration=1.0)
    executor = ChannelPolicy(breaker_enabled=True, breaker=config).executor(clock=clock)
    breaker = executor._endpoint("e")[2]
    assert breaker is not None
    breaker.allow(clock.t)
    breaker.record_failure(clock.t)
    clock.t += 1.0  # OPEN has ended: one trial call may go
    started = asyncio.Event()

    async def stalls(spec: AttemptSpec) -> str:
        started.set()
        await asyncio.Event().wait()
        return "never"

    task = asyncio.ensure_future(
        executor.unary(method(), None, CallOptions(), stalls, endpoint="e")
    )
    await started.wait()
    assert breaker.state(clock.t) is BreakerState.HALF_OPEN and not breaker.allow(clock.t)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert breaker.allow(clock.t)  # the slot came back


async def test_plans_follow_the_executor_settings() -> None:
    clock = ManualClock()
    executor = ChannelPolicy().executor(clock=clock)
    m = method(
        idempotent=True,
        retry=RetryPolicy(2, 0.01, 0.1, retryable_statuses=frozenset({Status.UNAVAILABLE})),
    )
    plain = method()
    specs: list[AttemptSpec] = []

    async def attempt(spec: AttemptSpec) -> str:
        specs.append(spec)
        return "ok"

    await executor.unary(plain, None, CallOptions(), attempt, endpoint="e")
    executor.default_timeout = 2.0
    await executor.unary(plain, None, CallOptions(), attempt, endpoint="e")
    assert [s.deadline for s in specs] == [None, START + 2.0]

    async def fails(spec: AttemptSpec) -> str:
        specs.append(spec)
        raise RpcError(Status.UNAVAILABLE, "down")

    executor.retries_enabled = False
    specs.clear()
    with pytest.raises(RpcError):
        await executor.unary(m, None, CallOptions(), fails, endpoint="e")
    assert len(specs) == 1


def test_the_plan_cache_is_bounded_and_keyed_by_identity() -> None:
    executor = PolicyExecutor(clock=ManualClock())
    first = method(timeout=1.0)
    twin = method(timeout=1.0)  # equal, but another object
    assert executor._plan(first) is executor._plan(first)
    assert executor._plan(twin) is not executor._plan(first)
    keep = [method(timeout=float(n + 1)) for n in range(MAX_PLANS + 10)]
    for m in keep:
        assert executor._plan(m).policy.timeout == m.policy.timeout
    assert 0 < len(executor._plans) <= MAX_PLANS


def test_executors_with_the_same_settings_share_plans() -> None:
    first = method(timeout=1.0)
    a = PolicyExecutor(clock=ManualClock(), default_timeout=2.0)
    b = PolicyExecutor(clock=ManualClock(), default_timeout=2.0)
    c = PolicyExecutor(clock=ManualClock(), default_timeout=3.0)
    assert a._plan(first) is b._plan(first)  # one executor per call builds no plan per call
    assert c._plan(first) is not a._plan(first)
    plain = method()
    assert a._plan(plain).policy.timeout == 2.0 and c._plan(plain).policy.timeout == 3.0


async def test_given_endpoint_lookups_are_asked_each_call_unless_stable() -> None:
    asked: list[str] = []
    throttles = {"a": RetryThrottle(), "b": RetryThrottle()}
    breakers = {
        "a": CircuitBreaker(BreakerConfig(failure_threshold=1, failure_rate=None)),
        "b": None,
    }

    def throttle_for(endpoint: str) -> RetryThrottle:
        asked.append(endpoint)
        return throttles[endpoint]

    async def down(spec: AttemptSpec) -> str:
        raise RpcError(Status.UNAVAILABLE, "down")

    async def up(spec: AttemptSpec) -> str:
        return "ok"

    for stable, expected in ((False, ["a", "a", "b", "a"]), (True, ["a", "b", "a"])):
        asked.clear()
        executor = PolicyExecutor(
            clock=ManualClock(),
            throttle_for=throttle_for,
            breaker_for=breakers.__getitem__,
            attempts_enforce_deadline=True,
            stable_endpoints=stable,
        )
        breakers["a"] = CircuitBreaker(BreakerConfig(failure_threshold=1, failure_rate=None))
        with pytest.raises(RpcError):
            await executor.unary(method(), None, CallOptions(), down, endpoint="a")
        with pytest.raises(RpcError) as info:  # a's breaker is open now
            await executor.unary(method(), None, CallOptions(), up, endpoint="a")
        assert "breaker open for a" in info.value.message
        assert await executor.unary(method(), None, CallOptions(), up, endpoint="b") == "ok"
        with pytest.raises(RpcError):
            await executor.unary(method(), None, CallOptions(), up, endpoint="a")
        assert asked == expected
