"""What the channel and the server rely on: ChannelPolicy, the inline single attempt,
`replayable`, `retries_enabled`, and the admission gate's enter/wait/drop. Virtual clock."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest
from policy_vclock import VirtualClock

from rpcnet_runtime.channel import CallOptions
from rpcnet_runtime.descriptors import (
    HedgePolicy,
    MethodDescriptor,
    MethodKind,
    MethodPolicy,
    RetryPolicy,
)
from rpcnet_runtime.errors import RpcError
from rpcnet_runtime.policies import (
    AdmissionDecision,
    AdmissionGate,
    AttemptSpec,
    BreakerConfig,
    ChannelPolicy,
    LoadShedder,
    PolicyCounters,
)
from rpcnet_runtime.status import Status

RETRY = RetryPolicy(
    max_attempts=4,
    initial_backoff=0.01,
    max_backoff=0.1,
    retryable_statuses=frozenset({Status.UNAVAILABLE}),
)


def method(**policy: Any) -> MethodDescriptor[Any, Any]:
    return MethodDescriptor(
        "t.v1.S", "M", "m", MethodKind.UNARY_UNARY, object, object, policy=MethodPolicy(**policy)
    )


def failing_then(successes_after: int, specs: list[AttemptSpec]) -> Any:
    async def attempt(spec: AttemptSpec) -> str:
        specs.append(spec)
        if len(specs) <= successes_after:
            raise RpcError(Status.UNAVAILABLE, "down")
        return "ok"

    return attempt


async def test_plain_call_runs_inline_without_a_task() -> None:
    clock = VirtualClock()
    executor = ChannelPolicy().executor(clock=clock)
    outer = asyncio.current_task()
    seen: list[Any] = []

    async def attempt(spec: AttemptSpec) -> str:
        seen.append((asyncio.current_task(), spec.deadline, spec.idempotency_key))
        return "ok"

    assert await executor.unary(method(), None, CallOptions(), attempt, endpoint="e") == "ok"
    assert seen == [(outer, None, None)]
    assert executor.counters.snapshot()["attempts"] == 1


async def test_inline_attempt_gets_the_deadline_and_records_breaker_failures() -> None:
    clock = VirtualClock()
    policy = ChannelPolicy(
        breaker_enabled=True, breaker=BreakerConfig(failure_threshold=2, failure_rate=None)
    )
    executor = policy.executor(clock=clock)
    deadlines: list[float | None] = []

    async def attempt(spec: AttemptSpec) -> str:
        deadlines.append(spec.deadline)
        raise RpcError(Status.UNAVAILABLE, "down")

    m = method(timeout=2.0)
    for _ in range(2):
        with pytest.raises(RpcError):
            await executor.unary(m, None, CallOptions(), attempt, endpoint="e")
    assert deadlines == [clock.now() + 2.0] * 2
    with pytest.raises(RpcError) as info:  # the breaker is open now: nothing is sent
        await executor.unary(m, None, CallOptions(), attempt, endpoint="e")
    assert info.value.not_processed and "breaker" in info.value.message
    assert len(deadlines) == 2
    assert executor.counters.breaker_opened == 1


async def test_expired_deadline_before_sending_is_not_processed() -> None:
    executor = ChannelPolicy().executor(clock=VirtualClock())
    sent: list[AttemptSpec] = []
    with pytest.raises(RpcError) as info:
        await executor.unary(
            method(), None, CallOptions(timeout=0), failing_then(0, sent), endpoint="e"
        )
    assert info.value.status is Status.DEADLINE_EXCEEDED and info.value.not_processed
    assert sent == []


async def test_retries_enabled_false_makes_one_attempt() -> None:
    clock = VirtualClock()
    specs: list[AttemptSpec] = []
    executor = ChannelPolicy(retries_enabled=False).executor(clock=clock)
    with pytest.raises(RpcError):
        await clock.run(
            executor.unary(
                method(idempotent=True, retry=RETRY), None, CallOptions(), failing_then(9, specs)
            )
        )
    assert len(specs) == 1
    specs.clear()
    enabled = ChannelPolicy().executor(clock=clock, rng=random.Random(1))
    result = await clock.run(
        enabled.unary(
            method(idempotent=True, retry=RETRY), None, CallOptions(), failing_then(2, specs)
        )
    )
    assert result == "ok" and len(specs) == 3
    assert len({spec.idempotency_key for spec in specs}) == 1


async def test_replayable_false_stops_retries_and_hedging() -> None:
    clock = VirtualClock()
    executor = ChannelPolicy().executor(clock=clock, rng=random.Random(1))
    specs: list[AttemptSpec] = []
    touched = [False]

    async def attempt(spec: AttemptSpec) -> str:
        specs.append(spec)
        if len(specs) == 1:
            raise RpcError(Status.UNAVAILABLE, "refused", not_processed=True)
        touched[0] = True
        raise RpcError(Status.UNAVAILABLE, "broke mid-stream", not_processed=True)

    with pytest.raises(RpcError) as info:
        await clock.run(
            executor.unary(
                method(retry=RETRY), None, CallOptions(), attempt, replayable=lambda: not touched[0]
            )
        )
    assert "mid-stream" in info.value.message
    assert len(specs) == 2  # retried while untouched, not after
    hedged = method(idempotent=True, hedge=HedgePolicy(max_attempts=3, delay=0.01))
    specs.clear()
    touched[0] = True
    with pytest.raises(RpcError):
        await clock.run(
            executor.unary(hedged, None, CallOptions(), attempt, replayable=lambda: False)
        )
    assert [spec.is_hedge for spec in specs] == [False]


async def test_gate_enter_wait_drop() -> None:
    clock = VirtualClock()
    counters = PolicyCounters()
    gate = AdmissionGate(LoadShedder(1, 1), clock, counters)
    first = gate.enter()
    second = gate.enter()
    third = gate.enter()
    assert [a.decision for a in (first, second, third)] == [
        AdmissionDecision.RUN,
        AdmissionDecision.QUEUE,
        AdmissionDecision.SHED,
    ]
    assert third.retry_after is not None and third.error().not_processed
    waiter = asyncio.ensure_future(gate.wait(second.ticket))
    await asyncio.sleep(0)
    assert not waiter.done()
    gate.release(first.ticket)
    await waiter  # handed the slot
    assert gate.shedder.running == 1 and gate.shedder.queued == 0
    gate.drop(second.ticket)
    gate.drop(second.ticket)  # harmless twice
    assert gate.shedder.running == 0
    # A queued call dropped (its caller reset the stream) leaves the queue.
    holder = gate.enter()
    queued = gate.enter()
    gate.drop(queued.ticket)
    assert gate.shedder.queued == 0
    gate.drop(holder.ticket)
    assert gate.shedder.running == 0
    assert counters.shed == 1 and counters.queued == 2


def test_channel_policy_validates() -> None:
    with pytest.raises(ValueError):
        ChannelPolicy(default_timeout=0)
    with pytest.raises(ValueError):
        ChannelPolicy(throttle_max_tokens=0)


def test_dedupe_keys_are_scoped_by_method_and_peer_identity() -> None:
    from rpcnet_runtime.context import CallContext
    from rpcnet_runtime.dispatch import scoped_key

    def ctx(method: str, identity: str | None) -> CallContext:
        return CallContext(method=method, clock=lambda: 0.0, peer_identity=identity)

    keys = {
        scoped_key(ctx("a.S/Put", None), "k"),
        scoped_key(ctx("a.S/Get", None), "k"),
        scoped_key(ctx("a.S/Put", "CN=alice"), "k"),
        scoped_key(ctx("a.S/Put", "CN=bob"), "k"),
    }
    assert len(keys) == 4
    assert scoped_key(ctx("a.S/Put", "CN=alice"), "k") == scoped_key(
        ctx("a.S/Put", "CN=alice"), "k"
    )


def test_scoped_keys_cannot_be_forged_with_separators() -> None:
    from rpcnet_runtime.context import CallContext
    from rpcnet_runtime.dispatch import scoped_key

    def ctx(identity: str | None) -> CallContext:
        return CallContext(method="a.S/Put", clock=lambda: 0.0, peer_identity=identity)

    assert scoped_key(ctx("a\0b"), "c") != scoped_key(ctx("a"), "b\0c")
    assert scoped_key(ctx("ab"), "c") != scoped_key(ctx("a"), "bc")
    assert scoped_key(ctx(None), "1:xk") != scoped_key(ctx("x"), "k")
