"""rpcnet's runtime against raw aioquic, grpc.aio (TLS) and grpclib (TLS) on 127.0.0.1.

    python bench/bench_runtime.py [--duration 2] [--rounds 3] [--quick] [--datagram 16384,...]
                                  [--sockbuf 0] [--stacks rpcnet,aioquic,...] [--json FILE]
                                  [--profile DIR] [--uvloop]

Each server runs in its own (spawned) process; every client runs in this process, one
connection each. Measurements run interleaved: in every round, each workload runs for each
stack in turn (the order rotates per round), so machine noise hits all stacks alike.

Workloads (one unary echo method everywhere; the reply carries the request's payload back):
- latency: p50/p99 of sequential calls (concurrency 1), 16-byte payload;
- throughput: calls/s with 64 callers on one connection, 16-byte payload; CPU per call is the
  user+system CPU of this process plus the server process over that window, per call;
- bulk: MB/s of 64 KiB payloads with 8 callers (MB = 10^6 payload bytes one way; the echo
  moves as much again back).

``--datagram N[,M...]`` (default 16384; 0 disables) adds rpcnet and raw aioquic with N-byte QUIC
datagrams (``--stacks rpcnet@N`` names one directly); the plain ``rpcnet`` stack uses the runtime's
own loopback choice, plain ``aioquic`` aioquic's 1,200 bytes. Above 16,383 bytes raw aioquic
runs with rpcnet's frame writer (aioquic 1.7.2 alone corrupts STREAM frames that long), the
only rpcnet code in it. ``--profile DIR`` afterwards profiles rpcnet's client
and server at concurrency 64 with cProfile and prints the top functions.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import json
import multiprocessing
import os
import pstats
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _peers.common import Client, Setup, process_cpu, self_cpu
from _peers.grpc_peers import compile_proto
from _peers.process import Stack, run_server, stack_named, stacks

from rpcnet_runtime.certs import write_dev_certs

SMALL = bytes(16)
BULK = bytes(64 * 1024)
THROUGHPUT_CONCURRENCY = 64
BULK_CONCURRENCY = 8
WORKLOADS = ("latency", "throughput", "bulk")
STALL_GRACE = 15.0
"""Seconds a call may still take after a measurement's end before its stack is marked failed."""


@dataclass
class Tally:
    """One stack's measurements summed over the rounds."""

    latencies: list[float] = field(default_factory=list)
    calls: dict[str, int] = field(default_factory=lambda: dict.fromkeys(WORKLOADS, 0))
    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(WORKLOADS, 0.0))
    client_cpu: float = 0.0
    server_cpu: float = 0.0
    error: str = ""

    def rate(self, workload: str) -> float:
        seconds = self.seconds[workload]
        return self.calls[workload] / seconds if seconds else 0.0

    def summary(self) -> dict[str, float]:
        lat = sorted(self.latencies)
        calls = self.calls["throughput"]
        return {
            "p50_us": _percentile(lat, 0.50) * 1e6,
            "p99_us": _percentile(lat, 0.99) * 1e6,
            "calls_per_s": self.rate("throughput"),
            "mb_per_s": self.rate("bulk") * len(BULK) / 1e6,
            "cpu_us_per_call": (self.client_cpu + self.server_cpu) / calls * 1e6 if calls else 0,
            "client_cpu_us_per_call": self.client_cpu / calls * 1e6 if calls else 0.0,
            "server_cpu_us_per_call": self.server_cpu / calls * 1e6 if calls else 0.0,
        }


def _percentile(ordered: list[float], q: float) -> float:
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass
class Peer:
    """A stack in the run: its server process, pipe and client."""

    stack: Stack
    process: multiprocessing.process.BaseProcess
    conn: Connection
    client: Client | None = None
    tally: Tally = field(default_factory=Tally)


# -- workloads ----------------------------------------------------------------------------------


