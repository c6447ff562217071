"""Cluster membership figures (issue 5) with real processes on loopback, default (LAN) config.

    python bench/bench_cluster.py [--nodes 5] [--kills 10] [--pauses 5] [--isolations 3]
                                  [--soak-seconds 30] [--loss 0.1] [--json]

Each node is a process (`tests/cluster/node_process.py`): a `Server` with mutual TLS, a
`Membership` with ``ClusterConfig.lan()``, and `UdpRelay`s on every path in and out of it, so
the bench can cut a node off or make every link lossy. Times are ``time.monotonic()`` (one clock
for all processes): a SIGKILL's time is taken just before the signal is sent, an event's when the
node's subscriber received it.

1. SIGKILL: one random node is killed; the time until each survivor reports ``NodeFailed``
   (target p99 <= 3 s; hashicorp/memberlist 0.2.2: p50 5.6 s, p99 7.4 s). A replacement joins
   before the next kill.
2. Loss: `--loss` drop rate on every link for `--soak-seconds`; false ``NodeFailed`` and
   ``PartitionDetected`` counted (target 0; the issue asks for 600 s).
3. SIGSTOP: one node paused for 1 s, then watched for the longest suspicion; false
   ``NodeFailed`` counted (target 0).
4. Isolation: one node cut off from all others: ``PartitionDetected`` on it (target <= 5 s) and
   none on the majority; after healing, ``PartitionHealed`` on it and full membership everywhere
   (target <= 3 s).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "cluster"))

from node_process import (  # noqa: E402
    NodeProcess,
    start_cluster,
    wait_full_membership,
)

from rpcnet_runtime.certs import write_dev_certs  # noqa: E402
from rpcnet_runtime.cluster import ClusterConfig  # noqa: E402

LAN = ClusterConfig.lan()


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def summary(values: Sequence[float]) -> dict[str, Any]:
    return {
        "n": len(values),
        "p50": percentile(values, 50),
        "p99": percentile(values, 99),
        "max": max(values) if values else math.nan,
    }


def count_events(nodes: Sequence[NodeProcess], kind: str, marks: Sequence[int]) -> int:
    return sum(
        1
        for node, mark in zip(nodes, marks, strict=True)
        for line in node.lines[mark:]
        if line.get("event") == kind
    )


class Bench:
    def __init__(self, certs: str, n: int, rng: random.Random) -> None:
        self.certs = certs
        self.n = n
        self.rng = rng
        self.nodes: list[NodeProcess] = []
        self.spawned = 0

    async def start(self) -> None:
        self.nodes = await start_cluster(self.certs, self.n, preset="lan", timeout=60)
        self.spawned = self.n

    async def stop(self) -> None:
        await asyncio.gather(*(node.stop() for node in self.nodes))

    async def replace(self, dead: NodeProcess) -> None:
        """Start a new node in place of `dead` and wait for full membership."""
        self.nodes.remove(dead)
        await dead.stop()
        seed = self.rng.choice(self.nodes)
        node = await NodeProcess.start(f"n{self.spawned}", self.certs, [seed.address])
        self.spawned += 1
        self.nodes.append(node)
        await wait_full_membership(self.nodes, 30)

    async def settle(self) -> None:
        """Let joins and recoveries finish spreading before the next measurement."""
        await wait_full_membership(self.nodes, 30)
        await asyncio.sleep(1.0)

    # -- scenarios -----------------------------------------------------------------------------

    async def kills(self, count: int) -> dict[str, Any]:
        samples: list[float] = []
        missed = 0
        start = {n.name: len(n.lines) for n in self.nodes}
        for _ in range(count):
            await self.settle()
            victim = self.rng.choice(self.nodes)
            survivors = [n for n in self.nodes if n is not victim]
            marks = [len(n.lines) for n in survivors]
            t_kill = victim.signal(signal.SIGKILL)
            results = await asyncio.gather(
                *(
                    n.wait_event("NodeFailed", victim.name, 20, since=m)
                    for n, m in zip(survivors, marks, strict=True)
                ),
                return_exceptions=True,
            )
            for result in results:
                if isinstance(result, BaseException):
                    missed += 1
                else:
                    samples.append(result["t"] - t_kill)
            await self.replace(victim)
        partitions = sum(
            1
            for n in self.nodes
            for line in n.lines[start.get(n.name, 0) :]
            if line.get("event") == "PartitionDetected"
        )
        return {
            **summary(samples),
            "missed": missed,
            "kills": count,
            "partition_detected": partitions,
        }

    async def soak(self, seconds: float, loss: float) -> dict[str, Any]:
        await self.settle()
        marks = [len(n.lines) for n in self.nodes]
        for node in self.nodes:
            node.command("loss", drop=loss)
        await asyncio.sleep(seconds)
        for node in self.nodes:
            node.command("loss", drop=0.0)
        t0 = time.monotonic() - seconds
        for node, mark in zip(self.nodes, marks, strict=True):
            for line in node.lines[mark:]:
                if line.get("event") in ("NodeFailed", "NodeRecovered", "PartitionDetected"):
                    when = round(line["t"] - t0, 2)
                    print(
                        f"  loss: {node.name} {when} {line['event']} {line.get('node')}",
                        file=sys.stderr,
                    )
        result = {
            "seconds": seconds,
            "loss": loss,
            "false_failed": count_events(self.nodes, "NodeFailed", marks),
            "partition_detected": count_events(self.nodes, "PartitionDetected", marks),
        }
        await self.settle()
        return result

    async def pauses(self, count: int, pause: float = 1.0) -> dict[str, Any]:
        false_failed = 0
        for _ in range(count):
            await self.settle()
            paused = self.rng.choice(self.nodes)
            marks = [len(n.lines) for n in self.nodes]
            paused.signal(signal.SIGSTOP)
            try:
                await asyncio.sleep(pause)
            finally:
                paused.signal(signal.SIGCONT)
            await asyncio.sleep(LAN.suspicion_max(self.n) + 1.0)
            false_failed += count_events(self.nodes, "NodeFailed", marks)
        return {"pauses": count, "pause_seconds": pause, "false_failed": false_failed}

    async def isolations(self, count: int) -> dict[str, Any]:
        detected: list[float] = []
        healed: list[float] = []
        full: list[float] = []
        majority_partitions = 0
        missed = 0
        for _ in range(count):
            await self.settle()
            lonely = self.rng.choice(self.nodes)
            others = [n for n in self.nodes if n is not lonely]
            marks = [len(n.lines) for n in others]
            mark = len(lonely.lines)
            t_cut = time.monotonic()
            lonely.command("cut")
            try:
                event = await lonely.wait_event("PartitionDetected", None, 30, since=mark)
                detected.append(event["t"] - t_cut)
            except TimeoutError:
                missed += 1
                seen = [
                    (round(e["t"] - t_cut, 2), e["event"], e.get("node"))
                    for e in lonely.lines[mark:]
                    if "event" in e
                ]
                print(f"no PartitionDetected on {lonely.name}: {seen}", file=sys.stderr)
            majority_partitions += count_events(others, "PartitionDetected", marks)
            mark = len(lonely.lines)
            t_heal = time.monotonic()
            lonely.command("heal")
            try:
                event = await lonely.wait_event("PartitionHealed", None, 30, since=mark)
                healed.append(event["t"] - t_heal)
            except TimeoutError:
                missed += 1
            await wait_full_membership(self.nodes, 30)
            # The moment the last node saw the last member alive again.
            last = max(
                (
                    line["t"]
                    for node in self.nodes
                    for line in node.lines
                    if line.get("event") in ("NodeRecovered", "NodeJoined")
                    and line.get("t", 0) >= t_heal
                ),
                default=t_heal,
            )
            full.append(last - t_heal)
        return {
            "isolations": count,
            "detected": summary(detected),
            "healed": summary(healed),
            "full_membership": summary(full),
            "majority_partition_events": majority_partitions,
            "missed": missed,
        }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    certs = write_dev_certs(tempfile.mkdtemp(prefix="bench-cluster-"))
    bench = Bench(certs.directory, args.nodes, random.Random(args.seed))
    results: dict[str, Any] = {"nodes": args.nodes, "config": "ClusterConfig.lan()"}
    await bench.start()
    try:
        # Kills last: each replacement joins with a new id and address, and the failed records
        # stay in every member table (and in the partition detector's stable membership) for
        # `failed_member_retention`, which would skew the partition figures.
        if args.isolations:
            results["isolation"] = await bench.isolations(args.isolations)
            print("isolation", results["isolation"], file=sys.stderr)
        if args.pauses:
            results["sigstop"] = await bench.pauses(args.pauses)
            print("sigstop", results["sigstop"], file=sys.stderr)
        if args.soak_seconds:
            results["loss"] = await bench.soak(args.soak_seconds, args.loss)
            print("loss", results["loss"], file=sys.stderr)
        if args.kills:
            results["sigkill"] = await bench.kills(args.kills)
            print("sigkill", results["sigkill"], file=sys.stderr)
    finally:
        await bench.stop()
    return results


def report(r: dict[str, Any]) -> str:
    def s(x: dict[str, Any]) -> str:
        return f"p50 {x['p50']:.2f} s, p99 {x['p99']:.2f} s, max {x['max']:.2f} s (n={x['n']})"

    lines = [f"{r['nodes']} processes, {r['config']}", ""]
    if "sigkill" in r:
        k = r["sigkill"]
        lines.append(f"SIGKILL -> NodeFailed at every survivor: {s(k)}; missed {k['missed']}")
        lines.append(f"PartitionDetected after the kills: {k['partition_detected']}")
    if "loss" in r:
        x = r["loss"]
        lines.append(
            f"{x['loss']:.0%} loss for {x['seconds']:.0f} s: {x['false_failed']} false NodeFailed,"
            f" {x['partition_detected']} PartitionDetected"
        )
    if "sigstop" in r:
        x = r["sigstop"]
        pauses = f"SIGSTOP {x['pause_seconds']:.0f} s x {x['pauses']}"
        lines.append(f"{pauses}: {x['false_failed']} false NodeFailed")
    if "isolation" in r:
        x = r["isolation"]
        lines.append(f"isolate 1 of {r['nodes']} -> PartitionDetected on it: {s(x['detected'])}")
        lines.append(f"heal -> PartitionHealed on it: {s(x['healed'])}")
        lines.append(f"heal -> full membership everywhere: {s(x['full_membership'])}")
        lines.append(
            f"PartitionDetected on the majority: {x['majority_partition_events']};"
            f" missed {x['missed']}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--nodes", type=int, default=5)
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--pauses", type=int, default=5)
    parser.add_argument("--isolations", type=int, default=3)
    parser.add_argument("--soak-seconds", type=float, default=30.0)
    parser.add_argument("--loss", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = asyncio.run(run(args))
    print(json.dumps(results, indent=2) if args.json else report(results))


if __name__ == "__main__":
    main()
