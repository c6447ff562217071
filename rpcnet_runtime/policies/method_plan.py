"""What an executor decides once per method rather than once per call.

A `MethodPlan` holds a method's policy with the channel's defaults applied (``default_timeout``
for methods without ``@timeout``; no retry or hedge when the channel turns retries off), which
loop its unary calls take, and whether its idempotency key can only be the caller's. The
executor keeps one per `MethodDescriptor` (a bounded cache), so a plain call builds no policy
objects; `plan_for` shares them between executors with the same settings (a channel that
builds an executor per call, as the cluster channel does, still builds no plan per call).
"""

from __future__ import annotations

import enum
from dataclasses import replace
from typing import Any

from ..descriptors import MethodDescriptor, MethodPolicy

MAX_PLANS = 1024
"""Plans a cache keeps (per executor, and shared); when full it starts again empty."""

__all__ = ["MAX_PLANS", "Loop", "MethodPlan", "effective_policy", "plan_for", "unary_loop"]


class Loop(enum.Enum):
    """The loop a unary call takes."""

    ONCE = "once"
    """One attempt, awaited inline (its attempt function enforces the deadline)."""
    RETRIED = "retried"
    """Attempts bounded by the executor, retried as the policy allows."""
    HEDGED = "hedged"


def effective_policy(
    policy: MethodPolicy, default_timeout: float | None, retries_enabled: bool
) -> MethodPolicy:
    """`policy` with the channel's defaults applied (the same object when nothing changes)."""
    if policy.timeout is None and default_timeout is not None:
        policy = replace(policy, timeout=default_timeout)
    if not retries_enabled and (policy.retry is not None or policy.hedge is not None):
        policy = replace(policy, retry=None, hedge=None)
    return policy


def unary_loop(policy: MethodPolicy, inline: bool) -> Loop:
    """The loop for a unary call with this (effective) policy."""
    if policy.hedge is not None and policy.idempotent:
        return Loop.HEDGED
    if inline and policy.retry is None and policy.attempt_timeout is None:
        return Loop.ONCE
    return Loop.RETRIED


class MethodPlan:
    """One method's decisions under one executor's settings."""

    __slots__ = (
        "_defaults",
        "_replayable_policy",
        "_single_policy",
        "caller_key_only",
        "loop",
        "method",
        "policy",
        "timeout",
    )

    def __init__(
        self,
        method: MethodDescriptor[Any, Any],
        *,
        default_timeout: float | None,
        retries_enabled: bool,
        inline: bool,
    ) -> None:
        self.method = method
        """Held, so that a cache keyed by the descriptor's id never sees that id reused."""
        self._defaults = (default_timeout, retries_enabled)
        self.policy = effective_policy(method.policy, default_timeout, retries_enabled)
        """The policy of unary and streaming calls."""
        self.loop = unary_loop(self.policy, inline)
        """The loop of a unary call made without ``replayable``."""
        self.timeout = self.policy.timeout
        self.caller_key_only = not self.policy.idempotent and not self.policy.idempotency_key_field
        """No key unless the caller gives one (no key field, not ``@idempotent``)."""
        self._replayable_policy: MethodPolicy | None = None
        self._single_policy: MethodPolicy | None = None

    def replayable_policy(self) -> MethodPolicy:
        """The policy of a unary call with a request stream: never hedged."""
        if self._replayable_policy is None:
            policy = self.method.policy
            if policy.hedge is not None:
                policy = replace(policy, hedge=None)
            self._replayable_policy = effective_policy(policy, *self._defaults)
        return self._replayable_policy

    def single_policy(self) -> MethodPolicy:
        """The policy of a call made once: no retry, no hedge."""
        if self._single_policy is None:
            policy = replace(self.method.policy, retry=None, hedge=None)
            self._single_policy = effective_policy(policy, *self._defaults)
        return self._single_policy


_SHARED: dict[tuple[int, float | None, bool, bool], MethodPlan] = {}


def plan_for(
    method: MethodDescriptor[Any, Any],
    *,
    default_timeout: float | None,
    retries_enabled: bool,
    inline: bool,
) -> MethodPlan:
    """The method's plan under these settings, shared by every executor that has them.

    Keyed by the descriptor's identity (a descriptor hashes every field: too slow per call);
    the plan holds the descriptor, so the id is not reused while the entry lives.
    """
    key = (id(method), default_timeout, retries_enabled, inline)
    plan = _SHARED.get(key)
    if plan is None or plan.method is not method:
        plan = MethodPlan(
            method, default_timeout=default_timeout, retries_enabled=retries_enabled, inline=inline
        )
        if len(_SHARED) >= MAX_PLANS:
            _SHARED.clear()
        _SHARED[key] = plan
    return plan
