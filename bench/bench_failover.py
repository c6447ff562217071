"""Failover figures for the cluster channel (docs/perf/failover.md).

    python bench/bench_failover.py [--rate 100] [--duration 8] [--json]

Starts a director in this process and 3 worker processes (examples/cluster), then:

1. Failover: idempotent Process calls at `--rate` calls/s for `--duration` s; worker w1 is
   SIGKILLed at 40% of the run. Reports failed calls (target 0), p99 latency across the
   failover (target <= 1 s), time from the kill until the director's membership reports
   NodeFailed, and time from the kill until the last attempt routed to the dead worker.
2. Load share: Stats calls (idempotent, no work key, so the strategy picks the worker) at the
   same rate for 2 s under each strategy, on a fresh cluster each.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples" / "cluster"))

from director import Director  # noqa: E402
from harness import WorkerProcess, generate, steady_load  # noqa: E402

from rpcnet_runtime.certs import write_dev_certs  # noqa: E402
from rpcnet_runtime.cluster.types import NodeFailed  # noqa: E402

PACKAGE = "bench_failover_gen"
STRATEGIES = ("round_robin", "random", "least_connections", "p2c")


async def cluster(compute: Any, gen: Path, certs: Path, strategy: str) -> tuple[Any, list[Any]]:
    director = await Director.start(compute, certs, strategy=strategy)
    workers = list(
        await asyncio.gather(
            *(
                WorkerProcess.spawn(
                    f"w{i}",
                    seed=director.address,
                    certs_dir=certs,
                    gen_parent=gen,
                    package=PACKAGE,
                )
                for i in (1, 2, 3)
            )
        )
    )
    await asyncio.gather(*(w.ready() for w in workers))
    loop = asyncio.get_running_loop()
    give_up = loop.time() + 20
    while len(director.live_workers()) < 3:
        if loop.time() > give_up:
            raise TimeoutError("workers did not join")
        await asyncio.sleep(0.05)
    return director, workers


async def shutdown(director: Any, workers: list[Any]) -> None:
    await asyncio.gather(*(w.stop() for w in workers))
    await director.stop()


async def failover(
    compute: Any, gen: Path, certs: Path, rate: float, duration: float
) -> dict[str, Any]:
    director, workers = await cluster(compute, gen, certs, "least_connections")
    loop = asyncio.get_running_loop()
    attempts: list[tuple[float, str]] = []
    director.channel.on_attempt = lambda worker_id, spec: attempts.append((loop.time(), worker_id))
    failed_at: dict[str, float] = {}
    events = director.membership.subscribe()

    async def watch() -> None:
        async for event in events:
            if isinstance(event, NodeFailed):
                failed_at.setdefault(event.node.id, loop.time())

    watcher = asyncio.ensure_future(watch())
    victim = workers[0]

    async def call(i: int) -> str:
        outcome = await director.workers.process(compute.Task(id=f"bench-{i}"))
        return str(outcome.done.worker_id)

    async def kill_later() -> float:
        await asyncio.sleep(duration * 0.4)
        victim.kill()
        return loop.time()

    try:
        killer = asyncio.ensure_future(kill_later())
        report = await steady_load(call, rate=rate, duration=duration)
        killed = await killer
    finally:
        watcher.cancel()
        events.close()
        metrics = director.metrics
        await shutdown(director, workers)
    to_victim = [t for t, w in attempts if w == victim.worker_id and t >= killed]
    return {
        "calls": len(report.records),
        "failed_calls": len(report.failed),
        "p50_ms": report.percentile(0.5) * 1000,
        "p99_ms": report.percentile(0.99) * 1000,
        "p99_failover_window_ms": report.percentile(0.99, killed, killed + 3.0) * 1000,
        "max_failover_window_ms": report.percentile(1.0, killed, killed + 3.0) * 1000,
        "kill_to_node_failed_s": failed_at.get(victim.worker_id, float("nan")) - killed,
        "kill_to_last_attempt_on_victim_s": (max(to_victim) - killed) if to_victim else 0.0,
        "attempts_on_victim_after_kill": len(to_victim),
        "retries": metrics.retries.value(),
        "failovers": metrics.failovers.value(),
        "breaker_openings": sum(v for _, v in metrics.breaker_openings.series()),
    }


async def share(
    compute: Any, gen: Path, certs: Path, strategy: str, rate: float
) -> dict[str, float]:
    director, workers = await cluster(compute, gen, certs, strategy)

    async def call(i: int) -> str:
        stats = await director.workers.stats(compute.WorkerStatsRequest())
        return str(stats.worker_id)

    try:
        report = await steady_load(call, rate=rate, duration=2.0)
    finally:
        await shutdown(director, workers)
    return report.share()


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-failover-") as tmp:
        gen, certs = Path(tmp) / "gen", Path(tmp) / "certs"
        gen.mkdir()
        write_dev_certs(certs)
        compute = generate(gen, PACKAGE)
        results: dict[str, Any] = {
            "rate": args.rate,
            "duration": args.duration,
            "failover": await failover(compute, gen, certs, args.rate, args.duration),
            "share": {s: await share(compute, gen, certs, s, args.rate) for s in STRATEGIES},
        }
    if args.json:
        print(json.dumps(results, indent=2))
        return
    f = results["failover"]
    print(
        f"Failover: {f['calls']} Process calls at {args.rate:.0f}/s, w1 SIGKILLed at "
        f"{args.duration * 0.4:.1f} s"
    )
    print("| figure | value | target |")
    print("|---|---|---|")
    print(f"| failed calls | {f['failed_calls']} | 0 |")
    print(f"| p50 / p99 latency, whole run | {f['p50_ms']:.1f} / {f['p99_ms']:.1f} ms | |")
    print(
        f"| p99 / max latency, 3 s after the kill | {f['p99_failover_window_ms']:.1f} / "
        f"{f['max_failover_window_ms']:.1f} ms | p99 <= 1000 ms |"
    )
    print(f"| kill -> NodeFailed at the director | {f['kill_to_node_failed_s']:.2f} s | |")
    print(
        f"| kill -> last attempt routed to w1 | {f['kill_to_last_attempt_on_victim_s']:.2f} s "
        f"({f['attempts_on_victim_after_kill']} attempts) | |"
    )
    print(
        f"| retries / failovers / breaker openings | {f['retries']:.0f} / "
        f"{f['failovers']:.0f} / {f['breaker_openings']:.0f} | |"
    )
    print()
    print("Load share (Stats calls, strategy picks the worker):")
    print("| strategy | w1 | w2 | w3 |")
    print("|---|---|---|---|")
    for strategy, shares in results["share"].items():
        cells = " | ".join(f"{shares.get(w, 0.0):.0%}" for w in ("w1", "w2", "w3"))
        print(f"| {strategy} | {cells} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--json", action="store_true")
    asyncio.run(main(parser.parse_args()))
