"""Members and the events membership reports about them (SPEC §5)."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

__all__ = [
    "ClusterEvent",
    "EventsDropped",
    "Member",
    "MemberState",
    "NodeFailed",
    "NodeJoined",
    "NodeLeft",
    "NodeRecovered",
    "PartitionDetected",
    "PartitionHealed",
]


class MemberState(enum.Enum):
    ALIVE = "alive"
    SUSPECT = "suspect"
    FAILED = "failed"
    LEFT = "left"


def _frozen_tags(tags: Mapping[str, str]) -> Mapping[str, str]:
    return MappingProxyType(dict(tags))


@dataclass(frozen=True, slots=True)
class Member:
    """A node of the cluster as one observer sees it."""

    id: str
    """Unique node id, stable across the node's lifetime (a new process gets a new id)."""
    address: str
    """``host:port`` of the node's QUIC server (calls and gossip)."""
    tags: Mapping[str, str] = field(default_factory=dict)
    state: MemberState = MemberState.ALIVE
    incarnation: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "tags", _frozen_tags(self.tags))

    def __hash__(self) -> int:
        return hash((self.id, self.address, self.state, self.incarnation))


@dataclass(frozen=True, slots=True)
class NodeJoined:
    """A node was seen alive for the first time (or again after it had left)."""

    node: Member


@dataclass(frozen=True, slots=True)
class NodeLeft:
    """A node left gracefully."""

    node: Member


@dataclass(frozen=True, slots=True)
class NodeFailed:
    """A node was declared failed: it stopped answering and did not refute the suspicion."""

    node: Member


@dataclass(frozen=True, slots=True)
class NodeRecovered:
    """A node declared failed is alive again (it refuted, or rejoined)."""

    node: Member


@dataclass(frozen=True, slots=True)
class PartitionDetected:
    """This node sees fewer than a majority of the last stable membership.

    `minority` and `majority` are the node ids on each side as this node sees them.
    """

    minority: frozenset[str]
    majority: frozenset[str]


@dataclass(frozen=True, slots=True)
class PartitionHealed:
    """A majority of the last stable membership is reachable again."""


@dataclass(frozen=True, slots=True)
class EventsDropped:
    """A slow subscriber's queue was full: `count` events were dropped before this one."""

    count: int


ClusterEvent = (
    NodeJoined
    | NodeLeft
    | NodeFailed
    | NodeRecovered
    | PartitionDetected
    | PartitionHealed
    | EventsDropped
)
