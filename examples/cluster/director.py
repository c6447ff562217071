"""The director: a cluster node that serves DirectorService and hands tasks to workers.

It joins the cluster with tags role=director, follows the workers in a `WorkerRegistry` and
calls them through a `ClusterChannel`, which applies Process's retry and timeout policy and
fails over when a worker dies. It also serves the cluster status service, so
``rpcnet cluster status --seed <director>`` works against it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rpcnet_runtime.cluster.admin import ClusterAdminService
from rpcnet_runtime.cluster.channel import ClusterChannel
from rpcnet_runtime.cluster.config import ClusterConfig
from rpcnet_runtime.cluster.membership import Membership
from rpcnet_runtime.cluster.registry import WorkerRegistry
from rpcnet_runtime.config import ClientConfig
from rpcnet_runtime.metrics import ClusterMetrics
from rpcnet_runtime.server import Server
from rpcnet_runtime.tls import ClientTLS, ServerTLS

WORKERS = {"role": "worker"}


def client_tls(certs: Path) -> ClientTLS:
    return ClientTLS(
        ca=str(certs / "ca.pem"), cert=str(certs / "client.pem"), key=str(certs / "client.key")
    )


def make_director_service(compute: Any, director: Director) -> Any:
    class DirectorService(compute.DirectorServiceBase):  # type: ignore[misc]
        async def submit(self, request: Any, ctx: Any) -> Any:
            return await director.workers.process(request.task)

        async def list_workers(self, request: Any, ctx: Any) -> Any:
            infos = [
                compute.WorkerInfo(tags=dict(w.tags)) for w in director.registry.workers(WORKERS)
            ]
            return compute.WorkerList(workers=infos)

    return DirectorService()


@dataclass
class Director:
    server: Server
    membership: Membership
    registry: WorkerRegistry
    channel: ClusterChannel
    workers: Any
    """A ComputeServiceClient over the cluster channel."""
    metrics: ClusterMetrics

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server.port}"

    @classmethod
    async def start(
        cls,
        compute: Any,
        certs: Path,
        *,
        strategy: str = "least_connections",
        attempt_timeout: float | None = 0.5,
        port: int = 0,
    ) -> Director:
        tls = ServerTLS(
            str(certs / "server.pem"), str(certs / "server.key"), client_ca=str(certs / "ca.pem")
        )
        server = Server("127.0.0.1", port, tls=tls)
        await server.start()
        config = ClusterConfig.lan(tags={"role": "director"}, tls=client_tls(certs))
        membership = await Membership.join(server, config, node_id="director")
        metrics = ClusterMetrics()
        # latency_decay 1 s: p2c forgets a one-off slow call quickly (the default, 10 s, suits
        # long-lived services better than a short demo on a shared machine).
        registry = WorkerRegistry(
            membership,
            strategy,
            phi=membership.phi,
            metrics=metrics,
            resync_interval=0.2,
            latency_decay=1.0,
        )
        channel = ClusterChannel(
            registry,
            tags=WORKERS,
            tls=client_tls(certs),
            config=ClientConfig(connect_timeout=0.5),
            attempt_timeout=attempt_timeout,
            metrics=metrics,
        )
        director = cls(
            server, membership, registry, channel, compute.ComputeServiceClient(channel), metrics
        )
        server.add_service(make_director_service(compute, director))
        server.add_service(ClusterAdminService(membership, registry))
        return director

    def live_workers(self) -> list[str]:
        return [w.id for w in self.registry.workers(WORKERS) if w.state.value == "alive"]

    async def stop(self) -> None:
        await self.channel.close()
        await self.registry.aclose()
        await self.membership.leave()
        await self.membership.close()
        await self.server.stop(grace=1.0)
