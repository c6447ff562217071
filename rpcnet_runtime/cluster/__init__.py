"""Cluster membership: SWIM with Lifeguard, phi accrual detection, partitions and events.

The sans-IO core is `SwimNode` (see docs/cluster.md); the asyncio `Membership` driver runs it on
a server's QUIC port. `WorkerRegistry` selects workers among the members, and `ClusterChannel` is
the Channel that sends each call to one of them, failing over when a worker fails.
"""

from .admin import ClusterAdminService, fetch_status
from .awareness import Awareness
from .broadcast import TransmitLimitedQueue
from .channel import ClusterChannel
from .config import ClusterConfig
from .failure_detector import PhiAccrualDetector
from .gossip import GossipCounters, GossipSender, GossipService
from .membership import Membership
from .partition import PartitionDetector
from .pool import ConnectionPool
from .registry import NoWorkersAvailable, Worker, WorkerRegistry
from .subscriptions import EventHub, Subscription
from .suspicion import Suspicion, remaining_suspicion_time, suspicion_timeout
from .swim import SwimCounters, SwimNode
from .types import (
    ClusterEvent,
    EventsDropped,
    Member,
    MemberState,
    NodeFailed,
    NodeJoined,
    NodeLeft,
    NodeRecovered,
    PartitionDetected,
    PartitionHealed,
)

__all__ = [
    "Awareness",
    "ClusterAdminService",
    "ClusterChannel",
    "ClusterConfig",
    "ClusterEvent",
    "ConnectionPool",
    "EventHub",
    "EventsDropped",
    "GossipCounters",
    "GossipSender",
    "GossipService",
    "Member",
    "MemberState",
    "Membership",
    "NoWorkersAvailable",
    "NodeFailed",
    "NodeJoined",
    "NodeLeft",
    "NodeRecovered",
    "PartitionDetected",
    "PartitionDetector",
    "PartitionHealed",
    "PhiAccrualDetector",
    "Subscription",
    "Suspicion",
    "SwimCounters",
    "SwimNode",
    "TransmitLimitedQueue",
    "Worker",
    "WorkerRegistry",
    "fetch_status",
    "remaining_suspicion_time",
    "suspicion_timeout",
]
