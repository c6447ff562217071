"""Micro benchmark: the `PolicyExecutor`'s own cost per unary call (issue 3).

    python bench/bench_executor.py [--calls 200000] [--rounds 3] [--only plain,...] [--profile]

Each case awaits ``executor.unary(...)`` `--calls` times in one coroutine on one event loop,
with a fake attempt function (a plain function returning a coroutine that returns a ready
response, like the partial `ClientChannel.unary_unary` passes), and prints the best round in
microseconds per call. ``floor`` awaits the fake attempt directly with a prebuilt
`AttemptSpec`: what an executor costing nothing would show. The executors are built the way
`ClientChannel` builds them (`ChannelPolicy().executor()`), except ``cluster``, which builds a
`PolicyExecutor` per call as `ClusterChannel` does (its attempts do not enforce deadlines, so
each runs in a task).

Cases: floor, plain (no policy at all: the path issue 3 is about), inherited (plain, inside a
handler whose deadline is inherited), breaker (plain with the channel's breaker on), timeout
(``@timeout``), retry (``@retry``, first attempt succeeds), cluster.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import random
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from rpcnet_runtime.channel import CallOptions
from rpcnet_runtime.clock import AsyncioClock
from rpcnet_runtime.context import CallContext, _current_call
from rpcnet_runtime.descriptors import MethodDescriptor, MethodKind, MethodPolicy, RetryPolicy
from rpcnet_runtime.policies import AttemptSpec, ChannelPolicy, PolicyCounters, PolicyExecutor
from rpcnet_runtime.status import Status

RESPONSE: tuple[str, dict[str, str]] = ("ok", {})
OPTIONS = CallOptions()


def _descriptor(policy: MethodPolicy) -> MethodDescriptor[Any, Any]:
    return MethodDescriptor(
        "bench.v1.Svc", "Do", "do", MethodKind.UNARY_UNARY, object, object, policy=policy
    )


PLAIN = _descriptor(MethodPolicy())
TIMED = _descriptor(MethodPolicy(timeout=30.0))
RETRIED = _descriptor(
    MethodPolicy(
        idempotent=True,
        retry=RetryPolicy(
            max_attempts=3,
            initial_backoff=0.01,
            max_backoff=0.1,
            retryable_statuses=frozenset({Status.UNAVAILABLE}),
        ),
    )
)


async def _reply(spec: AttemptSpec) -> tuple[str, dict[str, str]]:
    return RESPONSE


def attempt(spec: AttemptSpec) -> Awaitable[tuple[str, dict[str, str]]]:
    """A plain function handing back a coroutine, as the client's attempt function does."""
    return _reply(spec)


async def _loop_executor(
    executor: PolicyExecutor, method: MethodDescriptor[Any, Any], calls: int
) -> None:
    unary = executor.unary
    for _ in range(calls):
        await unary(method, None, OPTIONS, attempt, endpoint="127.0.0.1:1")


async def _loop_floor(calls: int) -> None:
    spec = AttemptSpec(1, False, None, None, {})
    for _ in range(calls):
        await attempt(spec)


async def _loop_cluster(calls: int) -> None:
    clock = AsyncioClock()
    rng = random.Random(1)
    counters = PolicyCounters()
    for _ in range(calls):
        executor = PolicyExecutor(
            clock=clock,
            rng=rng,
            throttle_for=lambda _endpoint: None,
            breaker_for=lambda _endpoint: None,
            counters=counters,
        )
        await executor.unary(PLAIN, None, OPTIONS, attempt)


async def _loop_inherited(executor: PolicyExecutor, calls: int) -> None:
    loop = asyncio.get_running_loop()
    ctx = CallContext(method="bench.v1.Svc/Outer", clock=loop.time, deadline=loop.time() + 3600)
    token = _current_call.set(ctx)
    try:
        await _loop_executor(executor, PLAIN, calls)
    finally:
        _current_call.reset(token)


def _cases() -> dict[str, Callable[[int], Awaitable[None]]]:
    def channel(**kwargs: Any) -> PolicyExecutor:
        return ChannelPolicy(**kwargs).executor(rng=random.Random(1))

    return {
        "floor": _loop_floor,
        "plain": lambda n: _loop_executor(channel(), PLAIN, n),
        "inherited": lambda n: _loop_inherited(channel(), n),
        "breaker": lambda n: _loop_executor(channel(breaker_enabled=True), PLAIN, n),
        "timeout": lambda n: _loop_executor(channel(), TIMED, n),
        "retry": lambda n: _loop_executor(channel(), RETRIED, n),
        "cluster": _loop_cluster,
    }


def _time(case: Callable[[int], Awaitable[None]], calls: int) -> float:
    """Microseconds per call for one round, on a fresh event loop."""

    async def run() -> float:
        started = time.perf_counter()
        await case(calls)
        return time.perf_counter() - started

    return asyncio.run(run()) / calls * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", default="", help="comma-separated case names")
    parser.add_argument("--profile", action="store_true", help="cProfile the 'plain' case")
    args = parser.parse_args(argv)
    if args.calls <= 0 or args.rounds <= 0:
        parser.error("--calls and --rounds must be positive")
    cases = _cases()
    names = [n for n in args.only.split(",") if n] or list(cases)
    unknown = [n for n in names if n not in cases]
    if unknown:
        parser.error(f"unknown case(s): {', '.join(unknown)}; known: {', '.join(cases)}")
    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        _time(cases["plain"], args.calls)
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(15)
        return 0
    floor = min(_time(cases["floor"], args.calls) for _ in range(args.rounds))
    print(
        f"{'case':<10} {'us/call':>8} {'over floor':>11}   ({args.calls} calls, best of "
        f"{args.rounds}, Python {sys.version.split()[0]})"
    )
    for name in names:
        best = (
            floor
            if name == "floor"
            else min(_time(cases[name], args.calls) for _ in range(args.rounds))
        )
        print(f"{name:<10} {best:8.2f} {best - floor:11.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
