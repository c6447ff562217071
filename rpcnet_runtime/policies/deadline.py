"""Absolute deadlines on the loop clock, combined with `min`.

A call's deadline is the earliest of: its own timeout (``timeout=`` on the call, else the
schema's ``@timeout``) counted from now, and the deadline it inherits from the handler it is
made in (`rpcnet_runtime.context.current_call`), so a handler's outgoing calls never outlive the
call it serves without the user passing anything on. `None` means "no deadline".
"""

from __future__ import annotations

from ..context import current_call
from ..descriptors import MethodPolicy

__all__ = [
    "attempt_deadline",
    "call_deadline",
    "earliest",
    "inherited_deadline",
    "remaining",
]


def earliest(*deadlines: float | None) -> float | None:
    """The earliest of the deadlines given, ignoring None; None when all are None."""
    present = [d for d in deadlines if d is not None]
    return min(present) if present else None


def inherited_deadline() -> float | None:
    """The deadline of the call the running handler serves, or None outside a handler."""
    ctx = current_call()
    return ctx.deadline if ctx is not None else None


def call_deadline(
    now: float,
    policy: MethodPolicy,
    timeout: float | None = None,
    *,
    inherited: float | None = None,
) -> float | None:
    """The whole logical call's deadline.

    :param timeout: the caller's ``timeout=``; overrides the policy's ``@timeout`` when given.
    :param inherited: the enclosing handler's deadline (see `inherited_deadline`).
    """
    own = timeout if timeout is not None else policy.timeout
    if own is not None and own < 0:
        raise ValueError(f"timeout must be >= 0 seconds, got {own}")
    return earliest(now + own if own is not None else None, inherited)


def attempt_deadline(
    now: float, call_deadline: float | None, attempt_timeout: float | None
) -> float | None:
    """One attempt's deadline: the call's, or sooner when a per-attempt timeout is set."""
    return earliest(call_deadline, now + attempt_timeout if attempt_timeout is not None else None)


def remaining(deadline: float | None, now: float) -> float | None:
    """Seconds left until `deadline` (never negative), or None without one."""
    return None if deadline is None else max(0.0, deadline - now)
