"""The retry decision, as a pure function (gRFC A6 plus rpcnet's idempotency rule).

`decide_retry` answers, after a failed attempt: retry after D seconds, or give up and why. The
rules, in order:

1. No ``@retry`` policy: give up (a call without a policy is made once).
2. The failure must be retryable: its status is in the policy's ``on`` list, or it is an instance
   of one of the schema error types listed there, or the server proved no handler ran
   (`RpcError.not_processed`: a shed call, a draining server, a connection lost before the
   request was sent). Those are always safe to try again, so they need not be listed.
3. A method that is not ``@idempotent`` is retried only when the failure is ``not_processed``,
   whatever ``on`` says: the request may have run, and running it twice is not allowed.
4. At most ``attempts`` attempts in all, the first included.
5. Server pushback: a negative retry-after means "do not retry"; a retry-after overrides the
   jittered backoff (and, as gRFC A6 says, the backoff sequence starts again afterwards).
6. The per-server retry throttle must allow it.
7. A retry that cannot start before the call's deadline is not made.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from ..descriptors import MethodPolicy
from ..errors import RpcError

__all__ = ["GiveUpReason", "RetryDecision", "decide_retry", "is_retryable"]


class GiveUpReason(enum.Enum):
    NO_POLICY = "no retry policy"
    NOT_RETRYABLE = "failure not retryable"
    NOT_IDEMPOTENT = "method not idempotent and the request may have been processed"
    ATTEMPTS_EXHAUSTED = "all attempts used"
    PUSHBACK = "server pushback said not to retry"
    THROTTLED = "retry throttle engaged"
    DEADLINE = "retry could not start before the deadline"


@dataclass(frozen=True, slots=True)
class RetryDecision:
    """Retry after `delay` seconds, or give up for `reason`."""

    retry: bool
    delay: float = 0.0
    reason: GiveUpReason | None = None
    pushback: bool = False
    """True when `delay` came from server pushback rather than backoff."""

    @classmethod
    def give_up(cls, reason: GiveUpReason) -> RetryDecision:
        return cls(retry=False, reason=reason)


def is_retryable(policy: MethodPolicy, failure: RpcError) -> bool:
    """Rule 2 alone: is this failure worth another attempt under the method's ``on`` list?"""
    if failure.not_processed:
        return True
    retry = policy.retry
    if retry is None:
        return False
    if failure.status in retry.retryable_statuses:
        return True
    return bool(retry.retryable_errors) and isinstance(failure, retry.retryable_errors)


def decide_retry(
    *,
    policy: MethodPolicy,
    attempts_made: int,
    failure: RpcError,
    backoff: float,
    throttle_allows: bool,
    now: float,
    deadline: float | None,
) -> RetryDecision:
    """Decide what follows a failed attempt (see the module docstring for the rules).

    :param attempts_made: attempts sent so far, the failed one included (1 after the first).
    :param backoff: the jittered delay the backoff generator offers for this retry.
    :param throttle_allows: the per-server throttle's `allows_retry()`, read after this
        failure was recorded in it.
    :param deadline: the whole call's absolute deadline, or None.
    """
    if policy.retry is None:
        return RetryDecision.give_up(GiveUpReason.NO_POLICY)
    if not is_retryable(policy, failure):
        return RetryDecision.give_up(GiveUpReason.NOT_RETRYABLE)
    if not policy.idempotent and not failure.not_processed:
        return RetryDecision.give_up(GiveUpReason.NOT_IDEMPOTENT)
    if attempts_made >= policy.retry.max_attempts:
        return RetryDecision.give_up(GiveUpReason.ATTEMPTS_EXHAUSTED)
    pushback = failure.retry_after_seconds
    if pushback is not None and pushback < 0:
        return RetryDecision.give_up(GiveUpReason.PUSHBACK)
    if not throttle_allows:
        return RetryDecision.give_up(GiveUpReason.THROTTLED)
    delay = pushback if pushback is not None else max(0.0, backoff)
    if deadline is not None and now + delay >= deadline:
        return RetryDecision.give_up(GiveUpReason.DEADLINE)
    return RetryDecision(retry=True, delay=delay, pushback=pushback is not None)
