"""`ExecutorBase`: a `PolicyExecutor`'s settings and what it keeps between calls.

The per-method plans (`method_plan.MethodPlan`, cached by descriptor identity), the endpoints'
throttles and breakers (remembered for the last endpoint when the lookups are stable), and the
construction of a `CallState` for the loops. The call kinds are in `executor.PolicyExecutor`.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from ..channel import CallOptions
from ..clock import Clock
from ..descriptors import MethodDescriptor, MethodPolicy
from .breaker import BreakerConfig, CircuitBreaker
from .call_state import CallState
from .counters import PolicyCounters
from .deadline import call_deadline, inherited_deadline
from .method_plan import MAX_PLANS, MethodPlan, plan_for
from .spec import NO_METADATA, choose_idempotency_key
from .throttle import RetryThrottle

__all__ = ["MAX_PLANS", "EndpointState", "ExecutorBase"]

EndpointState = tuple[str, RetryThrottle | None, CircuitBreaker | None]
"""An endpoint, its retry throttle and its breaker (None: the mechanism is off)."""


class ExecutorBase:
    """Settings, per-method plans and endpoint state shared by a `PolicyExecutor`'s calls."""

    def __init__(
        self,
        *,
        clock: Clock,
        rng: random.Random | None = None,
        throttle_for: Callable[[str], RetryThrottle | None] | None = None,
        breaker_for: Callable[[str], CircuitBreaker | None] | None = None,
        counters: PolicyCounters | None = None,
        inherit_deadline: bool = True,
        default_timeout: float | None = None,
        breaker_config: BreakerConfig | None = None,
        attempts_enforce_deadline: bool = False,
        retries_enabled: bool = True,
        stable_endpoints: bool = False,
    ) -> None:
        """
        :param throttle_for: the retry throttle of an endpoint (default: one `RetryThrottle`
            per endpoint); return None to disable throttling.
        :param breaker_for: the breaker of an endpoint (default: one `CircuitBreaker` per
            endpoint, configured by `breaker_config`); return None to disable it.
        :param inherit_deadline: take the running handler's deadline into account.
        :param default_timeout: the channel's default deadline, in seconds, for methods whose
            schema sets no ``@timeout`` (a call's ``timeout=`` still wins).
        :param attempts_enforce_deadline: the attempt functions end themselves at
            `AttemptSpec.deadline` (raising DEADLINE_EXCEEDED), as the QUIC channel's do; a call
            that cannot retry or hedge then runs its one attempt inline, with no task of its own.
        :param retries_enabled: False: every call makes one attempt, whatever its policy says.
        :param stable_endpoints: `throttle_for` and `breaker_for` always give the same answer
            for an endpoint, so the executor may remember it (for the last endpoint only). The
            default lookups are stable; given ones are asked on every call unless this is set.
        """
        if default_timeout is not None and default_timeout <= 0:
            raise ValueError(f"default_timeout must be > 0, got {default_timeout}")
        self._plans: dict[int, MethodPlan] = {}
        self._default_timeout = default_timeout
        self._retries_enabled = retries_enabled
        self.breaker_config = breaker_config
        self.clock = clock
        self.rng = rng or random.Random()
        self.counters = counters or PolicyCounters()
        self._throttles: dict[str, RetryThrottle] = {}
        self._breakers: dict[str, CircuitBreaker] = {}
        self._throttle_for = throttle_for or self._default_throttle
        self._breaker_for = breaker_for or self._default_breaker
        self._stable = stable_endpoints or (throttle_for is None and breaker_for is None)
        self._last_endpoint: EndpointState | None = None
        self._inherit = inherit_deadline
        self._inline = attempts_enforce_deadline

    # -- settings that the per-method plans depend on ---------------------------------------------

    @property
    def default_timeout(self) -> float | None:
        return self._default_timeout

    @default_timeout.setter
    def default_timeout(self, value: float | None) -> None:
        self._default_timeout = value
        self._plans.clear()

    @property
    def retries_enabled(self) -> bool:
        return self._retries_enabled

    @retries_enabled.setter
    def retries_enabled(self, value: bool) -> None:
        self._retries_enabled = value
        self._plans.clear()

    def _plan(self, method: MethodDescriptor[Any, Any]) -> MethodPlan:
        """The method's plan (cached by descriptor identity: a descriptor hashes every field)."""
        plan = self._plans.get(id(method))
        if plan is not None and plan.method is method:
            return plan
        plan = plan_for(
            method,
            default_timeout=self._default_timeout,
            retries_enabled=self._retries_enabled,
            inline=self._inline,
        )
        if len(self._plans) >= MAX_PLANS:
            self._plans.clear()
        self._plans[id(method)] = plan
        return plan

    # -- endpoints --------------------------------------------------------------------------------

    def _default_throttle(self, endpoint: str) -> RetryThrottle:
        return self._throttles.setdefault(endpoint, RetryThrottle())

    def _default_breaker(self, endpoint: str) -> CircuitBreaker:
        breaker = self._breakers.get(endpoint)
        if breaker is None:
            breaker = CircuitBreaker(
                self.breaker_config, name=endpoint, listener=self.counters.on_breaker_transition
            )
            self._breakers[endpoint] = breaker
        return breaker

    def _endpoint(self, endpoint: str) -> EndpointState:
        """The endpoint's throttle and breaker (remembered for the last endpoint if stable)."""
        last = self._last_endpoint
        if last is not None and last[0] == endpoint:
            return last
        found = (endpoint, self._throttle_for(endpoint), self._breaker_for(endpoint))
        if self._stable:
            self._last_endpoint = found
        return found

    # -- calls ------------------------------------------------------------------------------------

    def _call(
        self,
        policy: MethodPolicy,
        request: object,
        options: CallOptions,
        endpoint: str,
        replayable: Callable[[], bool] | None = None,
    ) -> CallState:
        """The state of a new logical call (counted); `policy` has the defaults applied."""
        inherited = inherited_deadline() if self._inherit else None
        started: float | None = None
        if options.timeout is None and policy.timeout is None:
            deadline = inherited  # nothing to combine or validate
        else:
            started = now = self.clock.now()
            deadline = call_deadline(now, policy, options.timeout, inherited=inherited)
        key = choose_idempotency_key(policy, request, options, self.rng)
        metadata = NO_METADATA if options.metadata is None else dict(options.metadata)
        last = self._last_endpoint
        _, throttle, breaker = (
            last if last is not None and last[0] == endpoint else self._endpoint(endpoint)
        )
        return CallState(  # positional: this runs once per call
            self.clock,
            self.counters,
            self.rng,
            policy,
            deadline,
            started,
            key,
            metadata,
            throttle,
            breaker,
            endpoint,
            self._inline,
            replayable,
        )
