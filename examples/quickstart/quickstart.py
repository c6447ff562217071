"""The quickstart: a ComputeService worker and a client talking over QUIC + TLS 1.3 on loopback.

Run it from the repository root after generating the stubs (the README's first command does both):

    rpcnet-gen examples/compute.rpc -o examples/gen
    python examples/quickstart/quickstart.py

It writes development certificates into a temporary directory (as `rpcnet certs DIR` does),
starts a server on 127.0.0.1 with an ephemeral port, and makes one call of each streaming kind,
plus one that fails with the schema's typed `Overloaded` error.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # so that `gen` (examples/gen) imports

from gen.compute import (
    Chunk,
    ComputeServiceBase,
    ComputeServiceClient,
    Done,
    Outcome,
    Overloaded,
    Task,
    TaskEvent,
    TaskResult,
    TaskState,
    UploadSummary,
    WatchRequest,
)

from rpcnet_runtime import CallContext, ClientTLS, Server, ServerTLS, connect
from rpcnet_runtime.certs import write_dev_certs


class Worker(ComputeServiceBase):
    """A worker that sums the bytes of a task's payload; it refuses tasks of kind "flood"."""

    def __init__(self) -> None:
        self.executions = 0

    async def process(self, request: Task, ctx: CallContext) -> Outcome:
        if request.kind == "flood":
            raise Overloaded(reason="queue full", retry_after=timedelta(seconds=1), queue_depth=64)
        self.executions += 1
        total = sum(request.payload)
        return Outcome(
            done=Done(
                result=str(total).encode(),
                worker_id="quickstart-worker",
                elapsed=timedelta(milliseconds=1),
                finished_at=datetime.now(UTC),
            )
        )

    async def watch(self, request: WatchRequest, ctx: CallContext) -> AsyncIterator[TaskEvent]:
        for state in (TaskState.QUEUED, TaskState.RUNNING, TaskState.SUCCEEDED):
            yield TaskEvent(task_id=request.task_ids[0], state=state, at=datetime.now(UTC))

    async def upload(self, requests: AsyncIterator[Chunk], ctx: CallContext) -> UploadSummary:
        summary = UploadSummary()
        async for chunk in requests:
            summary.task_id = chunk.task_id
            summary.total_bytes += len(chunk.data)
            summary.chunks += 1
        return summary

    async def process_stream(
        self, requests: AsyncIterator[Task], ctx: CallContext
    ) -> AsyncIterator[TaskResult]:
        async for task in requests:
            yield TaskResult(task_id=task.id, outcome=await self.process(task, ctx))


async def chunks(task_id: str, count: int) -> AsyncIterator[Chunk]:
    for index in range(count):
        yield Chunk(task_id=task_id, offset=index * 1024, data=bytes(1024))


async def tasks(count: int) -> AsyncIterator[Task]:
    for index in range(count):
        yield Task(id=f"stream-{index}", kind="sum", payload=bytes([index, 1]))


async def main() -> None:
    with tempfile.TemporaryDirectory(prefix="rpcnet-quickstart-") as directory:
        certs = write_dev_certs(directory)
        worker = Worker()
        server = Server("127.0.0.1", 0, tls=ServerTLS(certs.server_cert, certs.server_key))
        server.add_service(worker)
        await server.start()
        print(f"server listening on 127.0.0.1:{server.port} (QUIC, TLS 1.3, ALPN rpcnet/1)")
        try:
            async with connect(f"127.0.0.1:{server.port}", tls=ClientTLS(ca=certs.ca_cert)) as ch:
                client = ComputeServiceClient(ch)

                outcome = await client.process(Task(id="t1", kind="sum", payload=b"\x01\x02\x03"))
                assert outcome.done is not None
                print(f"unary       process(t1) -> {outcome.which()}: {outcome.done.result!r}")

                again = await client.process(Task(id="t1", kind="sum", payload=b"\x01\x02\x03"))
                print(
                    f"unary       process(t1) again -> {again.which()}; the handler ran "
                    f"{worker.executions} time(s): the server deduplicated idempotency key t1"
                )

                try:
                    await client.process(Task(id="t2", kind="flood"), timeout=0.5)
                except Overloaded as error:
                    print(
                        f"typed error process(t2) -> Overloaded(reason={error.reason!r}, "
                        f"queue_depth={error.queue_depth}), status {error.status.name}"
                    )

                events = [e.state.name async for e in client.watch(WatchRequest(task_ids=["t1"]))]
                print(f"server stream watch(t1) -> {events}")

                summary = await client.upload(chunks("t3", 8))
                print(f"client stream upload(8 chunks) -> {summary.total_bytes} bytes")

                results = [r.task_id async for r in client.process_stream(tasks(3))]
                print(f"bidi stream process_stream(3 tasks) -> {results}")
        finally:
            await server.stop(grace=1.0)
    print("quickstart done")


if __name__ == "__main__":
    asyncio.run(main())
