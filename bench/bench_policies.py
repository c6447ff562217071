"""Figures for the call policies (issue 4): real QUIC + TLS on loopback, or simulated.

    python bench/bench_policies.py [--calls 1000] [--seed 1] [--json] [--simulated]

By default (``loopback``) a generated service runs in a real `Server` and is called through a
real `ClientChannel` on 127.0.0.1; ``--simulated`` runs the older in-process figures, where
attempt functions stand in for the channel. Both measure:

1. Retry amplification: attempts per logical call against a backend that always fails with
   UNAVAILABLE, after the retry throttle engages (target <= 1.1).
2. Duplicate executions: calls whose responses are lost 20% of the time (the handler ran, the
   client saw UNAVAILABLE), retried with one idempotency key per call through the server's
   `InMemoryIdempotencyStore` (target 0 duplicates). The throttle is off here, so that every
   lost response is retried and the figure measures the store alone.
3. Tail latency with and without hedging against a server whose every 20th call stalls 500 ms
   (target: hedged p99 below 3x the hedge delay).

Loopback: lost responses are injected on the client after the server answered (the handler
ran and its outcome was stored; the client drops the reply and sees UNAVAILABLE), so every lost
response is retried with the call's key. The breaker is off in figure 1 (it would make calls
fail fast, which is a different figure) and the throttle is off in figure 2 (as above).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import json
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from rpcnet_runtime.certs import write_dev_certs
from rpcnet_runtime.channel import CallOptions
from rpcnet_runtime.client import ChannelPolicy, ClientChannel, connect
from rpcnet_runtime.clock import AsyncioClock
from rpcnet_runtime.context import CallContext
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
from rpcnet_runtime.server import Server
from rpcnet_runtime.status import Status
from rpcnet_runtime.tls import ClientTLS, ServerTLS

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


async def main_simulated(calls: int, seed: int) -> dict[str, Any]:
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


# -- real QUIC + TLS on loopback ----------------------------------------------------------------

SCHEMA = """
package bench.policies.v1;

message Req {
  int32 n = 1;
}

message Rep {
  int32 n = 1;
}

