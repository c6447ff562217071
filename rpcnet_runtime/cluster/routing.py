"""Per-call routing for `ClusterChannel`: which worker each attempt of one logical call uses.

`Route` keeps, for one call, its routing key, its home worker, the workers it tried, those it
must not use again and those with an attempt in flight, and picks the next worker (see the
`channel` module docstring for the rules). `classify_failure` turns a failed attempt into a
registry outcome and a "move on" verdict; `CallBudget` is the cluster-wide retry budget as one
call's executor sees it.
"""

from __future__ import annotations

import random
from typing import Any, Protocol

from ..channel import CallOptions
from ..descriptors import MethodDescriptor
from ..errors import RpcError, SchemaError
from ..metrics import ClusterMetrics
from ..policies.executor import BREAKER_FAILURES, AttemptSpec
from ..policies.throttle import RetryThrottle
from ..status import Status
from .health import CallOutcome
from .registry import NoWorkersAvailable, Worker, WorkerRegistry

__all__ = [
    "CallBudget",
    "Route",
    "RouteContext",
    "WorkerStalled",
    "classify_failure",
    "work_keyed",
]


class RouteContext(Protocol):
    """What a `Route` reads from its channel."""

    registry: WorkerRegistry
    tags: dict[str, str]
    rng: random.Random
    metrics: ClusterMetrics


class WorkerStalled(RpcError):
    """A unary attempt got no answer within the channel's `attempt_timeout` (UNAVAILABLE)."""

    def __init__(self, worker_id: str, seconds: float) -> None:
        self.worker_id = worker_id
        super().__init__(
            Status.UNAVAILABLE, f"no answer from worker {worker_id} within {seconds} s"
        )


def classify_failure(error: RpcError, *, connection_alive: bool) -> tuple[CallOutcome, bool]:
    """The registry outcome of a failed attempt, and whether the call must move elsewhere."""
    if error.status is Status.RESOURCE_EXHAUSTED and (
        error.not_processed or isinstance(error, SchemaError)
    ):
        return CallOutcome.SHED, True  # busy, not broken: skip it without counting a failure
    if not connection_alive:
        return CallOutcome.FAILURE, True  # could not connect, or the connection died
    if error.not_processed:
        return CallOutcome.SHED, True  # draining, or refused before dispatch
    if error.status is Status.DEADLINE_EXCEEDED or isinstance(error, WorkerStalled):
        return CallOutcome.FAILURE, True  # slow or stuck: the next attempt goes elsewhere
    if error.status in BREAKER_FAILURES and not isinstance(error, SchemaError):
        return CallOutcome.FAILURE, False
    return CallOutcome.SUCCESS, False  # an answer from a working worker


class Route:
    """Which workers one logical call has used, and where its next attempt goes."""

    __slots__ = (
        "channel", "excluded", "home", "key", "keyed", "last", "running", "tried", "uncharged",
    )  # fmt: skip

    def __init__(self, channel: RouteContext, *, keyed: bool = False) -> None:
        self.channel = channel
        self.keyed = keyed
        """The key names the work (the caller's or the request's): its home is its rendezvous
        home. Otherwise the first attempt goes where the load-balancing strategy says."""
        self.key: str | None = None
        self.home: str | None = None
        self.last: str | None = None
        self.tried: set[str] = set()
        self.excluded: set[str] = set()
        self.running: set[str] = set()
        self.uncharged = 0
        """Failures of unfit workers (connection lost, stalled) not to charge the budget."""

    def choose(self, spec: AttemptSpec) -> Worker:
        """Pick a worker for this attempt and count it in flight (`begin_call`)."""
        if self.key is None:
            self.key = spec.idempotency_key or f"{self.channel.rng.getrandbits(128):032x}"
        registry = self.channel.registry
        if not self.keyed and self.home is None and not spec.is_hedge:
            first = self._balanced()
            if first is not None:
                return first
        while True:
            order = registry.order_for_key(
                self.key, self.channel.tags, exclude=self.excluded | self.running
            )
            worker = self._pick(order, is_hedge=spec.is_hedge)
            if worker is None:
                return self._panic(spec)
            if registry.begin_call(worker.id):
                return worker
            self.excluded.add(worker.id)  # its breaker refuses calls: move on

    def _panic(self, spec: AttemptSpec) -> Worker:
        """No fit worker is left for this call: if *none* of the cluster's workers is fit
        (breakers open, phi high: often the caller's own judgement under a CPU stall), try
        an untried one that membership still calls alive rather than fail every call (as
        Envoy's panic threshold). Otherwise raise `NoWorkersAvailable`."""
        registry = self.channel.registry
        busy = self.excluded | self.running
        assert self.key is not None
        if not registry.order_for_key(self.key, self.channel.tags):
            for worker in registry.order_for_key(
                self.key, self.channel.tags, exclude=busy | self.tried, panic=True
            ):
                if registry.begin_call(worker.id, force=True):
                    self.channel.metrics.panic_routed.inc()
                    return worker
        raise NoWorkersAvailable(
            self.channel.tags, busy,
            f"every fit worker was tried by this call ({len(self.tried)} tried)",
        )  # fmt: skip

    def _balanced(self) -> Worker | None:
        """The strategy's pick for a first attempt (None: fall back to rendezvous order)."""
        registry = self.channel.registry
        for _ in range(8):  # bounded: each refusal excludes one worker
            try:
                worker = registry.select_worker(self.channel.tags, exclude=self.excluded)
            except NoWorkersAvailable:
                return None
            if registry.begin_call(worker.id):
                return worker
            self.excluded.add(worker.id)
        return None

    def _pick(self, order: list[Worker], *, is_hedge: bool) -> Worker | None:
        if not is_hedge and self.home is not None:
            for worker in order:
                if worker.id == self.home and worker.is_healthy:
                    return worker  # a retry goes home, where the dedupe store answers
        for worker in order:
            if worker.id not in self.tried:
                return worker
        if not is_hedge and self.home is not None:
            for worker in order:
                if worker.id == self.home:
                    return worker  # nothing untried is left: home, even degraded
        return None

    def started(self, worker_id: str) -> bool:
        """Record an attempt on `worker_id`; True if it is a failover (moved from another)."""
        moved = self.last is not None and self.last != worker_id
        if self.home is None:
            self.home = worker_id
        self.tried.add(worker_id)
        self.running.add(worker_id)
        self.last = worker_id
        return moved


class CallBudget:
    """The cluster-wide `RetryThrottle` as one call's executor sees it.

    A failure that only shows one worker is unfit (its connection failed or it stalled) moves
    the call to another worker and is left to that worker's breaker; it does not drain the
    budget, so one crashed worker among many does not stop the failover of the calls it held.
    Every other retryable failure (sheds and overload included) is charged as usual.
    """

    __slots__ = ("bucket", "route")

    def __init__(self, bucket: RetryThrottle, route: Route) -> None:
        self.bucket = bucket
        self.route = route

    def allows_retry(self) -> bool:
        return self.bucket.allows_retry()

    def record_success(self) -> None:
        self.bucket.record_success()

    def record_failure(self) -> None:
        if self.route.uncharged > 0:
            self.route.uncharged -= 1
        else:
            self.bucket.record_failure()


def work_keyed(method: MethodDescriptor[Any, Any], request: object, options: CallOptions) -> bool:
    """True when the call's idempotency key names the work (not a random per-call key)."""
    if options.idempotency_key:
        return True
    field = method.policy.idempotency_key_field
    return bool(field) and getattr(request, field or "", None) not in (None, "")
