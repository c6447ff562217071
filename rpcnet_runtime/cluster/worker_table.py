"""`WorkerTable`: the sans-IO core of the worker registry (see `registry.py`).

It is fed membership facts (`apply(event)` for each `ClusterEvent`, `sync(members)` for a full
list) and call accounting (`begin_call` / `end_call`, time passed in), and answers the
questions a cluster channel asks: `select(tags, exclude, now)` for "which worker next",
`order_for_key(key, tags, now)` for "in which order do the attempts of this logical call go"
(rendezvous hashing on its idempotency key), and `workers(tags, now)` for a status view.

Each worker carries its member record (address, tags, state), the calls in flight, a peak-EWMA
latency, a circuit breaker, a window of recent outcomes and its phi, from which `health.assess`
derives healthy / degraded / failed. An `OutlierDetector` ejects workers whose calls keep
failing while their gossip is fine. A worker that sheds load is not counted as failing.

Who gets calls: `select` offers the strategy the healthy workers matching the tags, plus those
whose breaker is half-open (they need trial calls to close it); only when there are none, the
degraded ones. Failed ones (membership FAILED or LEFT, phi at the failure threshold, breaker
open, ejected) never get calls. `order_for_key` lists healthy workers in rendezvous order, then
degraded ones in rendezvous order (with ``panic=True``: every routable worker).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from ..errors import RpcError
from ..metrics import ClusterMetrics
from ..policies.breaker import BreakerConfig, BreakerState, CircuitBreaker
from ..status import Status
from .balancer import LoadBalancer, PeakEwma, create_strategy
from .health import (
    CallOutcome,
    ErrorWindow,
    Health,
    HealthConfig,
    HealthState,
    OutlierConfig,
    OutlierDetector,
    assess,
)
from .rendezvous import rendezvous_score
from .types import (
    ClusterEvent,
    Member,
    MemberState,
    NodeFailed,
    NodeJoined,
    NodeLeft,
    NodeRecovered,
)

__all__ = ["ROUTABLE", "NoWorkersAvailable", "Worker", "WorkerTable"]

ROUTABLE = (MemberState.ALIVE, MemberState.SUSPECT)
"""Member states that may receive calls."""


class NoWorkersAvailable(RpcError):
    """No worker matches the tags and is fit for a call (UNAVAILABLE)."""

    def __init__(self, tags: Mapping[str, str], excluded: Iterable[str], detail: str) -> None:
        self.tags = dict(tags)
        self.excluded = frozenset(excluded)
        wanted = ", ".join(f"{k}={v}" for k, v in sorted(self.tags.items())) or "any tags"
        super().__init__(Status.UNAVAILABLE, f"no worker available for {wanted}: {detail}")


@dataclass(frozen=True, slots=True)
class Worker:
    """A snapshot of one worker as the registry saw it at one instant."""

    id: str
    address: str
    tags: Mapping[str, str]
    state: MemberState
    """Membership's view: alive, suspect, failed or left."""
    in_flight: int
    latency_ewma: float | None
    """Peak-EWMA latency in seconds; None before a call completed."""
    health: Health
    breaker: BreakerState = BreakerState.CLOSED
    phi: float = 0.0

    @property
    def is_healthy(self) -> bool:
        return self.health.state is HealthState.HEALTHY

    @property
    def is_degraded(self) -> bool:
        return self.health.state is HealthState.DEGRADED

    def to_dict(self) -> dict[str, object]:
        """JSON-ready fields, for a status view (phi infinity becomes None)."""
        return {
            "id": self.id,
            "address": self.address,
            "tags": dict(self.tags),
            "state": self.state.value,
            "health": self.health.state.value,
            "reason": self.health.reason,
            "phi": self.phi if math.isfinite(self.phi) else None,
            "in_flight": self.in_flight,
            "latency_ewma": self.latency_ewma,
            "breaker": self.breaker.value,
        }

    def __repr__(self) -> str:
        latency = "-" if self.latency_ewma is None else f"{self.latency_ewma * 1000:.1f}ms"
        tags = ",".join(f"{k}={v}" for k, v in sorted(self.tags.items()))
        return (
            f"Worker({self.id!r}, {self.address}, {self.state.value}, {self.health}, "
            f"in_flight={self.in_flight}, latency={latency}, breaker={self.breaker.value}, "
            f"tags={{{tags}}})"
        )


class _Entry:
    __slots__ = ("breaker", "errors", "ewma", "in_flight", "member", "phi")

    def __init__(self, member: Member, table: WorkerTable) -> None:
        self.member = member
        self.in_flight = 0
        self.ewma = PeakEwma(table.latency_decay)
        self.errors = ErrorWindow(table.health_config.error_window, table.health_config.max_samples)
        self.breaker = CircuitBreaker(table.breaker_config, name=member.id)
        self.breaker.add_listener(table._breaker_listener(member.id))
        self.phi = 0.0


def _matches(member: Member, tags: Mapping[str, str] | None) -> bool:
    return not tags or all(member.tags.get(k) == v for k, v in tags.items())


