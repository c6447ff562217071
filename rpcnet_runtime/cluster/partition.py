"""Partition detection against the last stable membership; pure, time passed in (seconds).

Theory of operation
-------------------
Rule 1 — the reference. The *last stable membership* ``R`` follows the known (non-left)
members, each change debounced per member: a member enters ``R`` once it has been known for
``stable_after`` seconds, and leaves once it has been unknown (or reaped, below) that long. Per
member, so that under churn (a kill or a join every second or two) old members still leave ``R``
on time instead of waiting for a quiet moment. ``R`` follows the known set
only while this node has quorum and no loss of it is pending; otherwise ``R`` is frozen, so
joins, leaves and reaping on either side of a split cannot hand quorum to a minority. A graceful
leave shrinks ``R`` (the member leaves ``known_ids``). A failure does not by itself: a failed
member stays known until the membership layer reaps it, or, with ``reap_after``, until this
detector has seen it unreachable for that long; then it leaves ``R`` at once (the reap delay
already exceeds ``stable_after``), again only while this node has quorum. ``reap_after`` must
exceed the spread of the moments at which an isolated node loses sight of its peers: once it
has lost sight of enough of them to lose quorum, ``R`` is frozen and nothing more is reaped.
Before the first stable set exists (the first ``stable_after`` seconds) there is no reference
and the node has quorum.

Rule 2 — quorum. With ``V = alive_ids ∩ R`` a node has quorum when ``|V| > |R| / 2``, or on an
even split when ``|V| == |R| / 2`` and ``V`` holds ``min(R)`` (smallest id by string order).
Two complementary sides of ``R`` therefore never both have quorum, and for a two-way split
exactly one does, as long as both sides share ``R`` (it was stable before the split).

Rule 3 — events. The reported state flips only after the raw quorum answer has disagreed with
it continuously for ``stable_after`` seconds, so a flapping link produces no events. Losing
quorum emits one ``PartitionDetected(minority=V, majority=R - V)``: the minority is this node's
side (self included), the majority the rest of ``R``. A node in the quorum side emits nothing
(it cannot tell a partition from failures). Regaining quorum emits one ``PartitionHealed``.
``has_quorum()`` reports the same debounced state, so it agrees with the events.

Call ``observe`` whenever reachability or membership changes, and again at ``next_deadline()``.
"""

from __future__ import annotations

import math

from .types import PartitionDetected, PartitionHealed

__all__ = ["PartitionDetector", "quorum"]


def quorum(visible: frozenset[str], stable: frozenset[str]) -> bool:
    """Whether the side `visible` holds quorum of the stable membership `stable`.

    A strict majority wins; on an exact half the side holding the smallest id of `stable` wins.
    An empty `stable` (no reference yet) gives quorum.
    """
    if not stable:
        return True
    seen = len(visible & stable)
    if 2 * seen > len(stable):
        return True
    return 2 * seen == len(stable) and min(stable) in visible