async def _callers(
    client: Client, payload: bytes, concurrency: int, duration: float, record: list[float] | None
) -> tuple[int, float]:
    """Run `concurrency` callers for `duration` seconds; returns (calls, elapsed seconds)."""
    clock = time.perf_counter
    start = clock()
    deadline = start + duration
    counts = [0] * concurrency

    async def caller(index: int) -> None:
        n = 0
        while clock() < deadline:
            t0 = clock()
            reply = await client.call(payload)
            if record is not None:
                record.append(clock() - t0)
            if len(reply) != len(payload):
                raise RuntimeError(f"echo returned {len(reply)} bytes, sent {len(payload)}")
            n += 1
        counts[index] = n

    tasks = [asyncio.ensure_future(caller(i)) for i in range(concurrency)]
    try:
        _, pending = await asyncio.wait(tasks, timeout=duration + STALL_GRACE)
        if pending:
            raise RuntimeError(
                f"{len(pending)} of {concurrency} callers stalled: a call got no reply within "
                f"{STALL_GRACE:.0f} s after the measurement ended"
            )
        for task in tasks:
            task.result()  # a caller's exception fails the measurement
    finally:
        for task in tasks:
            task.cancel()
    return sum(counts), clock() - start


async def run_workload(peer: Peer, workload: str, duration: float) -> None:
    assert peer.client is not None
    tally = peer.tally
    if workload == "latency":
        calls, seconds = await _callers(peer.client, SMALL, 1, duration, tally.latencies)
    elif workload == "throughput":
        cpu0, server0 = self_cpu(), process_cpu(peer.process.pid or 0)
        calls, seconds = await _callers(peer.client, SMALL, THROUGHPUT_CONCURRENCY, duration, None)
        tally.client_cpu += self_cpu() - cpu0
        tally.server_cpu += process_cpu(peer.process.pid or 0) - server0
    else:
        calls, seconds = await _callers(peer.client, BULK, BULK_CONCURRENCY, duration, None)
    tally.calls[workload] += calls
    tally.seconds[workload] += seconds


# -- process management -------------------------------------------------------------------------


def start_peers(chosen: list[Stack], setup: Setup) -> list[Peer]:
    ctx = multiprocessing.get_context("spawn")
    peers = []
    for stack in chosen:
        ours, theirs = ctx.Pipe()
        process = ctx.Process(target=run_server, args=(stack.name, setup, theirs), daemon=True)
        process.start()
        theirs.close()
        peers.append(Peer(stack, process, ours))
    return peers


async def connect_peers(peers: list[Peer], setup: Setup) -> None:
    loop = asyncio.get_running_loop()
    for peer in peers:
        ready = await loop.run_in_executor(None, peer.conn.poll, 60.0)
        answer = peer.conn.recv() if ready else "error: no port within 60 s"
        if not isinstance(answer, int):
            peer.tally.error = str(answer)
            continue
        try:
            peer.client = await asyncio.wait_for(
                peer.stack.client(peer.stack.setup(setup), answer), timeout=15.0
            )
        except Exception as exc:  # reported in the table, the other stacks go on
            peer.tally.error = f"connect: {exc!r}"


async def stop_peers(peers: list[Peer]) -> None:
    for peer in peers:
        if peer.client is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(peer.client.close(), timeout=5.0)
        with contextlib.suppress(OSError):
            peer.conn.send("stop")
    for peer in peers:
        peer.process.join(timeout=10.0)
        if peer.process.is_alive():
            peer.process.kill()
            peer.process.join(timeout=5.0)


# -- the run ------------------------------------------------------------------------------------


async def run(args: argparse.Namespace, setup: Setup) -> list[Peer]:
    chosen = [s for s in stacks(args.datagram) if not args.stacks or s.name in args.stacks]
    named = {s.name for s in chosen}
    chosen += [stack_named(n) for n in sorted(args.stacks) if "@" in n and n not in named]
    peers = start_peers(chosen, setup)
    try:
        await connect_peers(peers, setup)
        live = [p for p in peers if p.client is not None]
        for peer in live:  # warm-up: connections, caches, congestion windows
            with contextlib.suppress(Exception):
                await _callers(peer.client, BULK, BULK_CONCURRENCY, args.warmup, None)  # type: ignore[arg-type]
                await _callers(peer.client, SMALL, THROUGHPUT_CONCURRENCY, args.warmup, None)  # type: ignore[arg-type]
        for round_index in range(args.rounds):
            for workload in args.workloads:
                shift = round_index % max(1, len(live))
                for peer in live[shift:] + live[:shift]:
                    if peer.tally.error:
                        continue
                    try:
                        await run_workload(peer, workload, args.duration)
                    except Exception as exc:
                        peer.tally.error = f"{workload}: {exc!r}"
            print(f"round {round_index + 1}/{args.rounds} done", file=sys.stderr)
        if args.profile:
            for name in args.profile_stacks:
                await profile_stack(peers, args, name)
    finally:
        await stop_peers(peers)
    return peers


