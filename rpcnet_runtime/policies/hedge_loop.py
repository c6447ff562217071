"""Hedged unary calls (gRFC A6): another attempt every `delay` until one answers."""

from __future__ import annotations

import asyncio
from typing import Any, TypeVar

from ..errors import RpcError
from .call_state import CallState, DeadlineReached
from .deadline import earliest
from .hedging import HedgePlan, HedgeVerdict
from .spec import AttemptFn

__all__ = ["run_hedged"]

T = TypeVar("T")


async def run_hedged(call: CallState, attempt: AttemptFn[T]) -> T:
    """The first success wins and the rest are cancelled; a fatal failure ends the call."""
    assert call.policy.hedge is not None
    plan = HedgePlan(call.policy.hedge, call.clock.now())
    running: dict[asyncio.Future[Any], int] = {}
    last: RpcError | None = None
    try:
        while True:
            now = call.clock.now()
            if call.deadline is not None and now >= call.deadline:
                raise call.deadline_error() from last
            _launch_due(call, plan, attempt, running, now)
            if plan.exhausted():
                if last is None:
                    raise call.open_error()
                raise last
            wake_at = earliest(plan.next_deadline(), call.deadline)
            done = await call.wait_any(set(running), wake_at)
            for task in sorted(done, key=running.__getitem__):
                del running[task]
                error = task.exception()
                if error is None:
                    plan.succeeded()
                    call.record_success()
                    result: T = task.result()
                    return result
                if isinstance(error, DeadlineReached):
                    continue  # the loop's own deadline check reports it
                if not isinstance(error, RpcError):
                    call.release()
                    raise error
                call.record_failure(error)
                last = error
                if plan.failed(call.clock.now(), error) is HedgeVerdict.FAIL:
                    raise error
    finally:
        for task in running:
            task.cancel()
        if running:
            await asyncio.gather(*running, return_exceptions=True)


def _launch_due(
    call: CallState,
    plan: HedgePlan,
    attempt: AttemptFn[T],
    running: dict[asyncio.Future[Any], int],
    now: float,
) -> None:
    while plan.due(now):
        throttle_ok = call.throttle.allows_retry() if call.throttle is not None else True
        if not call.admit(now):
            plan.stop()
            return
        if not plan.launch(now, throttle_allows=throttle_ok):
            call.counters.throttled += plan.throttled
            call.release()  # the breaker admitted an attempt that is not sent
            return
        spec = call.spec(now, is_hedge=plan.started > 1)
        if spec.is_hedge:
            call.counters.hedges += 1
        task = asyncio.ensure_future(call.bounded(attempt, spec))
        running[task] = spec.attempt_number
