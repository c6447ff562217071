"""Load shedding: run / queue / shed, the retry-after estimate and the asyncio gate."""

from __future__ import annotations

import asyncio

import pytest
from policy_vclock import VirtualClock

from rpcnet_runtime.errors import RpcError
from rpcnet_runtime.policies import (
    AdmissionDecision,
    AdmissionGate,
    BreakerState,
    LoadShedder,
    PolicyCounters,
)
from rpcnet_runtime.status import Status

RUN, QUEUE, SHED = AdmissionDecision.RUN, AdmissionDecision.QUEUE, AdmissionDecision.SHED


def test_admission_runs_then_queues_then_sheds() -> None:
    shedder = LoadShedder(max_concurrent=2, max_queued=1, initial_service_time=0.1)
    decisions = [shedder.admit(0.0) for _ in range(4)]
    assert [a.decision for a in decisions] == [RUN, RUN, QUEUE, SHED]
    shed = decisions[3]
    # One queued call ahead, two slots, 0.1 s per call: (1 + 1) * 0.1 / 2.
    assert shed.retry_after == pytest.approx(0.1)
    error = shed.error()
    assert error.status is Status.RESOURCE_EXHAUSTED and error.not_processed
    assert error.retry_after_seconds == pytest.approx(0.1)


def test_finishing_hands_the_slot_to_the_oldest_queued_call() -> None:
    shedder = LoadShedder(max_concurrent=1, max_queued=2)
    first = shedder.admit(0.0)
    second = shedder.admit(0.0)
    third = shedder.admit(0.0)
    assert (second.decision, third.decision) == (QUEUE, QUEUE)
    assert shedder.finished(first.ticket, 1.0) == second.ticket
    assert shedder.running == 1 and shedder.queued == 1
    shedder.leave_queue(third.ticket)
    assert shedder.finished(second.ticket, 2.0) is None
    assert shedder.running == 0
    with pytest.raises(KeyError):
        shedder.finished(second.ticket, 2.0)


def test_a_new_call_does_not_jump_the_queue() -> None:
    shedder = LoadShedder(max_concurrent=1, max_queued=1)
    first = shedder.admit(0.0)
    assert shedder.admit(0.0).decision is QUEUE
    queued_next = shedder.finished(first.ticket, 0.5)
    assert queued_next is not None
    assert shedder.admit(0.5).decision is QUEUE  # the slot went to the queued call


def test_service_time_is_a_moving_average() -> None:
    shedder = LoadShedder(max_concurrent=1, initial_service_time=1.0, smoothing=0.5)
    ticket = shedder.admit(0.0).ticket
    shedder.finished(ticket, 3.0)
    assert shedder.service_time == pytest.approx(2.0)
    assert shedder.admit(3.0).decision is RUN
    assert shedder.admit(3.0).retry_after == pytest.approx(2.0)


def test_config_is_validated() -> None:
    with pytest.raises(ValueError):
        LoadShedder(max_concurrent=0)
    with pytest.raises(ValueError):
        LoadShedder(max_concurrent=1, smoothing=0)


async def test_gate_runs_queues_and_sheds() -> None:
    clock = VirtualClock(start=0.0)
    counters = PolicyCounters()
    gate = AdmissionGate(LoadShedder(max_concurrent=1, max_queued=1), clock, counters)
    order: list[str] = []

    async def call(name: str, work: float) -> str:
        try:
            async with gate.slot():
                order.append(f"start {name} @{clock.now()}")
                await clock.sleep(work)
            return "ok"
        except RpcError as error:
            assert error.not_processed
            return error.status.name

    async def main() -> list[str]:
        return list(await asyncio.gather(call("a", 1.0), call("b", 1.0), call("c", 1.0)))

    assert await clock.run(main()) == ["ok", "ok", "RESOURCE_EXHAUSTED"]
    assert order == ["start a @0.0", "start b @1.0"]
    assert counters.shed == 1 and counters.queued == 1
    assert gate.shedder.running == 0 and gate.shedder.queued == 0


async def test_gate_cancelled_while_queued_leaves_the_queue() -> None:
    clock = VirtualClock(start=0.0)
    gate = AdmissionGate(LoadShedder(max_concurrent=1, max_queued=1), clock)

    async def hold() -> None:
        async with gate.slot():
            await clock.sleep(1.0)

    async def wait_in_queue() -> None:
        async with gate.slot():
            raise AssertionError("never runs")

    async def main() -> None:
        holder = asyncio.ensure_future(hold())
        await clock.sleep(0.1)
        queued = asyncio.ensure_future(wait_in_queue())
        await clock.sleep(0.1)
        assert gate.shedder.queued == 1
        queued.cancel()
        await asyncio.gather(queued, return_exceptions=True)
        assert gate.shedder.queued == 0
        await holder

    await clock.run(main())
    assert gate.shedder.running == 0


def test_counters_snapshot_and_breaker_listener() -> None:
    counters = PolicyCounters()
    counters.attempts += 3
    counters.on_breaker_transition(BreakerState.CLOSED, BreakerState.OPEN, 1.0)
    counters.on_breaker_transition(BreakerState.OPEN, BreakerState.HALF_OPEN, 2.0)
    snap = counters.snapshot()
    assert snap["attempts"] == 3
    assert snap["breaker_transitions"] == 2 and snap["breaker_opened"] == 1
    assert set(snap) >= {"retries", "hedges", "throttled", "dedupe_hits", "shed"}
    assert all(isinstance(v, int) for v in snap.values())
