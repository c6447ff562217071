"""`SwimCounters`: what a `SwimNode` dropped or did, for metrics and tests."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SwimCounters"]


@dataclass(slots=True)
class SwimCounters:
    """What a node dropped or did, for metrics and tests."""

    packets_received: int = 0
    packets_sent: int = 0
    bytes_sent: int = 0
    malformed: int = 0
    """Packets dropped because they did not decode or validate."""
    oversized: int = 0
    """Packets dropped unread because they exceeded ``max_message_bytes``."""
    misdirected: int = 0
    """Pings for another node id (e.g. a restarted node at the same address)."""
    stale_acks: int = 0
    """Acks and nacks for no probe in flight."""
    refutations: int = 0
    suspicions_cleared: int = 0
    """Suspicions cleared locally by an answered probe."""
    dead_downgraded: int = 0
    """``Dead`` updates treated as suspicions because the member answered us recently."""
    stalls: int = 0
    """Times this node noticed it had not run for a while (see `Prober.check_stall`)."""
    unknown_syncs: int = 0
    """State syncs started because a member missing from the table probed us."""
    unknown_syncs_limited: int = 0
    """Such syncs not started because of the rate limit (see `swim_unknown`)."""
