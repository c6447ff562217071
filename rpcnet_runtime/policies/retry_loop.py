"""Unary calls without hedging: one inline attempt, or attempts retried as the policy allows."""

from __future__ import annotations

from typing import TypeVar

from ..errors import RpcError
from ..status import Status
from .call_state import CallState, DeadlineReached
from .spec import AttemptFn

__all__ = ["run_once", "run_retried"]

T = TypeVar("T")


async def run_once(call: CallState, attempt: AttemptFn[T]) -> T:
    """The single attempt of a call that cannot retry, awaited inline (the attempt function
    enforces the deadline itself): no task, no timer."""
    now = _start_time(call)
    if call.deadline is not None and now >= call.deadline:
        raise call.deadline_error()
    if not call.admit(now):
        raise call.open_error()
    spec = call.spec(now, is_hedge=False)
    try:
        response = await attempt(spec)
    except RpcError as failure:
        call.record_failure(failure)
        if failure.status is Status.DEADLINE_EXCEEDED and call.past_deadline():
            call.counters.deadline_exceeded += 1
        raise
    except BaseException:
        call.release()
        raise
    call.record_success()
    return response


def _start_time(call: CallState) -> float:
    """The start time, reading the clock only if something uses it (a deadline, the breaker
    or a per-attempt timeout); 0.0 otherwise, which nothing reads."""
    if call.started is not None:
        return call.started
    if call.deadline is None and call.breaker is None and call.policy.attempt_timeout is None:
        return 0.0
    call.started = now = call.clock.now()
    return now


async def run_retried(call: CallState, attempt: AttemptFn[T]) -> T:
    """Attempts bounded by their deadlines (each in a task), retried as the policy allows."""
    backoff = call.backoff()
    last: RpcError | None = None
    while True:
        spec = call.next_attempt(last)
        try:
            response = await call.bounded(attempt, spec)
        except DeadlineReached:
            call.deadline_reached()
            raise call.deadline_error() from last
        except RpcError as failure:
            call.record_failure(failure)
            going_on = await call.retry_after(failure, backoff)
            if going_on is None:
                raise
            backoff, last = going_on, failure
            continue
        except Exception:
            call.release()  # not an RPC outcome (a bug in the attempt function): no verdict
            raise
        call.record_success()
        return response
