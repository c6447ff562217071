"""A compute worker: serves ComputeService and joins the cluster with tags role=worker.

Run by ``run.py`` (one process per worker)::

    python examples/cluster/worker.py --id w1 --seed 127.0.0.1:7001 --certs DIR --gen examples

It prints ``READY <id> <host:port>`` once it serves and has joined; SIGTERM makes it leave
gracefully. Tasks are processed idempotently by id (the runtime's idempotency store), take a
few milliseconds, and are refused with ``Overloaded`` beyond ``--capacity`` calls at once.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from datetime import timedelta
from pathlib import Path
from typing import Any

from harness import import_generated

from rpcnet_runtime.cluster.admin import ClusterAdminService
from rpcnet_runtime.cluster.config import ClusterConfig
from rpcnet_runtime.cluster.membership import Membership
from rpcnet_runtime.server import Server
from rpcnet_runtime.tls import ClientTLS, ServerTLS


def make_worker(compute: Any, worker_id: str, *, capacity: int, work: float) -> Any:
    class Worker(compute.ComputeServiceBase):  # type: ignore[misc]
        def __init__(self) -> None:
            self.in_flight = 0

        async def process(self, request: Any, ctx: Any) -> Any:
            if self.in_flight >= capacity:
                raise compute.Overloaded(
                    reason="at capacity",
                    retry_after=timedelta(milliseconds=50),
                    queue_depth=self.in_flight,
                )
            self.in_flight += 1
            try:
                await asyncio.sleep(work)
                return compute.Outcome(done=compute.Done(worker_id=worker_id, result=b"ok"))
            finally:
                self.in_flight -= 1

        async def stats(self, request: Any, ctx: Any) -> Any:
            return compute.WorkerStats(
                worker_id=worker_id, in_flight=self.in_flight, capacity=capacity
            )

    return Worker()


async def serve(args: argparse.Namespace) -> None:
    compute = import_generated(args.gen, args.package)
    certs = Path(args.certs)
    server = Server(
        "127.0.0.1",
        args.port,
        tls=ServerTLS(str(certs / "server.pem"), str(certs / "server.key"),
                      client_ca=str(certs / "ca.pem")),
    )  # fmt: skip
    server.add_service(make_worker(compute, args.id, capacity=args.capacity, work=args.work))
    await server.start()
    config = ClusterConfig.lan(
        seeds=[args.seed],
        tags={"role": "worker"},
        tls=ClientTLS(ca=str(certs / "ca.pem"), cert=str(certs / "client.pem"),
                      key=str(certs / "client.key")),
    )  # fmt: skip
    membership = await Membership.join(server, config, node_id=args.id)
    server.add_service(ClusterAdminService(membership))
    print(f"READY {args.id} 127.0.0.1:{server.port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    await stop.wait()
    await membership.leave()
    await membership.close()
    await server.stop(grace=1.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--id", required=True)
    parser.add_argument("--seed", required=True, help="host:port of a node to join through")
    parser.add_argument("--certs", required=True, help="directory of `rpcnet certs` files")
    parser.add_argument("--gen", required=True, help="directory holding the generated package")
    parser.add_argument("--package", default="gen")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--capacity", type=int, default=64)
    parser.add_argument("--work", type=float, default=0.002, help="seconds per task")
    asyncio.run(serve(parser.parse_args()))


if __name__ == "__main__":
    main()
