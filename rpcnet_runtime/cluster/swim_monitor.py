"""Per-peer liveness evidence of a `SwimNode`: phi accrual detectors and answered probes.

Every packet from a live member is a heartbeat for that member's `PhiAccrualDetector`. At the
start of each protocol period the ``phi_checks_per_period`` members heard from least recently are
checked; one whose phi reached ``phi_threshold`` counts as unreachable (for partition detection)
until a packet from it arrives, and is to be probed first. The time of the last answered probe of
each member is kept too: a recent answer turns a ``Dead`` about it into a suspicion.
"""

from __future__ import annotations

from collections import OrderedDict

from .config import ClusterConfig
from .failure_detector import PhiAccrualDetector
from .swim_partition import PartitionTracker

__all__ = ["PeerMonitor"]


class PeerMonitor:
    """Phi detectors, least-recently-heard order, unreachable set and last acks, by member.

    Changes of the unreachable set mark `partition` for an update.
    """

    def __init__(self, config: ClusterConfig, partition: PartitionTracker) -> None:
        self._config = config
        self._partition = partition
        self._detectors: dict[str, PhiAccrualDetector] = {}
        self._heard: OrderedDict[str, None] = OrderedDict()
        self.unreachable: set[str] = set()
        """Members whose phi crossed the threshold and that were not heard from since."""
        self._last_ack: dict[str, float] = {}

    def heard_from(self, member_id: str, now: float, num_members: int) -> None:
        """Record a packet from live member `member_id` (it is reachable again, if it was not).

        :param num_members: n, for a new detector's first estimate of the gap between packets.
        """
        detector = self._detectors.get(member_id)
        if detector is None:
            n = num_members
            detector = PhiAccrualDetector(
                threshold=self._config.phi_threshold,
                max_sample_size=self._config.phi_max_sample_size,
                min_std_deviation=self._config.phi_min_std_deviation,
                first_heartbeat_estimate=self._config.probe_interval * max(1.0, (n - 1) / 2),
            )
            self._detectors[member_id] = detector
        detector.heartbeat(now)
        self._heard[member_id] = None
        self._heard.move_to_end(member_id)
        if member_id in self.unreachable:
            self.unreachable.discard(member_id)
            self._partition.mark()

    def check(self, now: float) -> list[str]:
        """Check the members heard from least recently (``phi_checks_per_period`` of them).

        Returns those whose phi reached the threshold (now unreachable), in order.
        """
        threshold = self._config.phi_threshold
        over: list[str] = []
        for i, member_id in enumerate(self._heard):
            if i >= self._config.phi_checks_per_period:
                break
            if self._detectors[member_id].phi(now) >= threshold:
                if member_id not in self.unreachable:
                    self.unreachable.add(member_id)
                    self._partition.mark()
                over.append(member_id)
        return over

    def phi(self, member_id: str, now: float) -> float | None:
        """Phi of `member_id`, or None when it has no detector (never heard, or dropped)."""
        detector = self._detectors.get(member_id)
        return None if detector is None else detector.phi(now)

    def acked(self, member_id: str, now: float) -> None:
        """Record that `member_id` answered one of our probes at `now`."""
        self._last_ack[member_id] = now

    def answered_within(self, member_id: str, now: float, window: float) -> bool:
        """Whether `member_id` answered one of our probes less than `window` seconds ago."""
        last = self._last_ack.get(member_id)
        return last is not None and now - last < window

    def drop(self, member_id: str) -> None:
        """Stop monitoring a member that failed or left (its last ack is kept)."""
        self._detectors.pop(member_id, None)
        self._heard.pop(member_id, None)
        self.unreachable.discard(member_id)

    def forget(self, member_id: str) -> None:
        """Forget everything about a member removed from the table."""
        self._last_ack.pop(member_id, None)
        self.drop(member_id)