class PartitionDetector:
    """Tracks the last stable membership and whether this node sees a quorum of it.

    :param self_id: this node's id.
    :param stable_after: seconds a change must hold before it counts (> 0).
    :param reap_after: if set (>= stable_after), seconds a member of the stable set may stay
        unreachable before this detector drops it from the stable set (only while this node
        has quorum); None leaves
        that to the membership layer (a member leaves ``known_ids`` when it is reaped).
    """

    __slots__ = (
        "_changed_since",
        "_flip_since",
        "_healthy",
        "_reap_after",
        "_self_id",
        "_stable",
        "_stable_after",
        "_unreachable_since",
    )

    def __init__(
        self, self_id: str, *, stable_after: float = 2.0, reap_after: float | None = None
    ) -> None:
        if not isinstance(self_id, str) or not self_id:
            raise ValueError(f"self_id must be a non-empty string, got {self_id!r}")
        if not math.isfinite(stable_after) or stable_after <= 0.0:
            raise ValueError(f"stable_after must be a finite number > 0, got {stable_after!r}")
        if reap_after is not None and (not math.isfinite(reap_after) or reap_after <= 0.0):
            raise ValueError(f"reap_after must be None or a finite number > 0, got {reap_after!r}")
        if reap_after is not None and reap_after < stable_after:
            raise ValueError(f"reap_after must be >= stable_after, got {reap_after!r}")
        self._self_id = self_id
        self._stable_after = float(stable_after)
        self._reap_after = reap_after
        self._stable: frozenset[str] = frozenset()
        self._changed_since: dict[str, float] = {}  # member whose R membership is due to flip
        self._healthy = True
        self._flip_since: float | None = None
        self._unreachable_since: dict[str, float] = {}

    def __repr__(self) -> str:
        state = "quorum" if self._healthy else "partitioned"
        return (
            f"PartitionDetector(self_id={self._self_id!r}, {state}, "
            f"last_stable={sorted(self._stable)})"
        )

    @property
    def last_stable(self) -> frozenset[str]:
        """The last stable membership (empty until the first one has formed)."""
        return self._stable

    @property
    def stable_after(self) -> float:
        return self._stable_after

    def has_quorum(self) -> bool:
        """Whether this node (as last reported) sees a quorum of the last stable membership."""
        return self._healthy

    def quorum_settled(self) -> bool:
        """Whether this node has quorum and no loss of it is pending (the stable set may move).

        The membership layer reaps failed members only then, so a node on its way into a
        minority keeps the other side's records as reconnect targets.
        """
        return self._may_update_stable()

    def observe(
        self, alive_ids: frozenset[str], known_ids: frozenset[str], now: float
    ) -> list[PartitionDetected | PartitionHealed]:
        """Feed the current view; returns at most one event.

        :param alive_ids: members this node considers reachable (ALIVE or SUSPECT), self included.
        :param known_ids: every member that has not left, self included.
        :param now: current time in seconds (monotonic).
        """
        if not math.isfinite(now):
            raise ValueError(f"now must be a finite number, got {now!r}")
        alive = frozenset(alive_ids) | {self._self_id}
        known = frozenset(known_ids) | alive
        self._track_unreachable(alive, known, now)
        reaped = self._reaped(now)
        differs = (known - reaped) ^ self._stable
        for member in list(self._changed_since):
            if member not in differs:
                del self._changed_since[member]
        for member in differs:
            # A reaped member has been gone for reap_after (>= stable_after): it leaves at once.
            since = now - self._stable_after if member in reaped else now
            self._changed_since.setdefault(member, since)

        events: list[PartitionDetected | PartitionHealed] = []
        event = self._debounce(alive, now)
        if event is not None:
            events.append(event)
        if self._may_update_stable():
            ready = {
                m for m, since in self._changed_since.items() if now >= since + self._stable_after
            }
            if ready:
                self._stable = self._stable ^ ready
                for member in ready:
                    del self._changed_since[member]
                # The new reference may change the raw answer: start a pending flip if so.
                if not quorum(alive, self._stable):
                    self._flip_since = now
        return events

    def next_deadline(self) -> float | None:
        """The earliest time at which ``observe`` may change state with the same inputs."""
        deadlines: list[float] = []
        if self._flip_since is not None:
            deadlines.append(self._flip_since + self._stable_after)
        if self._may_update_stable():
            deadlines.extend(since + self._stable_after for since in self._changed_since.values())
            if self._reap_after is not None:
                deadlines.extend(
                    since + self._reap_after
                    for member, since in self._unreachable_since.items()
                    if member in self._stable and member not in self._changed_since
                )
        return min(deadlines) if deadlines else None

    # -- internals ----------------------------------------------------------------------------

    def _track_unreachable(self, alive: frozenset[str], known: frozenset[str], now: float) -> None:
        if self._reap_after is None:
            return
        unreachable = known - alive
        for member in list(self._unreachable_since):
            if member not in unreachable:
                del self._unreachable_since[member]
        for member in unreachable:
            self._unreachable_since.setdefault(member, now)

    def _reaped(self, now: float) -> frozenset[str]:
        """Members unreachable for ``reap_after`` (they leave ``R`` once it may move again)."""
        if self._reap_after is None:
            return frozenset()
        return frozenset(
            member
            for member, since in self._unreachable_since.items()
            if now >= since + self._reap_after
        )

    def _may_update_stable(self) -> bool:
        # Only with quorum and no pending loss of it: a minority never moves the reference.
        return self._healthy and self._flip_since is None

    def _debounce(
        self, alive: frozenset[str], now: float
    ) -> PartitionDetected | PartitionHealed | None:
        raw = quorum(alive, self._stable)
        if raw == self._healthy:
            self._flip_since = None
            return None
        if self._flip_since is None:
            self._flip_since = now
        if now < self._flip_since + self._stable_after:
            return None
        self._flip_since = None
        self._healthy = raw
        if raw:
            return PartitionHealed()
        visible = alive & self._stable
        return PartitionDetected(minority=visible, majority=self._stable - visible)
