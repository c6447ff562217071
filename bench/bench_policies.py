"""Figures for the call policies (issue 4), against an in-process simulated server.

    python bench/bench_policies.py [--calls 1000] [--seed 1] [--json]

1. Retry amplification: attempts per logical call against a backend that always fails with
   UNAVAILABLE, after the retry throttle engages (target <= 1.1).
2. Duplicate executions: calls whose responses are lost 20% of the time (the handler ran, the
   client saw UNAVAILABLE), retried with one idempotency key per call through the server's
   `InMemoryIdempotencyStore` (target 0 duplicates). The throttle is off here, so that every
   lost response is retried and the figure measures the store alone.
3. Tail latency with and without hedging against a server whose every 20th call stalls 500 ms
   (target: hedged p99 below 3x the hedge delay).

The attempt functions stand in for the QUIC channel: the executor, store and clock are the real
ones, and waits are real asyncio sleeps (``AsyncioClock``). Loopback figures over QUIC come with
the channel wiring.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import time
from collections import Counter
from typing import Any

from rpcnet_runtime.channel import CallOptions
from rpcnet_runtime.clock import AsyncioClock
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

RETRY = RetryPolicy(
    max_attempts=5,
    initial_backoff=0.002,
    max_backoff=0.02,
    retryable_statuses=frozenset({Status.UNAVAILABLE}),
)
HEDGE_DELAY = 0.05


def descriptor(policy: MethodPolicy) -> MethodDescriptor[Any, Any]:
    return MethodDescriptor(
        "bench.v1.Svc", "Do", "do", MethodKind.UNARY_UNARY, object, object, policy=policy
    )


async def amplification(calls: int, rng: random.Random) -> dict[str, float]:
    executor = PolicyExecutor(clock=AsyncioClock(), rng=rng, breaker_for=lambda e: None)
    method = descriptor(MethodPolicy(idempotent=True, retry=RETRY))
    attempts = 0

    async def failing(spec: AttemptSpec) -> None:
        nonlocal attempts
        attempts += 1
        raise RpcError(Status.UNAVAILABLE, "down")

    per_call: list[int] = []
    for _ in range(calls):
        before = attempts
        with contextlib.suppress(RpcError):
            await executor.unary(method, None, CallOptions(), failing, endpoint="backend")
        per_call.append(attempts - before)
    engaged = next(i for i, n in enumerate(per_call) if n == 1)
    after = per_call[engaged:]
    return {
        "attempts_per_call_overall": attempts / calls,
        "attempts_per_call_after_throttle": sum(after) / len(after),
        "throttle_engaged_at_call": engaged + 1,
    }


async def duplicates(calls: int, rng: random.Random) -> dict[str, float]:
    clock = AsyncioClock()
    store = InMemoryIdempotencyStore(clock=clock)
    executor = PolicyExecutor(
        clock=clock, rng=rng, throttle_for=lambda e: None, breaker_for=lambda e: None
    )
    method = descriptor(MethodPolicy(idempotent=True, retry=RETRY))
    executions: Counter[str] = Counter()
    lost = 0

    async def server(spec: AttemptSpec) -> bytes:
        nonlocal lost
        assert spec.idempotency_key is not None
        claim = await store.begin(spec.idempotency_key, request_fingerprint("Do", b"req"))
        if claim.kind is ClaimKind.WAIT:
            claim = await store.wait(claim)
        if claim.kind is ClaimKind.STORED:
            reply = claim.result or b""
        else:
            executions[spec.idempotency_key] += 1
            await asyncio.sleep(rng.uniform(0, 0.002))
            reply = b"done"
            await store.complete(claim, reply)
        if rng.random() < 0.2:  # the response is lost on its way back
            lost += 1
            raise RpcError(Status.UNAVAILABLE, "response lost")
        return reply

    async def one() -> bool:
        try:
            await executor.unary(method, None, CallOptions(), server)
            return True
        except RpcError:
            return False

    sem = asyncio.Semaphore(50)

    async def bounded() -> bool:
        async with sem:
            return await one()

    ok = await asyncio.gather(*(bounded() for _ in range(calls)))
    return {
        "calls": calls,
        "lost_responses": lost,
        "succeeded": sum(ok),
        "handler_executions": sum(executions.values()),
        "duplicate_executions": sum(n - 1 for n in executions.values()),
    }


async def tail_latency(calls: int, rng: random.Random, hedged: bool) -> float:
    policy = (
        MethodPolicy(idempotent=True, hedge=HedgePolicy(max_attempts=2, delay=HEDGE_DELAY))
        if hedged
        else MethodPolicy(idempotent=True)
    )
    executor = PolicyExecutor(clock=AsyncioClock(), rng=rng, breaker_for=lambda e: None)
    method = descriptor(policy)
    served = 0

    async def server(spec: AttemptSpec) -> str:
        nonlocal served
        served += 1
        await asyncio.sleep(0.5 if served % 20 == 0 else 0.002)
        return "ok"

    latencies: list[float] = []
    sem = asyncio.Semaphore(20)

    async def one() -> None:
        async with sem:
            start = time.perf_counter()
            await executor.unary(method, None, CallOptions(), server)
            latencies.append(time.perf_counter() - start)

    await asyncio.gather(*(one() for _ in range(calls)))
    latencies.sort()
    return latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]


async def main(calls: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    plain = await tail_latency(calls, rng, hedged=False)
    hedged = await tail_latency(calls, rng, hedged=True)
    return {
        "retry_amplification": await amplification(calls, rng),
        "dedupe_with_lost_responses": await duplicates(calls, rng),
        "p99_seconds": {
            "no_hedging": plain,
            "hedging": hedged,
            "hedge_delay": HEDGE_DELAY,
            "target_below": 3 * HEDGE_DELAY,
        },
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    figures = asyncio.run(main(args.calls, args.seed))
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        for section, values in figures.items():
            print(section)
            for name, value in values.items():
                shown = f"{value:.4f}" if isinstance(value, float) else value
                print(f"  {name:34} {shown}")
