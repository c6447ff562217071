"""`ClusterConfig`: the membership service's settings, validated, with LAN and local presets.

The default (`ClusterConfig()` == `ClusterConfig.lan()`) is tuned for servers on one LAN or one
machine, where a round trip takes well under a millisecond and gossip travels over the node's
own QUIC connection. The reasoning behind each figure is in ``docs/cluster.md``; in short:

- a dead node is probed by some survivor within about one protocol period (each survivor probes
  every member once per round), the probe gives up after one (scaled) protocol period, and the
  suspicion then lasts `suspicion_min(n)` once enough independent survivors confirm it, so a
  SIGKILLed node of a 5-node cluster is declared failed about 1.5 s after it died;
- the suspicion never lasts less than 1.2 s on small clusters, so a node paused for 1 s has time
  to refute after it resumes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

__all__ = ["ClusterConfig"]

_MAX_TAGS = 64
_MAX_TAG_CHARS = 256


@dataclass(frozen=True, slots=True, kw_only=True)
class ClusterConfig:
    """Membership settings. Times are in seconds."""

    seeds: Sequence[str] = ()
    """``host:port`` addresses of nodes to join through (any live member will do)."""
    tags: Mapping[str, str] = field(default_factory=dict)
    """This node's tags, carried with its membership record (at most 64, 256 chars each)."""
    tls: object | None = None
    """The client TLS settings used to reach other members (a ``ClientTLS``), or None."""

    probe_interval: float = 0.2
    """Protocol period: one member is probed per period (scaled up by poor local health)."""
    probe_timeout: float = 0.1
    """Wait for a direct ack before asking `indirect_checks` members to probe for us."""
    indirect_checks: int = 3
    """How many members relay an indirect probe (ping-req) after a missed direct ack."""
    suspicion_mult: int = 6
    """Minimum suspicion = suspicion_mult * max(1, log10(n)) * probe_interval."""
    suspicion_max_timeout_mult: int = 3
    """Maximum suspicion (no independent confirmation) = this * minimum suspicion."""
    suspicion_confirmations: int = 3
    """Independent confirmations (Lifeguard's K) that shrink a suspicion to its minimum."""
    awareness_max_multiplier: int = 8
    """Lifeguard: poor local health may stretch probe timeouts up to this factor."""
    retransmit_mult: int = 4
    """Each update is piggybacked retransmit_mult * ceil(log10(n + 1)) times."""
    stall_threshold: float = 0.5
    """Called this late for the next probe, the node assumes it was itself stalled (paused,
    blocked) and postpones its suspicion timers instead of acting on them."""
    gossip_interval: float = 0.2
    """How often pending updates are pushed to `gossip_fanout` random members."""
    gossip_fanout: int = 3
    """Members each gossip round sends pending updates to."""
    push_pull_interval: float = 30.0
    """Full state sync with one random member (scaled up for clusters above 32 nodes)."""
    reconnect_interval: float = 0.5
    """Full state sync with one random failed member, so healed partitions merge again
    (stretched for clusters above 8 nodes, see `reconnect_interval_for`)."""
    unknown_sender_sync_interval: float = 1.0
    """A ping, ping-req or relayed ack from a member missing from the table starts a full
    state sync with it (all gossip about it may have gone elsewhere), at most once per sender
    per this interval; a sync takes one round trip, so a second one means the first was lost."""
    unknown_sender_syncs: int = 4
    """At most this many such syncs over all senders per `unknown_sender_sync_interval` (0 turns
    them off): a flood of probes from strangers costs at most this many full states."""
    failed_member_retention: float = 3600.0
    """How long failed and left members stay in the table (reconnect targets) before removal
    when this node has no quorum (a minority keeps trying to reach the rest for this long)."""
    failed_member_reap_after: float = 30.0
    """A member failed for this long is removed from the table, and then from the partition
    detector's stable membership, if this node has quorum (memberlist's GossipToTheDeadTime).
    A reaped member that comes back is reported as ``NodeJoined`` again."""
    early_probers: int = 6
    """About this many members probe a newly suspected member at once (all, in small clusters)."""
    partition_stable_after: float = 1.5
    """Seconds a change of reachability must hold before partition events are reported."""
    partition_reap_after: float = 2.5
    """A member failed for this long stops counting for partition detection: it leaves the
    stable membership (``partition_stable_after`` later, and only while this node has quorum),
    so members replaced under churn stop counting against the quorum long before they are
    reaped from the table. At least ``partition_stable_after``."""
    phi_threshold: float = 8.0
    """A member whose phi exceeds this is probed in the next protocol period."""
    phi_max_sample_size: int = 200
    """Inter-arrival samples kept per peer by its phi accrual detector."""
    phi_min_std_deviation: float = 0.1
    """Floor of the standard deviation the phi detector uses."""
    phi_checks_per_period: int = 8
    """Least recently heard members whose phi is checked at the start of each period."""
    packet_budget: int = 1200
    """Bytes of piggybacked updates per gossip packet (fits a QUIC datagram)."""
    max_message_bytes: int = 4 * 1024 * 1024
    """Incoming data larger than this is dropped unread (a full state sync must fit)."""
    max_members: int = 10_000
    """Upper bound on the member table; updates about further members are dropped."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "seeds", tuple(self.seeds))
        object.__setattr__(self, "tags", MappingProxyType(dict(self.tags)))
        _validate(self)

    # -- presets -------------------------------------------------------------------------------

    @classmethod
    def lan(cls, **overrides: Any) -> ClusterConfig:
        """Defaults for servers on one LAN (or one machine): fast detection, no false alarms."""
        return cls(**overrides)

    @classmethod
    def local(cls, **overrides: Any) -> ClusterConfig:
        """Fast timers for tests on loopback (4x faster than `lan`)."""
        base = cls(
            probe_interval=0.05,
            probe_timeout=0.025,
            stall_threshold=0.125,
            gossip_interval=0.05,
            push_pull_interval=5.0,
            reconnect_interval=0.125,
            unknown_sender_sync_interval=0.25,
            partition_stable_after=0.5,
            partition_reap_after=2.0,
            failed_member_retention=60.0,
            failed_member_reap_after=10.0,
        )
        return replace(base, **overrides)

    @classmethod
    def wan(cls, **overrides: Any) -> ClusterConfig:
        """Slower timers for members spread over a WAN (round trips of tens of milliseconds)."""
        base = cls(
            probe_interval=1.0,
            probe_timeout=0.5,
            stall_threshold=2.5,
            gossip_interval=0.5,
            gossip_fanout=4,
            push_pull_interval=60.0,
            reconnect_interval=5.0,
            unknown_sender_sync_interval=5.0,
            partition_stable_after=10.0,
            partition_reap_after=30.0,
            failed_member_reap_after=120.0,
        )
        return replace(base, **overrides)

    def with_(self, **changes: Any) -> ClusterConfig:
        """A copy with some fields changed (validated again)."""
        return replace(self, **changes)

    # -- derived figures -----------------------------------------------------------------------

    def suspicion_min(self, n: int) -> float:
        """Shortest suspicion timeout for a cluster of `n` members (reached with confirmations)."""
        return self.suspicion_mult * max(1.0, math.log10(max(1, n))) * self.probe_interval

    def suspicion_max(self, n: int) -> float:
        """Longest suspicion timeout (no independent confirmation)."""
        return self.suspicion_max_timeout_mult * self.suspicion_min(n)

    def expected_confirmations(self, n: int) -> int:
        """Independent confirmations that shrink a suspicion to its minimum (Lifeguard's K)."""
        k = self.suspicion_confirmations
        return k if n - 2 >= k else 0

    def retransmit_limit(self, n: int) -> int:
        """How many times each update is sent: retransmit_mult * ceil(log10(n + 1))."""
        return self.retransmit_mult * math.ceil(math.log10(max(1, n) + 1))

    def reconnect_interval_for(self, n: int) -> float:
        """Reconnect interval for n members: x n/8 above 8, so a failed member receives about
        8 / reconnect_interval attempts per second from the whole cluster, whatever its size."""
        return self.reconnect_interval * max(1.0, n / 8)

    def push_pull_interval_for(self, n: int) -> float:
        """Push-pull interval scaled as memberlist does: x(ceil(log2 n - log2 32) + 1) above 32."""
        if n <= 32:
            return self.push_pull_interval
        return self.push_pull_interval * (math.ceil(math.log2(n) - math.log2(32)) + 1)


def _validate(c: ClusterConfig) -> None:
    positive = {
        "probe_interval": c.probe_interval,
        "probe_timeout": c.probe_timeout,
        "gossip_interval": c.gossip_interval,
        "stall_threshold": c.stall_threshold,
        "push_pull_interval": c.push_pull_interval,
        "reconnect_interval": c.reconnect_interval,
        "unknown_sender_sync_interval": c.unknown_sender_sync_interval,
        "failed_member_retention": c.failed_member_retention,
        "failed_member_reap_after": c.failed_member_reap_after,
        "partition_stable_after": c.partition_stable_after,
        "partition_reap_after": c.partition_reap_after,
        "phi_threshold": c.phi_threshold,
        "phi_min_std_deviation": c.phi_min_std_deviation,
    }
    for name, value in positive.items():
        if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
            raise ValueError(f"ClusterConfig.{name} must be a positive number, got {value!r}")
    if c.partition_reap_after < c.partition_stable_after:
        raise ValueError("ClusterConfig.partition_reap_after must be >= partition_stable_after")
    if c.probe_timeout >= c.probe_interval:
        raise ValueError("ClusterConfig.probe_timeout must be shorter than probe_interval")
    at_least = {
        "indirect_checks": (c.indirect_checks, 0),
        "suspicion_mult": (c.suspicion_mult, 1),
        "suspicion_max_timeout_mult": (c.suspicion_max_timeout_mult, 1),
        "suspicion_confirmations": (c.suspicion_confirmations, 0),
        "early_probers": (c.early_probers, 0),
        "awareness_max_multiplier": (c.awareness_max_multiplier, 1),
        "retransmit_mult": (c.retransmit_mult, 1),
        "gossip_fanout": (c.gossip_fanout, 0),
        "unknown_sender_syncs": (c.unknown_sender_syncs, 0),
        "phi_max_sample_size": (c.phi_max_sample_size, 2),
        "phi_checks_per_period": (c.phi_checks_per_period, 0),
        "packet_budget": (c.packet_budget, 256),
        "max_message_bytes": (c.max_message_bytes, 1024),
        "max_members": (c.max_members, 1),
    }
    for name, (value, low) in at_least.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ValueError(f"ClusterConfig.{name} must be an integer >= {low}, got {value!r}")
    for seed in c.seeds:
        if not isinstance(seed, str) or not seed:
            raise ValueError(f"ClusterConfig.seeds must be 'host:port' strings, got {seed!r}")
    if len(c.tags) > _MAX_TAGS:
        raise ValueError(f"ClusterConfig.tags: at most {_MAX_TAGS} tags")
    for key, tag in c.tags.items():
        if not isinstance(key, str) or not isinstance(tag, str):
            raise ValueError("ClusterConfig.tags must map str to str")
        if len(key) > _MAX_TAG_CHARS or len(tag) > _MAX_TAG_CHARS:
            raise ValueError(
                f"ClusterConfig.tags: keys and values are at most {_MAX_TAG_CHARS} chars"
            )
