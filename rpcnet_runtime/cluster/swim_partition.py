"""A `SwimNode`'s feed of its `PartitionDetector` (theory in `partition.py`).

The detector is fed again only when reachability or membership changed (`mark`) or one of its
deadlines passed. A member *failed* for ``partition_reap_after`` stops counting as known, so it
leaves the stable membership ``partition_stable_after`` later, but only while this node has
quorum (the detector freezes its stable set otherwise). Merely unreachable (phi) members are
not dropped: a slow but live peer never leaves the stable set, and an isolated node, which
loses quorum before its suspicions of its peers expire, reaps nothing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Set

from .config import ClusterConfig
from .partition import PartitionDetector
from .state import MemberTable
from .types import MemberState, PartitionDetected, PartitionHealed

__all__ = ["PartitionTracker"]


class PartitionTracker:
    """When and with what to feed the partition detector."""

    def __init__(self, self_id: str, config: ClusterConfig) -> None:
        self._self_id = self_id
        self._config = config
        self.detector = PartitionDetector(self_id, stable_after=config.partition_stable_after)
        self._dirty = True
        self.deadline: float | None = None
        """The next time `update` has something to do even if nothing is marked."""

    def mark(self) -> None:
        """Reachability or membership changed: feed the detector at the next `update`."""
        self._dirty = True

    def update(
        self,
        table: MemberTable,
        gone: Mapping[str, float],
        unreachable: Set[str],
        now: float,
    ) -> list[PartitionDetected | PartitionHealed]:
        """Feed the detector if something changed or a deadline passed; returns its events.

        :param gone: failed or left members with the time they became so.
        :param unreachable: live members that phi counts as unreachable.
        """
        deadline = self.deadline
        if not self._dirty and (deadline is None or now < deadline):
            return []
        reap_after = self._config.partition_reap_after
        next_reap = math.inf
        reaped: set[str] = set()
        for member_id, since in gone.items():
            if table.require(member_id).state is MemberState.FAILED:
                if now >= since + reap_after:
                    reaped.add(member_id)
                else:
                    next_reap = min(next_reap, since + reap_after)
        alive = frozenset(m for m in table.live if m not in unreachable) | {self._self_id}
        known = frozenset(
            r.id for r in table if r.state is not MemberState.LEFT and r.id not in reaped
        )
        self._dirty = False
        events = self.detector.observe(alive, known | {self._self_id}, now)
        detector = self.detector.next_deadline()
        best = min(next_reap, math.inf if detector is None else detector)
        self.deadline = None if best == math.inf else best
        return events
