"""Shared pieces of the cluster example: code generation, certificates, worker processes and
a steady load generator. Used by ``run.py``, the real-process tests and ``bench/``.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

HERE = Path(__file__).resolve().parent
EXAMPLES = HERE.parent
ROOT = EXAMPLES.parent


def generate(out_parent: Path, package: str = "gen") -> ModuleType:
    """Run rpcnet-gen on examples/compute.rpc into ``out_parent/package``; import it."""
    from rpcnet_idl.cli import main as rpcnet_gen

    out = out_parent / package
    code = rpcnet_gen([str(EXAMPLES / "compute.rpc"), "-o", str(out)])
    if code != 0:
        raise RuntimeError(f"rpcnet-gen failed with exit status {code}")
    if str(out_parent) not in sys.path:
        sys.path.insert(0, str(out_parent))
    return importlib.import_module(f"{package}.compute")


def import_generated(gen_parent: str, package: str) -> ModuleType:
    if gen_parent not in sys.path:
        sys.path.insert(0, gen_parent)
    return importlib.import_module(f"{package}.compute")


@dataclass
class WorkerProcess:
    """One worker (``worker.py``) running as a child process."""

    worker_id: str
    process: asyncio.subprocess.Process
    address: str = ""

    @classmethod
    async def spawn(
        cls,
        worker_id: str,
        *,
        seed: str,
        certs_dir: Path,
        gen_parent: Path,
        package: str,
        extra: list[str] | None = None,
    ) -> WorkerProcess:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(HERE)])}
        process = await asyncio.create_subprocess_exec(
            sys.executable, str(HERE / "worker.py"), "--id", worker_id, "--seed", seed,
            "--certs", str(certs_dir), "--gen", str(gen_parent), "--package", package,
            *(extra or []),
            stdout=asyncio.subprocess.PIPE, env=env,
        )  # fmt: skip
        return cls(worker_id, process)

    async def ready(self, timeout: float = 20.0) -> str:
        """Wait for the worker's ``READY id address`` line; returns its address."""
        assert self.process.stdout is not None
        async with asyncio.timeout(timeout):
            while True:
                line = (await self.process.stdout.readline()).decode()
                if not line:
                    raise RuntimeError(f"worker {self.worker_id} exited before it was ready")
                if line.startswith("READY "):
                    self.address = line.split()[2]
                    return self.address

    def kill(self) -> None:
        """SIGKILL: the worker vanishes without a word (a crash)."""
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()

    def pause(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signal.SIGCONT)

    async def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM (graceful leave), then SIGKILL if it lingers."""
        if self.process.returncode is None:
            self.resume()
            with contextlib.suppress(ProcessLookupError):
                self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), timeout)
            except TimeoutError:
                self.kill()
                await self.process.wait()


@dataclass
class CallRecord:
    started: float
    latency: float
    worker: str | None
    error: str | None


@dataclass
class LoadReport:
    records: list[CallRecord] = field(default_factory=list)

    @property
    def failed(self) -> list[CallRecord]:
        return [r for r in self.records if r.error is not None]

    def percentile(self, q: float, since: float = -1.0, until: float = float("inf")) -> float:
        values = sorted(r.latency for r in self.records if since <= r.started <= until)
        if not values:
            return 0.0
        return values[min(len(values) - 1, int(q * len(values)))]

    def share(self) -> dict[str, float]:
        counts: dict[str, int] = {}
        for r in self.records:
            if r.worker is not None:
                counts[r.worker] = counts.get(r.worker, 0) + 1
        total = sum(counts.values()) or 1
        return {w: n / total for w, n in sorted(counts.items())}


async def steady_load(
    call: Callable[[int], Awaitable[str]],
    *,
    rate: float,
    duration: float,
    max_in_flight: int = 1000,
) -> LoadReport:
    """Start `call(i)` every 1/rate seconds for `duration` seconds; wait for all to end.

    `call` returns the id of the worker that served it, or raises.
    """
    loop = asyncio.get_running_loop()
    report = LoadReport()
    gate = asyncio.Semaphore(max_in_flight)
    start = loop.time()
    total = int(rate * duration)

    async def one(i: int) -> None:
        async with gate:
            began = loop.time()
            try:
                worker: str | None = await call(i)
                error = None
            except Exception as exc:  # a failed call is what we count
                worker, error = None, f"{type(exc).__name__}: {exc}"
            report.records.append(CallRecord(began, loop.time() - began, worker, error))

    tasks = []
    for i in range(total):
        delay = start + i / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(loop.create_task(one(i)))
    await asyncio.gather(*tasks)
    return report