service Bench {
  @idempotent
  @retry(attempts = 5, backoff = 2ms..20ms, on = [UNAVAILABLE])
  rpc Do(Req) returns (Rep);

  @idempotent
  @hedge(after = HEDGE_MSms, attempts = 2)
  rpc Hedged(Req) returns (Rep);

  @idempotent
  rpc Plain(Req) returns (Rep);
}
""".replace("HEDGE_MS", str(round(HEDGE_DELAY * 1000)))


def generate(workdir: Path) -> ModuleType:
    """Generate the bench service with rpcnet-gen and import it."""
    schema = workdir / "bench_policies.rpc"
    schema.write_text(SCHEMA)
    out = workdir / "benchgen"
    gen = Path(sys.executable).with_name("rpcnet-gen")
    subprocess.run([str(gen), str(schema), "-o", str(out)], check=True)
    sys.path.insert(0, str(workdir))
    return importlib.import_module("benchgen.bench_policies")


class Backend:
    """The served handlers: `do` follows `mode`; `hedged`/`plain` stall every 20th call."""

    def __init__(self, gen: ModuleType) -> None:
        self.gen = gen
        self.mode = "fail"
        self.executions: Counter[str] = Counter()
        self.served = 0

    def service(self) -> Any:
        backend = self

        class Service(self.gen.BenchBase):  # type: ignore[misc, name-defined]
            async def do(self, request: Any, ctx: CallContext) -> Any:
                backend.executions[ctx.idempotency_key or ""] += 1
                if backend.mode == "fail":
                    raise RpcError(Status.UNAVAILABLE, "down")
                await asyncio.sleep(0.001)
                return backend.gen.Rep(n=request.n)

            async def hedged(self, request: Any, ctx: CallContext) -> Any:
                return await backend.maybe_stall(request)

            async def plain(self, request: Any, ctx: CallContext) -> Any:
                return await backend.maybe_stall(request)

        return Service()

    async def maybe_stall(self, request: Any) -> Any:
        self.served += 1
        await asyncio.sleep(0.5 if self.served % 20 == 0 else 0.002)
        return self.gen.Rep(n=request.n)


class LossyChannel(ClientChannel):
    """Drops the reply of a share of unary attempts after the server sent it."""

    loss = 0.0
    lost = 0
    rng = random.Random(0)

    async def _attempt_unary(self, *args: Any, **kwargs: Any) -> Any:
        result = await super()._attempt_unary(*args, **kwargs)
        if self.rng.random() < self.loss:
            self.lost += 1
            raise RpcError(Status.UNAVAILABLE, "response lost (injected)")
        return result


async def _gather_bounded(n: int, width: int, one: Callable[[int], Awaitable[Any]]) -> list[Any]:
    sem = asyncio.Semaphore(width)

    async def bounded(i: int) -> Any:
        async with sem:
            return await one(i)

    return await asyncio.gather(*(bounded(i) for i in range(n)))


async def main_loopback(calls: int, seed: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        gen = generate(workdir)
        certs = write_dev_certs(workdir / "certs")
        backend = Backend(gen)
        server = Server("127.0.0.1", 0, tls=ServerTLS(certs.server_cert, certs.server_key))
        server.add_service(backend.service())
        await server.start()
        address = f"127.0.0.1:{server.port}"
        tls = ClientTLS(ca=certs.ca)
        try:
            # 1. Retry amplification against an always-failing backend (breaker off).
            async with LossyChannel(
                address, tls=tls, policy=ChannelPolicy(breaker_enabled=False),
                rng=random.Random(seed),
            ) as channel:  # fmt: skip
                client = gen.BenchClient(channel)
                per_call: list[int] = []
                for i in range(calls):
                    before = channel.counters.attempts
                    with contextlib.suppress(RpcError):
                        await client.do(gen.Req(n=i))
                    per_call.append(channel.counters.attempts - before)
                engaged = next(i for i, n in enumerate(per_call) if n == 1)
                after = per_call[engaged:]
                amplification = {
                    "attempts_per_call_overall": sum(per_call) / calls,
                    "attempts_per_call_after_throttle": sum(after) / len(after),
                    "throttle_engaged_at_call": engaged + 1,
                    "server_executions": sum(backend.executions.values()),
                }

            # 2. Duplicate executions with 20% lost responses (throttle off).
            backend.mode = "ok"
            backend.executions.clear()
            lossy = LossyChannel(
                address, tls=tls, policy=ChannelPolicy(throttle_enabled=False),
                rng=random.Random(seed),
            )  # fmt: skip
            async with lossy as channel:
                lossy.loss = 0.2
                lossy.rng = random.Random(seed)
                client = gen.BenchClient(channel)

                async def one(i: int) -> bool:
                    try:
                        await client.do(gen.Req(n=i))
                        return True
                    except RpcError:
                        return False

                hits_before = server.counters.dedupe_hits
                ok = await _gather_bounded(calls, 50, one)
                dedupe = {
                    "calls": calls,
                    "lost_responses": lossy.lost,
                    "succeeded": sum(ok),
                    "handler_executions": sum(backend.executions.values()),
                    "duplicate_executions": sum(n - 1 for n in backend.executions.values()),
                    "answered_from_store": server.counters.dedupe_hits - hits_before,
                }

            # 3. p99 with and without hedging; every 20th served call stalls 500 ms.
            p99: dict[str, float] = {}
            async with connect(address, tls=tls) as channel:
                client = gen.BenchClient(channel)
                for name, call in (("no_hedging", client.plain), ("hedging", client.hedged)):
                    backend.served = 0
                    latencies: list[float] = []

                    async def timed(i: int, call: Any = call, out: list[float] = latencies) -> None:
                        start = time.perf_counter()
                        await call(gen.Req(n=i))
                        out.append(time.perf_counter() - start)

                    await _gather_bounded(calls, 20, timed)
                    latencies.sort()
                    p99[name] = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]
                p99["hedges_sent"] = channel.counters.hedges
            p99["hedge_delay"] = HEDGE_DELAY
            p99["target_below"] = 3 * HEDGE_DELAY
        finally:
            await server.stop(grace=0.5)
    return {
        "mode": {"loopback_quic_tls": 1},
        "retry_amplification": amplification,
        "dedupe_with_lost_responses": dedupe,
        "p99_seconds": p99,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--simulated", action="store_true", help="no QUIC: simulated server")
    args = parser.parse_args()
    if args.simulated:
        figures = asyncio.run(main_simulated(args.calls, args.seed))
    else:
        figures = asyncio.run(main_loopback(args.calls, args.seed))
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        for section, values in figures.items():
            print(section)
            for name, value in values.items():
                shown = f"{value:.4f}" if isinstance(value, float) else value
                print(f"  {name:34} {shown}")
