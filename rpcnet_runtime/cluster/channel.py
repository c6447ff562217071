"""`ClusterChannel`: a `Channel` to a set of workers, with failover built in.

Theory of operation
-------------------
Every logical call goes through the `PolicyExecutor` (timeout, retries, hedging, the retry
throttle) with an attempt function that picks the worker *per attempt*. The executor's own
per-endpoint breaker is switched off: breakers are per worker, in the registry (`begin_call`
refuses a worker whose breaker is open, `end_call` feeds it), and the executor's retry throttle
is one bucket for the whole cluster, so a struggling cluster is not flooded with retries (a
failure that only shows one worker unfit, a lost connection or a stall, moves the call on and
is left to that worker's breaker instead of draining the budget: see `routing.CallBudget`).

The attempts of one call follow one order of workers: rendezvous order on the call's
idempotency key (`registry.order_for_key`; a random routing key for a call without one), fresh
for each attempt so that health changes count at once. When the key names the work (the
caller's ``idempotency_key=`` or the request's ``@idempotent(key=...)`` field) the first attempt
goes to the key's rendezvous home, so repeats of the same work meet the same idempotency store;
otherwise (no key, or a random per-call key) the first attempt goes where the registry's
strategy (round robin, least connections, p2c, ...) says. A `routing.Route` remembers, per call:

- *home*: the worker of the first attempt. A retry goes back to it while it is healthy and did
  not prove unfit, so its idempotency store answers instead of running the work twice.
- *excluded*: workers this call must not use again: the connection failed (dial failed, or the
  connection died under the attempt), the worker shed the call (RESOURCE_EXHAUSTED before
  dispatch, or a schema error with that status such as ``Overloaded``), it was draining, the
  attempt timed out, or its breaker refused the call. The next attempt moves on.
- *tried*: every worker an attempt went to. A move (and every hedge) goes to the first worker in
  the order that was never tried for this call.

Outcomes reach the registry: success, failure (`BREAKER_FAILURES`, not schema errors),
shed (not a failure: the worker is busy, not broken) or cancelled (a losing hedge). A
non-idempotent call is moved only when the failure proves it was not processed: the executor
retries such calls only on ``not_processed`` failures.

A sweeper task closes the pooled connections of workers the registry no longer routes to (left
or failed), which also fails the calls still in flight on them at once so that they fail over,
and drops connections idle for longer than the pool's `idle_timeout`.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import replace
from typing import TypeVar

from ..channel import CallOptions
from ..client import ClientChannel
from ..clock import AsyncioClock, Clock
from ..config import ClientConfig
from ..descriptors import MethodDescriptor, RequestT, ResponseT
from ..errors import RpcError
from ..metrics import ClusterMetrics
from ..policies.counters import PolicyCounters
from ..policies.executor import AttemptSpec, PolicyExecutor
from ..policies.throttle import RetryThrottle
from ..status import Status
from ..tls import ClientTLS
from .health import CallOutcome
from .pool import ConnectionPool
from .registry import Worker, WorkerRegistry
from .routing import CallBudget, Route, WorkerStalled, classify_failure, work_keyed
from .worker_table import ROUTABLE

__all__ = ["ClusterChannel", "WorkerStalled", "classify_failure"]

T = TypeVar("T")


class ClusterChannel:
    """A `Channel` that sends each call to a worker chosen by `registry` (see module docs).

    :param registry: the live worker view (`WorkerRegistry`).
    :param tags: only workers with all these tags get calls.
    :param tls: client TLS settings for every worker connection (verification on).
    :param config: client settings for every worker connection.
    :param attempt_timeout: seconds a unary attempt may wait for its worker before it fails
        with UNAVAILABLE (retryable where the method's ``on`` lists it, for idempotent methods)
        and the next attempt moves to another worker: a worker that died or was paused
        without its connection noticing does not hold calls until their deadline.
    :param retry_throttle: the cluster-wide retry budget (gRFC A6 token bucket).
    :param max_connections: bound of the connection pool; `idle_timeout` its idle expiry.
    :param sweep_interval: how often the sweeper closes connections to departed workers.
    :param connect: makes a worker connection from ``host:port`` (tests inject their own).
    :param clock: must read the event loop's clock (deadlines are sent as time remaining).
    :param on_attempt: called with the worker id and the attempt's spec as each attempt is
        sent (tracing, tests).
    """

    def __init__(
        self,
        registry: WorkerRegistry,
        *,
        tags: Mapping[str, str] | None = None,
        tls: ClientTLS,
        config: ClientConfig | None = None,
        attempt_timeout: float | None = None,
        retry_throttle: RetryThrottle | None = None,
        default_timeout: float | None = None,
        max_connections: int = 64,
        idle_timeout: float = 60.0,
        sweep_interval: float = 0.1,
        metrics: ClusterMetrics | None = None,
        rng: random.Random | None = None,
        clock: Clock | None = None,
        connect: Callable[[str], ClientChannel] | None = None,
        on_attempt: Callable[[str, AttemptSpec], None] | None = None,
    ) -> None:
        if attempt_timeout is not None and attempt_timeout <= 0:
            raise ValueError(f"attempt_timeout must be > 0, got {attempt_timeout}")
        self.registry = registry
        self.tags: dict[str, str] = dict(tags or {})
        self.tls = tls
        self.config = config or ClientConfig()
        self.attempt_timeout = attempt_timeout
        self.throttle = retry_throttle if retry_throttle is not None else RetryThrottle()
        self.metrics = (
            metrics if metrics is not None else (registry.table.metrics or ClusterMetrics())
        )
        self.rng = rng or random.Random()
        self.clock: Clock = clock or AsyncioClock()
        self.counters = PolicyCounters()
        self.default_timeout = default_timeout
        make = connect or (lambda address: ClientChannel(address, tls=tls, config=self.config))
        self.pool: ConnectionPool[ClientChannel] = ConnectionPool(
            make, max_connections=max_connections, idle_timeout=idle_timeout
        )
        self.sweep_interval = sweep_interval
        self.on_attempt = on_attempt
        self._sweeper: asyncio.Task[None] | None = None
        self._closed = False

    def __repr__(self) -> str:
        tags = ",".join(f"{k}={v}" for k, v in sorted(self.tags.items()))
        return f"ClusterChannel(tags={{{tags}}}, {self.pool!r}, {self.registry!r})"

    # -- lifecycle -----------------------------------------------------------------------------

    async def close(self) -> None:
        """Stop the sweeper and close every worker connection."""
        self._closed = True
        sweeper, self._sweeper = self._sweeper, None
        if sweeper is not None:
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper
        await _close_all(self.pool.drain())

    async def __aenter__(self) -> ClusterChannel:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def _ensure_sweeper(self) -> None:
        if self._sweeper is None and not self._closed:
            self._sweeper = asyncio.get_running_loop().create_task(
                self._sweep_forever(), name="ClusterChannel.sweep"
            )

    async def _sweep_forever(self) -> None:
        while True:
            await self.sweep()
            await self.clock.sleep(self.sweep_interval)

    async def sweep(self) -> None:
        """Close connections to workers that left or failed, and idle ones."""
        alive = {w.id for w in self.registry.workers(self.tags) if w.state in ROUTABLE}
        doomed = self.pool.retain(alive) + self.pool.expire(self.clock.now())
        await _close_all(doomed)

    # -- one attempt -----------------------------------------------------------------------------

    async def _begin(self, route: Route, spec: AttemptSpec) -> tuple[Worker, ClientChannel, float]:
        """Pick the attempt's worker, count it in flight and get its connection."""
        if self._closed:
            raise RpcError(Status.UNAVAILABLE, "the channel is closed", not_processed=True)
        self._ensure_sweeper()
        worker = route.choose(spec)
        if route.started(worker.id):
            self.metrics.failovers.inc()
        if spec.is_hedge:
            self.metrics.hedges.inc()
        elif spec.attempt_number > 1:
            self.metrics.retries.inc()
        if self.on_attempt is not None:
            self.on_attempt(worker.id, spec)
        started = self.clock.now()
        try:
            connection, doomed = self.pool.acquire(worker.id, worker.address, started)
        except RpcError:
            route.running.discard(worker.id)
            self.registry.end_call(worker.id, 0.0, CallOutcome.CANCELLED)
            raise
        if doomed:
            await _close_all(doomed)
        return worker, connection, started

    def _executor(self, route: Route) -> PolicyExecutor:
        """An executor for one logical call (cheap: it only holds references)."""
        budget = CallBudget(self.throttle, route)
        return PolicyExecutor(
            clock=self.clock,
            rng=self.rng,
            throttle_for=lambda _endpoint: budget,  # type: ignore[arg-type,return-value]
            breaker_for=lambda _endpoint: None,  # breakers are per worker, in the registry
            counters=self.counters,
            default_timeout=self.default_timeout,
        )

    def _failed(
        self, route: Route, worker: Worker, connection: ClientChannel, error: RpcError
    ) -> CallOutcome:
        outcome, move = classify_failure(error, connection_alive=connection.is_connected)
        if move:
            route.excluded.add(worker.id)
            if outcome is CallOutcome.FAILURE:
                route.uncharged += 1
        return outcome

    def _end(
        self,
        route: Route,
        worker: Worker,
        connection: ClientChannel,
        started: float,
        outcome: CallOutcome,
    ) -> None:
        route.running.discard(worker.id)
        now = self.clock.now()
        self.pool.release(worker.id, connection, now)
        self.registry.end_call(worker.id, now - started, outcome)

    async def _dial(self, connection: ClientChannel, spec: AttemptSpec, started: float) -> float:
        """Connect first when needed, so that a handshake neither counts in the worker's latency
        (which would starve it under p2c) nor against the stall timeout. Returns the time the
        call itself starts."""
        if connection.is_connected:
            return started
        await connection._connection(spec.deadline)
        return self.clock.now()

    async def _run_attempt(
        self,
        route: Route,
        spec: AttemptSpec,
        send: Callable[[ClientChannel], Awaitable[T]],
        *,
        stall: float | None,
    ) -> T:
        """Send one attempt to the worker `route` picks; report the outcome to the registry."""
        worker, connection, started = await self._begin(route, spec)
        outcome = CallOutcome.CANCELLED
        try:
            started = await self._dial(connection, spec, started)
            if stall is None or (spec.deadline is not None and spec.deadline <= started + stall):
                result = await send(connection)
            else:
                try:
                    async with asyncio.timeout(stall):
                        result = await send(connection)
                except TimeoutError:
                    raise WorkerStalled(worker.id, stall) from None
            outcome = CallOutcome.SUCCESS
            return result
        except RpcError as error:
            outcome = self._failed(route, worker, connection, error)
            raise
        finally:
            self._end(route, worker, connection, started, outcome)

    async def _counted(self, call: Awaitable[T]) -> T:
        try:
            return await call
        except RpcError:
            self.metrics.failed_calls.inc()
            raise

    # -- the Channel protocol ------------------------------------------------------------------

    async def unary_unary(
        self,
        method: MethodDescriptor[RequestT, ResponseT],
        request: RequestT,
        options: CallOptions,
    ) -> ResponseT:
        route = Route(self, keyed=work_keyed(method, request, options))

        async def attempt(spec: AttemptSpec) -> ResponseT:
            async def send(connection: ClientChannel) -> ResponseT:
                response, _ = await connection._attempt_unary(method, request, spec)
                return response

            return await self._run_attempt(route, spec, send, stall=self.attempt_timeout)

        return await self._counted(self._executor(route).unary(method, request, options, attempt))

    async def stream_unary(
        self,
        method: MethodDescriptor[RequestT, ResponseT],
        requests: AsyncIterable[RequestT],
        options: CallOptions,
    ) -> ResponseT:
        route = Route(self, keyed=bool(options.idempotency_key))

        async def attempt(spec: AttemptSpec) -> ResponseT:
            async def send(connection: ClientChannel) -> ResponseT:
                response, _ = await connection._attempt_stream_unary(method, requests, spec)
                return response

            return await self._run_attempt(route, spec, send, stall=None)

        # One attempt: the request stream is consumed as it is sent.
        return await self._counted(self._executor(route).single(method, None, options, attempt))

    def unary_stream(
        self,
        method: MethodDescriptor[RequestT, ResponseT],
        request: RequestT,
        options: CallOptions,
    ) -> AsyncIterator[ResponseT]:
        return self._streamed(method, request, None, options)

    def stream_stream(
        self,
        method: MethodDescriptor[RequestT, ResponseT],
        requests: AsyncIterable[RequestT],
        options: CallOptions,
    ) -> AsyncIterator[ResponseT]:
        # Never retried: the request stream cannot be replayed.
        single = replace(method, policy=replace(method.policy, retry=None, hedge=None))
        return self._streamed(single, None, requests, options)

    async def _streamed(
        self,
        method: MethodDescriptor[RequestT, ResponseT],
        request: RequestT | None,
        requests: AsyncIterable[RequestT] | None,
        options: CallOptions,
    ) -> AsyncIterator[ResponseT]:
        route = Route(self, keyed=work_keyed(method, request, options))

        def attempt(spec: AttemptSpec) -> AsyncIterator[ResponseT]:
            return self._stream_attempt(route, spec, method, request, requests)

        try:
            async for item in self._executor(route).server_stream(
                method, request, options, attempt
            ):
                yield item
        except RpcError:
            self.metrics.failed_calls.inc()
            raise

    async def _stream_attempt(
        self,
        route: Route,
        spec: AttemptSpec,
        method: MethodDescriptor[RequestT, ResponseT],
        request: RequestT | None,
        requests: AsyncIterable[RequestT] | None,
    ) -> AsyncIterator[ResponseT]:
        """One streaming attempt on a chosen worker, as an async generator."""
        worker, connection, started = await self._begin(route, spec)
        outcome = CallOutcome.CANCELLED
        try:
            started = await self._dial(connection, spec, started)
            stream = connection._attempt_stream(method, request, requests, spec)
            try:
                async for item in stream:
                    yield item
            finally:
                aclose = getattr(stream, "aclose", None)
                if aclose is not None:
                    await aclose()
            outcome = CallOutcome.SUCCESS
        except RpcError as error:
            outcome = self._failed(route, worker, connection, error)
            raise
        finally:
            self._end(route, worker, connection, started, outcome)


async def _close_all(connections: list[ClientChannel]) -> None:
    for connection in connections:
        with contextlib.suppress(Exception):
            await connection.close()
