"""`WorkerRegistry`: a live, load-balanced view of the cluster's workers.

The sans-IO core is `WorkerTable` (worker_table.py): membership facts and call accounting in,
"which worker next" / "in which order for this key" / health snapshots out, time passed in.

`WorkerRegistry` is the thin asyncio shell: it syncs from ``membership.members()``, then follows
``membership.subscribe()`` in one task (re-syncing after ``EventsDropped``), reads time from the
injected clock and forwards everything else to its table.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from typing import Protocol

from ..clock import Clock
from ..metrics import ClusterMetrics
from ..policies.breaker import BreakerConfig, CircuitBreaker
from .balancer import LoadBalancer
from .health import CallOutcome, HealthConfig, OutlierConfig
from .types import ClusterEvent, EventsDropped, Member
from .worker_table import NoWorkersAvailable, Worker, WorkerTable

__all__ = [
    "MembershipView",
    "NoWorkersAvailable",
    "Worker",
    "WorkerRegistry",
    "WorkerTable",
]

_log = logging.getLogger(__name__)


class MembershipView(Protocol):
    """What the registry needs from membership."""

    def members(self) -> list[Member]: ...

    def subscribe(self) -> AsyncIterator[ClusterEvent]: ...


class WorkerRegistry:
    """A live view of `membership`'s workers with load balancing and call accounting.

    :param membership: anything with ``members()`` and ``subscribe()`` (see `MembershipView`).
    :param strategy: a registered strategy name (see `balancer.py`) or a `LoadBalancer`.
    :param rng: randomness for the strategy (seed it for reproducible choices).
    :param clock: a `Clock` or a zero-argument function returning seconds (default:
        ``time.monotonic``, the clock asyncio's loop reads).
    :param phi: optional ``phi(worker_id) -> float`` read when a worker's health is assessed
        (the membership's failure detector); `set_phi` pushes values instead.
    :param resync_interval: a query re-reads ``membership.members()`` when the last full read is
        older than this many seconds, which picks up states no event reports (SUSPECT) and
        repairs any gap; None turns it off.

    Following the membership starts at once when constructed inside a running event loop,
    otherwise on `start()`; `aclose()` stops it. The remaining keyword arguments configure the
    `WorkerTable`.
    """

    def __init__(
        self,
        membership: MembershipView,
        strategy: str | LoadBalancer = "least_connections",
        *,
        rng: random.Random | None = None,
        clock: Clock | Callable[[], float] | None = None,
        phi: Callable[[str], float] | None = None,
        health: HealthConfig | None = None,
        outliers: OutlierConfig | None = None,
        breaker: BreakerConfig | None = None,
        latency_decay: float = 10.0,
        metrics: ClusterMetrics | None = None,
        resync_interval: float | None = 1.0,
    ) -> None:
        self._membership = membership
        self.table = WorkerTable(
            strategy, rng=rng, health=health, outliers=outliers, breaker=breaker,
            latency_decay=latency_decay, metrics=metrics,
        )  # fmt: skip
        if clock is None:
            self._now: Callable[[], float] = time.monotonic
        elif isinstance(clock, Clock):
            self._now = clock.now
        else:
            self._now = clock
        self._phi = phi
        self._resync_interval = resync_interval
        self._task: asyncio.Task[None] | None = None
        self._subscription: AsyncIterator[ClusterEvent] | None = None
        self._synced_at = -math.inf
        self.follow_error: Exception | None = None
        """Why following membership stopped, if it failed (it is also logged)."""
        self._sync()
        with contextlib.suppress(RuntimeError):
            asyncio.get_running_loop()
            self.start()

    # -- following membership --------------------------------------------------------------------

    def start(self) -> None:
        """Subscribe to membership events and follow them in a task (needs a running loop)."""
        if self._task is not None:
            return
        loop = asyncio.get_running_loop()
        self._subscription = self._membership.subscribe()
        self._sync()  # after subscribing, so that nothing is missed between the two
        self._task = loop.create_task(self._follow(self._subscription), name="WorkerRegistry")

    @property
    def following(self) -> bool:
        return self._task is not None and not self._task.done()

    async def aclose(self) -> None:
        """Stop following membership; the last view stays queryable."""
        task, self._task = self._task, None
        subscription, self._subscription = self._subscription, None
        close = getattr(subscription, "close", None)
        if callable(close):
            close()
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def __aenter__(self) -> WorkerRegistry:
        self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def _follow(self, subscription: AsyncIterator[ClusterEvent]) -> None:
        try:
            async for event in subscription:
                if isinstance(event, EventsDropped):
                    self._sync()
                else:
                    self.table.apply(event)
                self.table.update_metrics(self._now())
        except Exception as exc:  # a broken subscription must not go unnoticed
            _log.exception("WorkerRegistry stopped following membership")
            self.follow_error = exc

    def _sync(self) -> None:
        self.table.sync(self._membership.members())
        self._synced_at = self._now()

    def apply(self, event: ClusterEvent) -> None:
        """Apply one event by hand (when not following a subscription)."""
        self.table.apply(event)

    # -- queries and accounting ------------------------------------------------------------------

    def select_worker(
        self, tags: Mapping[str, str] | None = None, *, exclude: Iterable[str] = ()
    ) -> Worker:
        """A worker for the next call; raises `NoWorkersAvailable` (UNAVAILABLE) when none fit."""
        now = self._refresh()
        return self.table.select(tags, exclude=exclude, now=now)

    def workers(self, tags: Mapping[str, str] | None = None) -> list[Worker]:
        """Every known worker matching `tags`, failed ones included, sorted by id."""
        now = self._refresh()
        self.table.update_metrics(now)
        return self.table.workers(tags, now=now)

    def worker(self, worker_id: str) -> Worker | None:
        return self.table.snapshot(worker_id, self._refresh())

    def order_for_key(
        self,
        key: str,
        tags: Mapping[str, str] | None = None,
        *,
        exclude: Iterable[str] = (),
        panic: bool = False,
    ) -> list[Worker]:
        """The workers one logical call with idempotency key `key` tries, in order (see
        `WorkerTable.order_for_key` for `panic`)."""
        now = self._refresh()
        return self.table.order_for_key(key, tags, exclude=exclude, now=now, panic=panic)

    def begin_call(self, worker_id: str, *, force: bool = False) -> bool:
        """Count a call in flight to `worker_id`; False if its breaker refuses it (unless
        `force`: panic routing) or membership says it is gone."""
        return self.table.begin_call(worker_id, self._now(), force=force)

    def end_call(self, worker_id: str, latency: float, outcome: CallOutcome | str) -> None:
        """End a call counted by `begin_call`: ``"success"``, ``"failure"``, ``"shed"`` or
        ``"cancelled"`` (shed and cancelled calls count as neither success nor failure)."""
        self.table.end_call(worker_id, latency, outcome, self._now())

    def set_phi(self, worker_id: str, phi: float) -> None:
        self.table.set_phi(worker_id, phi)

    def breaker(self, worker_id: str) -> CircuitBreaker | None:
        return self.table.breaker(worker_id)

    @property
    def strategy(self) -> LoadBalancer:
        return self.table.strategy

    def _refresh(self) -> float:
        now = self._now()
        interval = self._resync_interval
        if interval is not None and now - self._synced_at >= interval:
            self._sync()
        if self._phi is not None:
            for worker_id in list(self.table._entries):
                self.table.set_phi(worker_id, self._phi(worker_id))
        return now

    def __repr__(self) -> str:
        counts = self.table.health_counts(self._now())
        summary = ", ".join(f"{s.value}={n}" for s, n in counts.items())
        state = "following" if self.following else "idle"
        return (
            f"WorkerRegistry(strategy={self.table.strategy.name!r}, workers={len(self.table)}, "
            f"{summary}, {state})"
        )
