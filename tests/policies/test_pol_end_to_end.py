"""Executor and idempotency store together, on a virtual clock: no duplicate executions."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from typing import Any

import pytest
from policy_vclock import VirtualClock

from rpcnet_runtime.channel import CallOptions
from rpcnet_runtime.descriptors import (
    HedgePolicy,
    MethodDescriptor,
    MethodKind,
    MethodPolicy,
    RetryPolicy,
)
from rpcnet_runtime.errors import RpcError
from rpcnet_runtime.policies import (
    AttemptSpec,
    ClaimKind,
    InMemoryIdempotencyStore,
    PolicyExecutor,
    request_fingerprint,
)
from rpcnet_runtime.status import Status


def descriptor(policy: MethodPolicy) -> MethodDescriptor[Any, Any]:
    return MethodDescriptor(
        "t.v1.S", "M", "m", MethodKind.UNARY_UNARY, object, object, policy=policy
    )


class Server:
    """A fake server: dedupe store in front of a handler that takes `work` seconds."""

    def __init__(
        self,
        clock: VirtualClock,
        rng: random.Random,
        *,
        lose: float,
        work: Any,
        detached: bool = False,
    ) -> None:
        self.detached = detached
        """Handlers go on when the client gives up (the server has not noticed yet)."""
        self.clock = clock
        self.rng = rng
        self.lose = lose
        self.work = work
        self.store = InMemoryIdempotencyStore(clock=clock)
        self.executions: Counter[str] = Counter()
        self.lost = 0

    async def __call__(self, spec: AttemptSpec) -> bytes:
        assert spec.idempotency_key is not None
        claim = await self.store.begin(
            spec.idempotency_key, request_fingerprint("t.v1.S/M", b"req"), is_hedge=spec.is_hedge
        )
        if claim.kind is ClaimKind.WAIT:
            claim = await self.store.wait(claim)
        if claim.kind is ClaimKind.STORED:
            reply = claim.result or b""
        else:
            assert claim.kind is ClaimKind.RUN
            self.executions[spec.idempotency_key] += 1
            handler = asyncio.ensure_future(self._handle(claim, spec))
            reply = await (asyncio.shield(handler) if self.detached else handler)
        if self.rng.random() < self.lose:
            self.lost += 1
            raise RpcError(Status.UNAVAILABLE, "response lost")
        return reply

    async def _handle(self, claim: Any, spec: AttemptSpec) -> bytes:
        try:
            await self.clock.sleep(self.work(spec))
        except asyncio.CancelledError:
            await self.store.abandon(claim)  # the server cancels a losing hedge's handler
            raise
        reply = f"done {spec.idempotency_key}".encode()
        await self.store.complete(claim, reply)
        return reply


async def test_lost_responses_never_run_a_handler_twice() -> None:
    clock = VirtualClock()
    rng = random.Random(5)
    server = Server(clock, rng, lose=0.2, work=lambda spec: rng.uniform(0.001, 0.01))
    retry = RetryPolicy(6, 0.01, 0.1, retryable_statuses=frozenset({Status.UNAVAILABLE}))
    ex = PolicyExecutor(
        clock=clock, rng=rng, throttle_for=lambda e: None, breaker_for=lambda e: None
    )
    method = descriptor(MethodPolicy(idempotent=True, retry=retry))

    async def main() -> list[bytes]:
        calls = [ex.unary(method, None, CallOptions(), server) for _ in range(200)]
        return list(await asyncio.gather(*calls))

    replies = await clock.run(main())
    assert server.lost > 30  # the scenario did lose responses
    assert len(server.executions) == 200 and set(server.executions.values()) == {1}
    assert len(set(replies)) == 200  # every caller got its own call's reply
    assert server.store.counters.dedupe_hits >= server.lost - 5


async def test_retry_arriving_while_the_first_still_runs_waits_for_it() -> None:
    clock = VirtualClock()
    rng = random.Random(1)
    # The handler takes 2 s, the client gives each attempt 1.5 s, and the server does not notice
    # the first attempt going away: the retry finds the first execution still running.
    server = Server(clock, rng, lose=0.0, work=lambda spec: 2.0, detached=True)
    retry = RetryPolicy(3, 0.01, 0.01, retryable_statuses=frozenset({Status.DEADLINE_EXCEEDED}))
    policy = MethodPolicy(idempotent=True, attempt_timeout=1.5, timeout=10.0, retry=retry)
    ex = PolicyExecutor(clock=clock, rng=rng)
    start = clock.now()
    reply = await clock.run(ex.unary(descriptor(policy), None, CallOptions(), server))
    assert reply.startswith(b"done")
    assert clock.now() - start == pytest.approx(2.0)  # the retry got the first run's reply
    assert sum(server.executions.values()) == 1
    assert server.store.counters.dedupe_waits == 1


async def test_hedges_run_side_by_side_and_the_first_reply_is_stored() -> None:
    clock = VirtualClock()
    rng = random.Random(2)
    server = Server(
        clock, rng, lose=0.0, work=lambda spec: 5.0 if spec.attempt_number == 1 else 0.01
    )
    hedge = HedgePolicy(max_attempts=2, delay=0.1)
    ex = PolicyExecutor(clock=clock, rng=rng)
    start = clock.now()
    reply = await clock.run(
        ex.unary(
            descriptor(MethodPolicy(idempotent=True, hedge=hedge)), None, CallOptions(), server
        )
    )
    assert clock.now() - start < 0.2  # the hedge was not held back behind the slow first attempt
    key = next(iter(server.executions))
    assert server.executions[key] == 2  # both ran, side by side
    stored = await server.store.begin(key, request_fingerprint("t.v1.S/M", b"req"))
    assert stored.kind is ClaimKind.STORED and stored.result == reply
