"""Real processes: a director (this process) calling 3 worker processes through a ClusterChannel.

- SIGKILL one worker under steady idempotent load: no call fails, and no attempt goes to it
  later than 1 s after the director learned of its failure (NodeFailed).
- SIGSTOP one worker: hedged calls are not slowed by it and p2c stops choosing it.
- An overloaded cluster sheds (Overloaded) and the director backs off instead of amplifying.
"""

from __future__ import annotations

import asyncio
import importlib
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from rpcnet_runtime.certs import write_dev_certs
from rpcnet_runtime.cluster.types import NodeFailed
from rpcnet_runtime.errors import RpcError
from rpcnet_runtime.policies.executor import AttemptSpec

pytestmark = pytest.mark.timeout(60)
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "cluster"
PACKAGE = "w3_failover_gen"


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Any, ModuleType]]:
    """The example's harness and director modules, and the generated compute module."""
    sys.path.insert(0, str(EXAMPLE))
    try:
        harness = importlib.import_module("harness")
        director = importlib.import_module("director")
        gen = tmp_path_factory.mktemp("gen")
        yield harness, director, harness.generate(gen, PACKAGE)
    finally:
        sys.path.remove(str(EXAMPLE))


@dataclass
class Trace:
    """Attempts the director sent: (loop time, worker id, spec)."""

    attempts: list[tuple[float, str, AttemptSpec]] = field(default_factory=list)


@dataclass
class Setup:
    director: Any
    workers: list[Any]
    trace: Trace
    compute: ModuleType
    harness: Any


async def start(
    example: tuple[Any, Any, ModuleType],
    tmp_path: Path,
    *,
    strategy: str = "least_connections",
    worker_args: list[str] | None = None,
) -> Setup:
    harness, director_module, compute = example
    certs = tmp_path / "certs"
    write_dev_certs(certs)
    director = await director_module.Director.start(compute, certs, strategy=strategy)
    gen_parent = Path(str(compute.__file__)).parent.parent
    workers = await asyncio.gather(
        *(
            harness.WorkerProcess.spawn(
                f"w{i}",
                seed=director.address,
                certs_dir=certs,
                gen_parent=gen_parent,
                package=PACKAGE,
                extra=worker_args,
            )
            for i in (1, 2, 3)
        )
    )
    await asyncio.gather(*(w.ready() for w in workers))
    loop = asyncio.get_running_loop()
    give_up = loop.time() + 20
    while len(director.live_workers()) < 3:
        assert loop.time() < give_up, "workers did not join"
        await asyncio.sleep(0.05)
    trace = Trace()
    director.channel.on_attempt = lambda worker_id, spec: trace.attempts.append(
        (loop.time(), worker_id, spec)
    )
    return Setup(director, list(workers), trace, compute, harness)


@pytest.fixture
async def stopper() -> AsyncIterator[list[Setup]]:
    setups: list[Setup] = []
    yield setups
    for setup in setups:
        await asyncio.gather(*(worker.stop() for worker in setup.workers))
        await setup.director.stop()


async def test_sigkill_under_load_fails_no_call(
    example: tuple[Any, Any, ModuleType], tmp_path: Path, stopper: list[Setup]
) -> None:
    s = await start(example, tmp_path)
    stopper.append(s)
    loop = asyncio.get_running_loop()
    failed_at: dict[str, float] = {}
    events = s.director.membership.subscribe()

    async def watch() -> None:
        async for event in events:
            if isinstance(event, NodeFailed):
                failed_at.setdefault(event.node.id, loop.time())

    watcher = asyncio.ensure_future(watch())
    victim = s.workers[0]
    lags: list[tuple[float, float]] = []

    async def lag() -> None:
        while True:
            t = loop.time()
            await asyncio.sleep(0.01)
            lags.append((t, loop.time() - t - 0.01))

    lagger = asyncio.ensure_future(lag())

    async def call(i: int) -> str:
        outcome = await s.director.workers.process(s.compute.Task(id=f"kill-{i}"))
        return str(outcome.done.worker_id)

    async def kill_later() -> float:
        await asyncio.sleep(1.5)
        victim.kill()
        return loop.time()

    killer = asyncio.ensure_future(kill_later())
    report = await s.harness.steady_load(call, rate=60, duration=7.0)
    killed = await killer
    watcher.cancel()
    events.close()
    lagger.cancel()
    worst = max(lags, key=lambda x: x[1])
    assert [(round(r.started - killed, 2), r.error) for r in report.failed] == [], (
        round(worst[0] - killed, 2),
        round(worst[1], 3),
        failed_at,
        killed,
    )
    assert len(report.records) == 420
    assert victim.worker_id in failed_at, "the director never learned of the failure"
    learned = failed_at[victim.worker_id]
    assert learned >= killed
    late = [t for t, w, _ in s.trace.attempts if w == victim.worker_id and t > learned + 1.0]
    assert late == []
    assert report.percentile(0.99, killed, killed + 3.0) <= 1.0
    assert s.director.metrics.node_failures.value() >= 1


async def test_paused_worker_is_avoided_by_hedging_and_p2c(
    example: tuple[Any, Any, ModuleType], tmp_path: Path, stopper: list[Setup]
) -> None:
    s = await start(example, tmp_path, strategy="p2c")
    stopper.append(s)
    loop = asyncio.get_running_loop()
    paused = s.workers[1]
    paused.pause()
    paused_at = loop.time()

    async def call(i: int) -> str:
        status = await s.director.workers.get_status(s.compute.TaskRef(id=f"p-{i}"))
        return str(status.worker_id or "?")

    # GetStatus is unimplemented by the example worker: UNIMPLEMENTED is an answer, and the
    # call's latency is what counts. Hedged after 50 ms, timeout 500 ms.
    async def timed(i: int) -> str:
        try:
            return await call(i)
        except RpcError as error:
            if error.status.name != "UNIMPLEMENTED":
                raise
            return "answered"

    report = await s.harness.steady_load(timed, rate=40, duration=3.0)
    paused.resume()
    assert [r.error for r in report.failed] == []
    assert report.percentile(0.99) < 0.5
    first = [w for t, w, spec in s.trace.attempts if spec.attempt_number == 1 and t > paused_at]
    late = first[len(first) // 2 :]
    assert late.count(paused.worker_id) <= len(late) // 10  # p2c stopped choosing it
    assert s.director.metrics.hedges.value() >= 1


async def test_overloaded_cluster_sheds_and_director_backs_off(
    example: tuple[Any, Any, ModuleType], tmp_path: Path, stopper: list[Setup]
) -> None:
    s = await start(example, tmp_path, worker_args=["--capacity", "1", "--work", "0.05"])
    stopper.append(s)

    async def call(i: int) -> str:
        outcome = await s.director.workers.process(s.compute.Task(id=f"o-{i}"), timeout=1.0)
        return str(outcome.done.worker_id)

    calls = 150
    report = await s.harness.steady_load(call, rate=150, duration=1.0)
    attempts = len(s.trace.attempts)
    assert report.failed, "the cluster was not overloaded"
    assert s.director.metrics.shed.value() > 0
    # Process allows 4 attempts a call; backing off (pushback, retry budget) keeps the
    # director far below that.
    assert attempts < calls * 2
    assert s.director.channel.counters.throttled > 0
    for record in report.failed:
        assert (
            "Overloaded" in record.error
            or "RESOURCE_EXHAUSTED" in record.error
            or ("no worker available" in record.error)
        )