async def profile_stack(peers: list[Peer], args: argparse.Namespace, name: str) -> None:
    """Profile client and server of stack `name` (c=64, or bulk at c=8); print the top
    functions by own time."""
    peer = next((p for p in peers if p.stack.name == name and p.client), None)
    if peer is None or peer.client is None:
        print(f"profile: no {name} peer", file=sys.stderr)
        return
    loop = asyncio.get_running_loop()
    peer.conn.send("profile-start")
    profiler = cProfile.Profile()
    profiler.enable()
    bulk = args.profile_workload == "bulk"
    payload, concurrency = (BULK, BULK_CONCURRENCY) if bulk else (SMALL, THROUGHPUT_CONCURRENCY)
    calls, seconds = await _callers(peer.client, payload, concurrency, args.duration * 2, None)
    profiler.disable()
    peer.conn.send("profile-stop")
    await loop.run_in_executor(None, peer.conn.poll, 30.0)
    peer.conn.recv()
    client_path = Path(args.profile, f"{name}-client.prof")
    profiler.dump_stats(client_path)
    print(
        f"\nprofile {name}: {calls} calls in {seconds:.2f} s ({calls / seconds:,.0f} calls/s, "
        "slowed by cProfile)"
    )
    for title, path in (
        ("client", client_path),
        ("server", Path(args.profile, f"{name}-server.prof")),
    ):
        print(f"\n== {name} {title} at c={concurrency}, top by own time ({path}) ==")
        stats = pstats.Stats(str(path))
        stats.sort_stats("tottime").print_stats(args.profile_top)


# -- output -------------------------------------------------------------------------------------


def runtime_version() -> str:
    """The commit the measured rpcnet_runtime comes from, with ``+dirty`` for local edits."""
    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--", "rpcnet_runtime"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def load_average() -> str:
    with open("/proc/loadavg", encoding="ascii") as f:
        return " ".join(f.read().split()[:3])


