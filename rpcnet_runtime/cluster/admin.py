"""The cluster status service (`admin.rpc`) a node serves, and its client side.

A node adds ``ClusterAdminService(membership, registry=...)`` to its server; operators ask any
node with ``rpcnet cluster status --seed HOST:PORT`` (or `fetch_status`). The answer lists the
members the node knows, with address, tags, state and phi, plus calls in flight, breaker state
and health for the workers of a node that routes calls (one with a `WorkerRegistry`).

The generated module lives in ``gen/`` beside gossip's; after changing either schema run
``rpcnet-gen rpcnet_runtime/cluster/gossip.rpc rpcnet_runtime/cluster/admin.rpc
-o rpcnet_runtime/cluster/gen`` (a test runs the same command with ``--check``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from ..context import CallContext
from ..tls import ClientTLS
from .gen.admin import (
    ClusterAdminBase,
    ClusterAdminClient,
    ClusterStatus,
    NodeStatus,
    StatusRequest,
)
from .registry import WorkerRegistry
from .types import Member

__all__ = [
    "ClusterAdminService",
    "ClusterStatus",
    "NodeStatus",
    "fetch_status",
    "format_json",
    "format_table",
    "status_rows",
]


class _Members(Protocol):
    def members(self) -> list[Member]: ...


class ClusterAdminService(ClusterAdminBase):
    """Answers `Status` from `membership` (and `registry`, when the node routes calls).

    `membership` needs ``members()``; ``phi(member_id)``, ``local_member`` and
    ``has_quorum()`` are used when present (the asyncio `Membership` has them).
    """

    def __init__(self, membership: _Members, registry: WorkerRegistry | None = None) -> None:
        self.membership = membership
        self.registry = registry

    async def status(self, request: StatusRequest, ctx: CallContext) -> ClusterStatus:
        return self.snapshot()

    def snapshot(self) -> ClusterStatus:
        """The status as this node sees it now."""
        local = getattr(self.membership, "local_member", None)
        local_id = getattr(local, "id", "") or ""
        phi_of: Callable[[str], float] | None = getattr(self.membership, "phi", None)
        quorum: Callable[[], bool] | None = getattr(self.membership, "has_quorum", None)
        workers = {w.id: w for w in self.registry.workers()} if self.registry else {}
        nodes = []
        for member in sorted(self.membership.members(), key=lambda m: m.id):
            phi = None
            if phi_of is not None and member.id != local_id:
                value = phi_of(member.id)
                phi = value if math.isfinite(value) else 1e308
            node = NodeStatus(
                id=member.id,
                address=member.address,
                tags=dict(member.tags),
                state=member.state.value,
                phi=phi,
                incarnation=member.incarnation,
                local=member.id == local_id,
            )
            worker = workers.get(member.id)
            if worker is not None:
                node.in_flight = worker.in_flight
                node.breaker = worker.breaker.value
                node.health = worker.health.state.value
            nodes.append(node)
        return ClusterStatus(
            node_id=local_id,
            members=nodes,
            has_quorum=quorum() if quorum is not None else True,
        )


async def fetch_status(seed: str, *, tls: ClientTLS, timeout: float = 5.0) -> ClusterStatus:
    """Ask the node at ``host:port`` for its view of the cluster."""
    from ..client import connect
    from ..config import ClientConfig

    config = ClientConfig(connect_timeout=timeout)
    async with connect(seed, tls=tls, config=config) as channel:
        return await ClusterAdminClient(channel).status(StatusRequest(), timeout=timeout)


def status_rows(status: ClusterStatus) -> list[dict[str, Any]]:
    """One JSON-ready dict per member."""
    return [
        {
            "id": n.id,
            "address": n.address,
            "tags": dict(sorted(n.tags.items())),
            "state": n.state,
            "phi": n.phi,
            "incarnation": n.incarnation,
            "local": n.local,
            "in_flight": n.in_flight,
            "breaker": n.breaker,
            "health": n.health,
        }
        for n in status.members
    ]


def format_json(status: ClusterStatus) -> str:
    document = {
        "node": status.node_id,
        "has_quorum": status.has_quorum,
        "members": status_rows(status),
    }
    return json.dumps(document, indent=2, sort_keys=False)


_COLUMNS = ("NODE", "ADDRESS", "STATE", "PHI", "IN_FLIGHT", "BREAKER", "HEALTH", "TAGS")


def _phi_text(phi: float | None) -> str:
    if phi is None:
        return "-"
    return "inf" if phi >= 1e300 else f"{phi:.2f}"


def format_table(status: ClusterStatus) -> str:
    """A ``consul members``-style table (the answering node marked with ``*``)."""
    rows: list[Sequence[str]] = [_COLUMNS]
    for n in status.members:
        rows.append(
            (
                n.id + (" *" if n.local else ""),
                n.address,
                n.state,
                _phi_text(n.phi),
                "-" if n.in_flight is None else str(n.in_flight),
                n.breaker or "-",
                n.health or "-",
                ",".join(f"{k}={v}" for k, v in sorted(n.tags.items())) or "-",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(_COLUMNS))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
             for row in rows]  # fmt: skip
    if not status.has_quorum:
        lines.append("warning: this node does not see a quorum (possible partition)")
    return "\n".join(lines)
