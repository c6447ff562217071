"""The pure retry decision (table), hedge planning (timing) and deadline arithmetic."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

from rpcnet_runtime.context import CallContext, _current_call
from rpcnet_runtime.descriptors import HedgePolicy, MethodPolicy, RetryPolicy
from rpcnet_runtime.errors import RpcError, SchemaError
from rpcnet_runtime.policies import (
    GiveUpReason,
    HedgePlan,
    HedgeVerdict,
    attempt_deadline,
    call_deadline,
    decide_retry,
    earliest,
    inherited_deadline,
    remaining,
)
from rpcnet_runtime.status import Status


class Overloaded(SchemaError):
    error_name: ClassVar[str] = "t.Overloaded"
    default_status: ClassVar[Status] = Status.RESOURCE_EXHAUSTED

    def __init__(self, retry_after: float | None = None) -> None:
        self.retry_after = retry_after
        super().__init__("busy")

    def pushback_seconds(self) -> float | None:
        return self.retry_after


class Other(SchemaError):
    default_status: ClassVar[Status] = Status.ABORTED


RETRY = RetryPolicy(
    max_attempts=3,
    initial_backoff=0.1,
    max_backoff=1.0,
    retryable_statuses=frozenset({Status.UNAVAILABLE}),
    retryable_errors=(Overloaded,),
)
IDEM = MethodPolicy(idempotent=True, retry=RETRY)
NON_IDEM = MethodPolicy(idempotent=False, retry=RETRY)
UNAVAILABLE = RpcError(Status.UNAVAILABLE)
NOT_PROCESSED = RpcError(Status.RESOURCE_EXHAUSTED, not_processed=True)

# (policy, attempts made, failure, throttle allows, deadline) -> (retry?, delay or reason)
CASES: list[tuple[str, MethodPolicy, int, RpcError, bool, float | None, Any]] = [
    ("listed status retried after backoff", IDEM, 1, UNAVAILABLE, True, None, 0.05),
    ("schema error type retried", IDEM, 1, Overloaded(), True, None, 0.05),
    ("pushback overrides backoff", IDEM, 1, Overloaded(retry_after=0.7), True, None, 0.7),
    (
        "negative pushback stops",
        IDEM,
        1,
        Overloaded(retry_after=-1),
        True,
        None,
        GiveUpReason.PUSHBACK,
    ),
    (
        "unlisted status not retried",
        IDEM,
        1,
        RpcError(Status.INTERNAL),
        True,
        None,
        GiveUpReason.NOT_RETRYABLE,
    ),
    ("unlisted schema error", IDEM, 1, Other(), True, None, GiveUpReason.NOT_RETRYABLE),
    (
        "no policy",
        MethodPolicy(idempotent=True),
        1,
        UNAVAILABLE,
        True,
        None,
        GiveUpReason.NO_POLICY,
    ),
    ("attempts exhausted", IDEM, 3, UNAVAILABLE, True, None, GiveUpReason.ATTEMPTS_EXHAUSTED),
    ("throttled", IDEM, 1, UNAVAILABLE, False, None, GiveUpReason.THROTTLED),
    ("cannot start before the deadline", IDEM, 1, UNAVAILABLE, True, 100.04, GiveUpReason.DEADLINE),
    ("starts before the deadline", IDEM, 1, UNAVAILABLE, True, 100.06, 0.05),
    (
        "non-idempotent after dispatch",
        NON_IDEM,
        1,
        UNAVAILABLE,
        True,
        None,
        GiveUpReason.NOT_IDEMPOTENT,
    ),
    (
        "non-idempotent listed schema error",
        NON_IDEM,
        1,
        Overloaded(),
        True,
        None,
        GiveUpReason.NOT_IDEMPOTENT,
    ),
    ("non-idempotent never processed", NON_IDEM, 1, NOT_PROCESSED, True, None, 0.05),
    ("never processed needs no listing", IDEM, 1, NOT_PROCESSED, True, None, 0.05),
    (
        "never processed still bounded",
        NON_IDEM,
        3,
        NOT_PROCESSED,
        True,
        None,
        GiveUpReason.ATTEMPTS_EXHAUSTED,
    ),
]


@pytest.mark.parametrize(
    ("name", "policy", "made", "failure", "throttle", "deadline", "expected"),
    CASES,
    ids=[c[0] for c in CASES],
)
def test_retry_decision_table(
    name: str,
    policy: MethodPolicy,
    made: int,
    failure: RpcError,
    throttle: bool,
    deadline: float | None,
    expected: Any,
) -> None:
    decision = decide_retry(
        policy=policy,
        attempts_made=made,
        failure=failure,
        backoff=0.05,
        throttle_allows=throttle,
        now=100.0,
        deadline=deadline,
    )
    if isinstance(expected, GiveUpReason):
        assert not decision.retry and decision.reason is expected
    else:
        assert decision.retry and decision.delay == pytest.approx(expected)
        assert decision.pushback == (failure.retry_after_seconds is not None)


HEDGE = HedgePolicy(max_attempts=3, delay=0.1, non_fatal_statuses=frozenset({Status.UNAVAILABLE}))


def test_hedges_are_due_every_delay_up_to_the_limit() -> None:
    plan = HedgePlan(HEDGE, now=0.0)
    assert plan.launch(0.0)
    assert plan.next_deadline() == pytest.approx(0.1)
    assert not plan.launch(0.05)  # not due yet
    assert plan.launch(0.1)
    assert plan.launch(0.2)
    assert plan.next_deadline() is None and not plan.launch(5.0)
    assert plan.started == 3 and plan.outstanding == 3


def test_first_success_wins() -> None:
    plan = HedgePlan(HEDGE, now=0.0)
    plan.launch(0.0)
    plan.launch(0.1)
    assert plan.succeeded() is HedgeVerdict.WIN
    assert plan.next_deadline() is None


def test_non_fatal_failure_launches_the_next_hedge_at_once() -> None:
    plan = HedgePlan(HEDGE, now=0.0)
    plan.launch(0.0)
    assert plan.failed(0.03, RpcError(Status.UNAVAILABLE)) is HedgeVerdict.CONTINUE
    assert plan.next_deadline() == pytest.approx(0.03)
    assert plan.launch(0.03)


def test_pushback_delays_the_next_hedge_and_negative_stops_them() -> None:
    plan = HedgePlan(HEDGE, now=0.0)
    plan.launch(0.0)
    plan.launch(0.1)
    failure = RpcError(Status.UNAVAILABLE, retry_after_seconds=0.5)
    assert plan.failed(0.12, failure) is HedgeVerdict.CONTINUE
    assert plan.next_deadline() == pytest.approx(0.62)
    stop = RpcError(Status.UNAVAILABLE, retry_after_seconds=-1)
    assert plan.failed(0.2, stop) is HedgeVerdict.FAIL  # nothing outstanding, nothing to come
    assert plan.exhausted()


def test_fatal_failure_fails_the_call() -> None:
    plan = HedgePlan(HEDGE, now=0.0)
    plan.launch(0.0)
    plan.launch(0.1)
    assert plan.failed(0.15, RpcError(Status.INVALID_ARGUMENT)) is HedgeVerdict.FAIL


def test_not_processed_is_never_fatal() -> None:
    plan = HedgePlan(HEDGE, now=0.0)
    plan.launch(0.0)
    refused = RpcError(Status.RESOURCE_EXHAUSTED, not_processed=True)
    assert plan.failed(0.01, refused) is HedgeVerdict.CONTINUE


def test_throttle_stops_hedges_but_never_the_first_attempt() -> None:
    plan = HedgePlan(HEDGE, now=0.0)
    assert plan.launch(0.0, throttle_allows=False)
    assert not plan.launch(0.1, throttle_allows=False)
    assert plan.throttled and plan.stopped and plan.next_deadline() is None
    assert plan.failed(0.2, RpcError(Status.UNAVAILABLE)) is HedgeVerdict.FAIL


def test_all_attempts_failing_non_fatally_fails_with_the_last() -> None:
    plan = HedgePlan(
        HedgePolicy(max_attempts=2, delay=0.1, non_fatal_statuses=HEDGE.non_fatal_statuses), 0.0
    )
    plan.launch(0.0)
    plan.launch(0.1)
    assert plan.failed(0.2, RpcError(Status.UNAVAILABLE)) is HedgeVerdict.CONTINUE
    assert plan.failed(0.3, RpcError(Status.UNAVAILABLE)) is HedgeVerdict.FAIL


def test_deadline_arithmetic() -> None:
    policy = MethodPolicy(timeout=2.0)
    assert earliest() is None and earliest(None, 3.0, 1.0) == 1.0
    assert call_deadline(10.0, policy) == 12.0
    assert call_deadline(10.0, policy, timeout=0.5) == 10.5  # the caller's timeout wins
    assert call_deadline(10.0, policy, timeout=5.0, inherited=11.0) == 11.0
    assert call_deadline(10.0, MethodPolicy()) is None
    assert call_deadline(10.0, MethodPolicy(), inherited=11.0) == 11.0
    assert attempt_deadline(10.0, 12.0, 0.5) == 10.5
    assert attempt_deadline(10.0, 12.0, None) == 12.0
    assert attempt_deadline(10.0, None, 3.0) == 13.0
    assert (
        remaining(12.0, 10.5) == 1.5 and remaining(12.0, 13.0) == 0.0 and remaining(None, 1) is None
    )
    with pytest.raises(ValueError):
        call_deadline(10.0, policy, timeout=-1.0)


def test_inherited_deadline_comes_from_the_current_call() -> None:
    assert inherited_deadline() is None
    ctx = CallContext(method="p.S/M", clock=lambda: 50.0, deadline=57.5)
    token = _current_call.set(ctx)
    try:
        assert inherited_deadline() == 57.5
    finally:
        _current_call.reset(token)
