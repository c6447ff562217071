"""Server load shedding: a limit on concurrent calls and on calls queued behind them.

`LoadShedder` is the pure core: `admit(now)` answers RUN (a slot is free), QUEUE (wait for a
slot; the shell parks the call until `finished` hands it the slot) or SHED (both full). A shed
call is refused before dispatch with RESOURCE_EXHAUSTED marked ``not_processed`` and a
retry-after estimate: the mean service time (an exponentially weighted moving average of the
calls that finished) times the calls ahead of it per slot. `AdmissionGate` is the asyncio shell
a server wraps each handler in.
"""

from __future__ import annotations

import asyncio
import enum
import itertools
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from ..clock import Clock
from ..errors import RpcError
from ..status import Status
from .counters import PolicyCounters

__all__ = ["Admission", "AdmissionDecision", "AdmissionGate", "LoadShedder"]


class AdmissionDecision(enum.Enum):
    RUN = "run"
    QUEUE = "queue"
    SHED = "shed"


@dataclass(frozen=True, slots=True)
class Admission:
    decision: AdmissionDecision
    ticket: int
    """Identifies the call to `finished` and `leave_queue` (0 for a shed call)."""
    retry_after: float | None = None
    """For SHED: seconds after which a retry has a fair chance."""

    def error(self) -> RpcError:
        """The RESOURCE_EXHAUSTED error a shed call is answered with."""
        return RpcError(
            Status.RESOURCE_EXHAUSTED,
            "server overloaded; call shed before dispatch",
            retry_after_seconds=self.retry_after,
            not_processed=True,
        )


class LoadShedder:
    """Admission control for one server (see the module docstring); time is passed in."""

    def __init__(
        self,
        max_concurrent: int,
        max_queued: int = 0,
        *,
        initial_service_time: float = 0.05,
        smoothing: float = 0.2,
        max_retry_after: float = 30.0,
    ) -> None:
        if max_concurrent < 1 or max_queued < 0:
            raise ValueError("need max_concurrent >= 1 and max_queued >= 0")
        if not 0 < smoothing <= 1 or initial_service_time < 0:
            raise ValueError("need 0 < smoothing <= 1 and initial_service_time >= 0")
        self.max_concurrent = max_concurrent
        self.max_queued = max_queued
        self.max_retry_after = max_retry_after
        self._smoothing = smoothing
        self.service_time = initial_service_time
        """Moving average of the seconds a call holds its slot."""
        self._running: dict[int, float] = {}  # ticket -> start time
        self._queue: OrderedDict[int, None] = OrderedDict()
        self._tickets = itertools.count(1)

    @property
    def running(self) -> int:
        return len(self._running)

    @property
    def queued(self) -> int:
        return len(self._queue)

    def admit(self, now: float) -> Admission:
        """A call arrives: RUN, QUEUE or SHED it."""
        if len(self._running) < self.max_concurrent and not self._queue:
            ticket = next(self._tickets)
            self._running[ticket] = now
            return Admission(AdmissionDecision.RUN, ticket)
        if len(self._queue) < self.max_queued:
            ticket = next(self._tickets)
            self._queue[ticket] = None
            return Admission(AdmissionDecision.QUEUE, ticket)
        return Admission(AdmissionDecision.SHED, 0, retry_after=self.retry_after())

    def finished(self, ticket: int, now: float) -> int | None:
        """A running call ended; returns the queued ticket that now runs, if any."""
        started = self._running.pop(ticket, None)
        if started is None:
            raise KeyError(f"ticket {ticket} is not running")
        elapsed = max(0.0, now - started)
        self.service_time += self._smoothing * (elapsed - self.service_time)
        if not self._queue:
            return None
        next_ticket, _ = self._queue.popitem(last=False)
        self._running[next_ticket] = now
        return next_ticket

    def is_running(self, ticket: int) -> bool:
        return ticket in self._running

    def leave_queue(self, ticket: int) -> None:
        """A queued call gave up (cancelled, or its deadline passed) before it ran."""
        self._queue.pop(ticket, None)

    def retry_after(self) -> float:
        """Estimated seconds until a slot frees for a call arriving now behind the queue."""
        ahead = len(self._queue) + 1
        estimate = self.service_time * ahead / self.max_concurrent
        return min(self.max_retry_after, estimate)

    def __repr__(self) -> str:
        return (
            f"LoadShedder(running={self.running}/{self.max_concurrent}, "
            f"queued={self.queued}/{self.max_queued}, service_time={self.service_time:.4f})"
        )


class AdmissionGate:
    """The asyncio shell: ``async with gate.slot(): await handler()``.

    Raises the shed `RpcError` when the call is refused; a queued call waits for its slot (cancel
    the task, e.g. at the call's deadline, to leave the queue).
    """

    def __init__(
        self, shedder: LoadShedder, clock: Clock, counters: PolicyCounters | None = None
    ) -> None:
        self.shedder = shedder
        self._clock = clock
        self.counters = counters or PolicyCounters()
        self._waiting: dict[int, asyncio.Future[None]] = {}

    def enter(self) -> Admission:
        """Admit a call now, without waiting: RUN (it holds a slot: `release` it), QUEUE (`wait`
        for the slot, then `release` it) or SHED (answer it with `Admission.error()`)."""
        admission = self.shedder.admit(self._clock.now())
        if admission.decision is AdmissionDecision.SHED:
            self.counters.shed += 1
        elif admission.decision is AdmissionDecision.QUEUE:
            self.counters.queued += 1
            self._waiting[admission.ticket] = asyncio.get_running_loop().create_future()
        return admission

    async def wait(self, ticket: int) -> None:
        """Wait until the queued `ticket` holds a slot. Cancelled, it leaves the queue (or gives
        back the slot it was handed meanwhile) and owes no `release`."""
        waiter = self._waiting.get(ticket)
        if waiter is None:
            return  # already handed its slot
        try:
            await waiter
        except BaseException:
            self._waiting.pop(ticket, None)
            if waiter.done() and not waiter.cancelled():
                self._release(ticket)  # the slot was handed to us as we were cancelled
            else:
                self.shedder.leave_queue(ticket)
            raise

    def release(self, ticket: int) -> None:
        """A call holding a slot ended."""
        self._release(ticket)

    def drop(self, ticket: int) -> None:
        """Forget `ticket` whatever its state: leave the queue, or give back the slot it holds.
        Doing it twice is harmless."""
        waiter = self._waiting.pop(ticket, None)
        if waiter is not None:
            self.shedder.leave_queue(ticket)
            waiter.cancel()
        elif self.shedder.is_running(ticket):
            self._release(ticket)

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        admission = self.enter()
        if admission.decision is AdmissionDecision.SHED:
            raise admission.error()
        ticket = admission.ticket
        if admission.decision is AdmissionDecision.QUEUE:
            await self.wait(ticket)
        try:
            yield
        finally:
            self._release(ticket)

    def _release(self, ticket: int) -> None:
        next_ticket = self.shedder.finished(ticket, self._clock.now())
        if next_ticket is not None:
            waiter = self._waiting.pop(next_ticket)
            if not waiter.done():
                waiter.set_result(None)
