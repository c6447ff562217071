"""One command for the cluster example: ``python examples/cluster/run.py``.

1. Generates code from examples/compute.rpc into examples/gen (rpcnet-gen) and writes
   development certificates into a temporary directory.
2. Starts the director (in this process) and N workers (child processes) that join it.
3. A client sends steady load of idempotent Submit calls to the director, which spreads them
   over the workers through a ClusterChannel.
4. Partway through, one worker is SIGKILLed. The director fails over; the client sees no error.
5. Prints the outcome (failed calls, latency, failover figures, load share), stops everything.

Bounded in time: about ``--duration`` seconds plus start-up; the exit status is 0 only when no
call failed.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from director import Director, client_tls
from harness import EXAMPLES, WorkerProcess, generate, steady_load

from rpcnet_runtime.certs import write_dev_certs
from rpcnet_runtime.client import connect


async def wait_for(condition: object, timeout: float, what: str) -> None:
    loop = asyncio.get_running_loop()
    give_up = loop.time() + timeout
    while not condition():  # type: ignore[operator]
        if loop.time() > give_up:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def main(args: argparse.Namespace) -> int:
    compute = generate(EXAMPLES, "gen")
    with tempfile.TemporaryDirectory(prefix="rpcnet-cluster-") as tmp:
        certs = Path(tmp)
        write_dev_certs(certs)
        director = await Director.start(compute, certs, strategy=args.strategy)
        print(f"director serving on {director.address}")
        workers = [
            await WorkerProcess.spawn(
                f"w{i + 1}",
                seed=director.address,
                certs_dir=certs,
                gen_parent=EXAMPLES,
                package="gen",
            )
            for i in range(args.workers)
        ]
        try:
            for worker in workers:
                print(f"worker {worker.worker_id} ready on {await worker.ready()}")
            await wait_for(
                lambda: len(director.live_workers()) == args.workers, 15, "workers to join"
            )
            print(
                f"{args.workers} workers joined; sending {args.rate:.0f} calls/s for "
                f"{args.duration:.0f} s, killing one partway"
            )
            victim = workers[0]
            attempts: list[tuple[float, str]] = []
            loop = asyncio.get_running_loop()
            director.channel.on_attempt = lambda worker_id, spec: attempts.append(
                (loop.time(), worker_id)
            )
            killed_at: list[float] = []

            async def kill_later() -> None:
                await asyncio.sleep(args.duration * 0.4)
                victim.kill()
                killed_at.append(asyncio.get_running_loop().time())
                print(f"  SIGKILLed worker {victim.worker_id} (pid {victim.process.pid})")

            async with connect(director.address, tls=client_tls(certs)) as channel:
                client = compute.DirectorServiceClient(channel)
                run_id = int(time.time())

                async def submit(i: int) -> str:
                    task = compute.Task(id=f"task-{run_id}-{i}", kind="sum")
                    outcome = await client.submit(compute.SubmitRequest(task=task))
                    return str(outcome.done.worker_id)

                killer = asyncio.ensure_future(kill_later())
                report = await steady_load(submit, rate=args.rate, duration=args.duration)
                await killer
            failed = report.failed
            kill_time = killed_at[0]
            late = [t for t, w in attempts if w == victim.worker_id and t >= kill_time]
            m = director.metrics
            print()
            print(f"calls: {len(report.records)}, failed: {len(failed)}")
            for record in failed[:5]:
                print(f"  failed: {record.error}")
            print(
                f"latency p50 {report.percentile(0.5) * 1000:.1f} ms, "
                f"p99 {report.percentile(0.99) * 1000:.1f} ms; "
                f"p99 in the 3 s after the kill "
                f"{report.percentile(0.99, kill_time, kill_time + 3) * 1000:.1f} ms"
            )
            print(
                f"attempts the director sent to {victim.worker_id} after the kill: {len(late)}"
                f" (the last {max(late, default=kill_time) - kill_time:.3f} s after it; each"
                " moved on to another worker)"
            )
            print(
                f"director: retries {m.retries.value():.0f}, failovers "
                f"{m.failovers.value():.0f}, node failures {m.node_failures.value():.0f}, "
                f"breaker openings {sum(v for _, v in m.breaker_openings.series()):.0f}, "
                f"nodes now healthy {m.nodes.value(health='healthy'):.0f} "
                f"(director and workers), failed {m.nodes.value(health='failed'):.0f}"
            )
            share = ", ".join(f"{w} {s:.0%}" for w, s in report.share().items())
            print(f"load share: {share}")
            print("NO CALL FAILED" if not failed else f"{len(failed)} CALLS FAILED")
            return 0 if not failed else 1
        finally:
            await asyncio.gather(*(worker.stop() for worker in workers))
            await director.stop()


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--rate", type=float, default=100.0, help="calls per second")
    parser.add_argument("--duration", type=float, default=8.0, help="seconds of load")
    parser.add_argument(
        "--strategy",
        default="least_connections",
        choices=["round_robin", "random", "least_connections", "p2c"],
    )
    args = parser.parse_args()
    if args.workers < 2:
        parser.error("--workers must be at least 2 (one is killed)")
    sys.exit(asyncio.run(asyncio.wait_for(main(args), args.duration + 60)))


if __name__ == "__main__":
    cli()
