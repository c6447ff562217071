"""Cluster membership: SWIM with Lifeguard, phi accrual detection, partitions and events.

The sans-IO core is `SwimNode`; the asyncio `Membership` driver runs it on a server's QUIC port.
"""

from .awareness import Awareness
from .broadcast import TransmitLimitedQueue
from .config import ClusterConfig
from .failure_detector import PhiAccrualDetector
from .partition import PartitionDetector
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
    "ClusterConfig",
    "ClusterEvent",
    "EventsDropped",
    "Member",
    "MemberState",
    "NodeFailed",
    "NodeJoined",
    "NodeLeft",
    "NodeRecovered",
    "PartitionDetected",
    "PartitionDetector",
    "PartitionHealed",
    "PhiAccrualDetector",
    "Suspicion",
    "SwimCounters",
    "SwimNode",
    "TransmitLimitedQueue",
    "remaining_suspicion_time",
    "suspicion_timeout",
]