class WorkerTable:
    """The sans-IO core of the registry; see the module docstring. Time is passed in."""

    def __init__(
        self,
        strategy: str | LoadBalancer = "least_connections",
        *,
        rng: random.Random | None = None,
        health: HealthConfig | None = None,
        outliers: OutlierConfig | None = None,
        breaker: BreakerConfig | None = None,
        latency_decay: float = 10.0,
        metrics: ClusterMetrics | None = None,
    ) -> None:
        self.rng = rng if rng is not None else random.Random()
        self.strategy = (
            create_strategy(strategy, self.rng) if isinstance(strategy, str) else strategy
        )
        self.health_config = health or HealthConfig()
        self.breaker_config = breaker or BreakerConfig()
        self.latency_decay = latency_decay
        self.outliers = OutlierDetector(outliers)
        self.metrics = metrics
        self._entries: dict[str, _Entry] = {}

    # -- membership ------------------------------------------------------------------------------

    def apply(self, event: ClusterEvent) -> None:
        """Fold one membership event into the table (partition events change nothing here)."""
        if self.metrics is not None:
            self.metrics.observe_event(event)
        if isinstance(event, NodeJoined | NodeRecovered):
            self._upsert(event.node)
        elif isinstance(event, NodeFailed):
            failed = Member(event.node.id, event.node.address, event.node.tags,
                            MemberState.FAILED, event.node.incarnation)  # fmt: skip
            self._upsert(failed)
        elif isinstance(event, NodeLeft):
            self._remove(event.node.id)

    def sync(self, members: Iterable[Member]) -> None:
        """Make the table match a full member list (after joining, or after lost events)."""
        seen: set[str] = set()
        for member in members:
            if member.state is MemberState.LEFT:
                continue
            seen.add(member.id)
            self._upsert(member)
        for worker_id in [w for w in self._entries if w not in seen]:
            self._remove(worker_id)

    def set_phi(self, worker_id: str, phi: float) -> None:
        """Record the failure detector's current phi for a worker."""
        entry = self._entries.get(worker_id)
        if entry is not None:
            entry.phi = phi

    def _upsert(self, member: Member) -> None:
        entry = self._entries.get(member.id)
        if entry is None:
            entry = self._entries[member.id] = _Entry(member, self)
        entry.member = member
        if member.state in ROUTABLE:
            self.outliers.track(member.id)
        else:
            self.outliers.forget(member.id)
            entry.phi = 0.0

    def _remove(self, worker_id: str) -> None:
        if self._entries.pop(worker_id, None) is not None:
            self.outliers.forget(worker_id)
            if self.metrics is not None:
                self.metrics.forget_worker(worker_id)

    # -- call accounting -------------------------------------------------------------------------

    def begin_call(self, worker_id: str, now: float, *, force: bool = False) -> bool:
        """A call is about to go to `worker_id`: True (and counted in flight) if it may go;
        False for an unknown, failed or departed worker, or one whose breaker refuses it (open,
        or its half-open trial slots taken): try the next worker. `force` skips the breaker
        (panic routing, when no worker is fit: membership still has to say it is routable)."""
        entry = self._entries.get(worker_id)
        if entry is None or entry.member.state not in ROUTABLE:
            return False
        if not force and not entry.breaker.allow(now):
            return False
        entry.in_flight += 1
        if self.metrics is not None:
            self.metrics.calls_in_flight.set(entry.in_flight, worker=worker_id)
        return True

    def end_call(
        self, worker_id: str, latency: float, outcome: CallOutcome | str, now: float
    ) -> None:
        """A call admitted by `begin_call` ended after `latency` seconds with `outcome`."""
        outcome = CallOutcome(outcome)
        entry = self._entries.get(worker_id)
        if self.metrics is not None and outcome is CallOutcome.SHED:
            self.metrics.shed.inc()
        if entry is None:
            return  # the worker left while the call was in flight
        entry.in_flight = max(0, entry.in_flight - 1)
        if self.metrics is not None:
            self.metrics.worker_calls.inc(worker=worker_id, outcome=outcome.value)
            self.metrics.calls_in_flight.set(entry.in_flight, worker=worker_id)
        if outcome in (CallOutcome.SHED, CallOutcome.CANCELLED):
            entry.breaker.release(now)  # busy or abandoned: neither success nor failure
            return
        failed = outcome is CallOutcome.FAILURE
        current = entry.ewma.value(now)
        if not failed or current is None or latency > current:
            # A fast failure must not make a broken worker look fast: failures only raise it.
            entry.ewma.observe(max(0.0, latency), now)
        entry.errors.record(now, failed=failed)
        if failed:
            entry.breaker.record_failure(now)
        else:
            entry.breaker.record_success(now)
        if self.outliers.record(worker_id, failed=failed, now=now) and self.metrics is not None:
            self.metrics.outlier_ejections.inc(worker=worker_id)

    # -- queries ---------------------------------------------------------------------------------

    def snapshot(self, worker_id: str, now: float) -> Worker | None:
        entry = self._entries.get(worker_id)
        return self._snapshot(entry, now) if entry is not None else None

    def breaker(self, worker_id: str) -> CircuitBreaker | None:
        entry = self._entries.get(worker_id)
        return entry.breaker if entry is not None else None

    def workers(self, tags: Mapping[str, str] | None = None, *, now: float) -> list[Worker]:
        """Every known worker matching `tags` (failed ones included), by id."""
        return [
            self._snapshot(self._entries[wid], now)
            for wid in sorted(self._entries)
            if _matches(self._entries[wid].member, tags)
        ]

    def select(
        self,
        tags: Mapping[str, str] | None = None,
        *,
        exclude: Iterable[str] = (),
        now: float,
    ) -> Worker:
        """The strategy's pick among the fit workers; raises `NoWorkersAvailable`."""
        excluded = frozenset(exclude)
        candidates = self._routable(tags, excluded, now)
        preferred = [w for w in candidates if w.is_healthy or w.breaker is BreakerState.HALF_OPEN]
        pool = preferred or [w for w in candidates if w.is_degraded]
        if not pool:
            raise NoWorkersAvailable(tags or {}, excluded, self._why_none(tags, excluded, now))
        return self.strategy.pick(pool)

    def order_for_key(
        self,
        key: str,
        tags: Mapping[str, str] | None = None,
        *,
        exclude: Iterable[str] = (),
        now: float,
        panic: bool = False,
    ) -> list[Worker]:
        """Healthy workers in rendezvous order for `key`, then degraded ones; failed left out.

        With `panic`, every worker membership calls alive or suspect, whatever its health,
        in rendezvous order (for when no worker is fit: better to try than to fail them all).
        """
        excluded = frozenset(exclude)
        candidates = self._routable(tags, excluded, now)
        candidates.sort(key=lambda w: (-rendezvous_score(key, w.id), w.id))
        if panic:
            return candidates
        return [w for w in candidates if w.is_healthy] + [w for w in candidates if w.is_degraded]

    def health_counts(self, now: float) -> dict[HealthState, int]:
        counts = dict.fromkeys(HealthState, 0)
        for entry in self._entries.values():
            counts[self._snapshot(entry, now).health.state] += 1
        return counts

    def update_metrics(self, now: float) -> None:
        """Refresh the health gauges of `metrics`, if any."""
        if self.metrics is not None:
            counts = self.health_counts(now)
            self.metrics.set_health_counts(
                counts[HealthState.HEALTHY],
                counts[HealthState.DEGRADED],
                counts[HealthState.FAILED],
            )

    def next_deadline(self) -> float | None:
        """The next time a worker's health may change by itself (an ejection or breaker ends)."""
        times = [e.breaker.next_deadline() for e in self._entries.values()]
        times.append(self.outliers.next_deadline())
        pending = [t for t in times if t is not None]
        return min(pending) if pending else None

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, worker_id: object) -> bool:
        return worker_id in self._entries

    def __repr__(self) -> str:
        states: dict[str, int] = {}
        for entry in self._entries.values():
            states[entry.member.state.value] = states.get(entry.member.state.value, 0) + 1
        return f"WorkerTable(strategy={self.strategy.name!r}, workers={len(self)}, {states})"

    # -- helpers ---------------------------------------------------------------------------------

    def _routable(
        self, tags: Mapping[str, str] | None, excluded: frozenset[str], now: float
    ) -> list[Worker]:
        return [
            self._snapshot(self._entries[wid], now)
            for wid in sorted(self._entries)
            if wid not in excluded
            and self._entries[wid].member.state in ROUTABLE
            and _matches(self._entries[wid].member, tags)
        ]

    def _snapshot(self, entry: _Entry, now: float) -> Worker:
        member = entry.member
        breaker_state = entry.breaker.state(now)
        calls, failures = entry.errors.counts(now)
        health = assess(
            self.health_config,
            member_state=member.state,
            phi=entry.phi,
            breaker=breaker_state,
            calls=calls,
            failures=failures,
            ejected=self.outliers.is_ejected(member.id, now),
        )
        return Worker(
            id=member.id,
            address=member.address,
            tags=member.tags,
            state=member.state,
            in_flight=entry.in_flight,
            latency_ewma=entry.ewma.value(now),
            health=health,
            breaker=breaker_state,
            phi=entry.phi,
        )

    def _why_none(
        self, tags: Mapping[str, str] | None, excluded: frozenset[str], now: float
    ) -> str:
        matching = self.workers(tags, now=now)
        if not matching:
            return f"none of {len(self._entries)} known workers has these tags"
        left = [w for w in matching if w.id not in excluded]
        if not left:
            return f"all {len(matching)} matching workers were excluded"
        reasons = "; ".join(f"{w.id}: {w.health}" for w in left[:5])
        return f"{len(left)} matching workers, none fit ({reasons})"

    def _breaker_listener(
        self, worker_id: str
    ) -> Callable[[BreakerState, BreakerState, float], None]:
        def listener(old: BreakerState, new: BreakerState, now: float) -> None:
            if new is BreakerState.OPEN and self.metrics is not None:
                self.metrics.breaker_openings.inc(worker=worker_id)

        return listener