def _met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def report(peers: list[Peer], args: argparse.Namespace, loads: tuple[str, str]) -> dict[str, Any]:
    rows = {p.stack.name: p.tally.summary() for p in peers}
    print(
        f"\nrounds={args.rounds} duration={args.duration}s per measurement, "
        f"cpus={os.cpu_count()}, loadavg start {loads[0]} / end {loads[1]}, "
        f"rpcnet_runtime at {runtime_version()}"
    )
    header = (
        f"{'stack':<16}{'p50 us':>9}{'p99 us':>9}{'calls/s c64':>13}"
        f"{'MB/s 64K c8':>13}{'CPU us/call':>13}{'(cli+srv)':>14}"
    )
    print(header)
    print("-" * len(header))
    for peer in peers:
        s = rows[peer.stack.name]
        if peer.tally.error:
            print(f"{peer.stack.name:<16}ERROR {peer.tally.error}")
            if not peer.tally.calls["latency"]:
                continue
        split = f"{s['client_cpu_us_per_call']:.0f}+{s['server_cpu_us_per_call']:.0f}"
        print(
            f"{peer.stack.name:<16}{s['p50_us']:>9.0f}{s['p99_us']:>9.0f}"
            f"{s['calls_per_s']:>13,.0f}{s['mb_per_s']:>13.1f}{s['cpu_us_per_call']:>13.0f}"
            f"{split:>14}"
        )
    ratios: dict[str, dict[str, float]] = {}
    rpc = rows.get("rpcnet")
    for other in ("aioquic", "grpc.aio"):
        ref = rows.get(other)
        if rpc is None or ref is None:
            continue
        ratio = {k: (rpc[k] / ref[k] if ref[k] else float("nan")) for k in rpc}
        ratios[other] = ratio
        print(
            f"rpcnet/{other:<9} p50 {ratio['p50_us']:.2f}x  p99 {ratio['p99_us']:.2f}x  "
            f"calls/s {ratio['calls_per_s']:.2f}x  MB/s {ratio['mb_per_s']:.2f}x  "
            f"CPU/call {ratio['cpu_us_per_call']:.2f}x"
        )
    if rpc and rows.get("aioquic"):
        r = ratios["aioquic"]
        print(
            f"targets: calls/s >= 0.8x aioquic: {_met(r['calls_per_s'] >= 0.8)};"
            f" p50 <= 1.2x aioquic: {_met(r['p50_us'] <= 1.2)};"
            f" MB/s >= grpc.aio: " + _met(ratios.get("grpc.aio", {}).get("mb_per_s", 0) >= 1)
        )
    return {
        "rounds": args.rounds,
        "duration": args.duration,
        "loadavg": loads,
        "runtime_version": runtime_version(),
        "results": rows,
        "errors": {p.stack.name: p.tally.error for p in peers if p.tally.error},
        "ratios": ratios,
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=2.0, help="seconds per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--warmup", type=float, default=0.5, help="warm-up seconds per stack")
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 round of 0.3 s")
    parser.add_argument(
        "--datagram",
        type=lambda s: [int(n) for n in s.split(",") if n.strip()],
        default=[16384],
        help="also run rpcnet and aioquic with these QUIC datagram sizes, comma-separated (0: no)",
    )
    parser.add_argument(
        "--sockbuf",
        type=int,
        default=0,
        help="SO_RCVBUF/SO_SNDBUF for the QUIC stacks' sockets (0: OS default)",
    )
    parser.add_argument(
        "--stacks",
        type=lambda s: set(s.split(",")),
        default=set(),
        help="comma-separated subset, e.g. rpcnet,aioquic",
    )
    parser.add_argument(
        "--workloads",
        type=lambda s: [w for w in WORKLOADS if w in s.split(",")],
        default=list(WORKLOADS),
        help="comma-separated subset of latency,throughput,bulk",
    )
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    parser.add_argument("--profile", metavar="DIR", help="profile at c=64 afterwards")
    parser.add_argument(
        "--profile-stacks",
        type=lambda s: s.split(","),
        default=["rpcnet"],
        help="stacks to profile with --profile (default rpcnet)",
    )
    parser.add_argument(
        "--profile-workload",
        choices=("throughput", "bulk"),
        default="throughput",
        help="what --profile measures: c=64 small calls, or 64 KiB calls at c=8",
    )
    parser.add_argument("--profile-top", type=int, default=25)
    parser.add_argument(
        "--uvloop", action="store_true", help="use uvloop in the bench and every server process"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.duration, args.rounds, args.warmup = 0.3, 1, 0.1
    if args.duration <= 0 or args.rounds < 1:
        parser.error("--duration must be positive and --rounds at least 1")
    if any(n and not 1200 <= n <= 65507 for n in args.datagram):
        parser.error("--datagram sizes must be between 1200 and 65507 (or 0)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    runner: Callable[[Coroutine[Any, Any, list[Peer]]], list[Peer]] = asyncio.run
    if args.uvloop:
        try:
            import uvloop  # type: ignore[import-not-found, unused-ignore]
        except ImportError:
            print("--uvloop: uvloop is not installed", file=sys.stderr)
            return 2
        runner = uvloop.run  # the server processes too (Setup.uvloop)
    with tempfile.TemporaryDirectory(prefix="rpcnet-bench-") as workdir:
        certs = write_dev_certs(Path(workdir, "certs"))
        compile_proto(workdir)
        if args.profile:
            Path(args.profile).mkdir(parents=True, exist_ok=True)
        setup = Setup(
            ca=certs.ca,
            server_cert=certs.server_cert,
            server_key=certs.server_key,
            workdir=workdir,
            sockbuf=args.sockbuf,
            uvloop=args.uvloop,
            profile=str(Path(args.profile).resolve()) if args.profile else "",
        )
        start_load = load_average()
        peers = runner(run(args, setup))
        figures = report(peers, args, (start_load, load_average()))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2), encoding="utf-8")
    return 1 if figures["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
