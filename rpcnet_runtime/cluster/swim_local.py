"""The local node's own record in `SwimNode`: incarnation, tags, leaving, and refutation.

Only the node itself raises its incarnation: to publish new tags, or to refute an update about
itself. An ``Alive`` about this node at a higher incarnation, or at the same one with another
address or tags, and a ``Suspect`` or ``Dead`` at its current incarnation or higher are refuted:
incarnation + 1, ``Alive`` gossiped. A suspicion at an older incarnation is stale (its holder
missed the refutation): the current ``Alive`` is gossiped again unless one is already queued.
A leaving node refutes nothing; it answers any news about itself with its ``Dead`` (left).
"""

from __future__ import annotations

from collections.abc import Mapping

from .broadcast import TransmitLimitedQueue
from .messages import Alive, Dead, MemberSnapshot, Suspect
from .types import Member, MemberState

__all__ = ["LocalMember"]


class LocalMember:
    """This node as others see it; its updates go to `queue` (keyed by its id)."""

    def __init__(
        self, self_id: str, address: str, tags: dict[str, str], queue: TransmitLimitedQueue
    ) -> None:
        self.id = self_id
        self.address = address
        self.tags = tags
        self.incarnation = 0
        self.leaving = False
        self._queue = queue

    @property
    def state(self) -> MemberState:
        return MemberState.LEFT if self.leaving else MemberState.ALIVE

    def alive_message(self) -> Alive:
        return Alive(self.id, self.incarnation, self.address, self.tags)

    def left_message(self) -> Dead:
        """The ``Dead`` this node gossips about itself when it leaves."""
        return Dead(self.id, self.incarnation, self.id)

    def to_member(self) -> Member:
        return Member(self.id, self.address, self.tags, self.state, self.incarnation)

    def snapshot(self) -> MemberSnapshot:
        """This node's entry in a state sync."""
        return MemberSnapshot(self.id, self.address, self.tags, self.state, self.incarnation)

    def announce(self) -> None:
        """Queue this node's current ``Alive`` for gossip."""
        self._queue.queue(self.id, self.alive_message())

    def set_tags(self, tags: Mapping[str, str]) -> None:
        """New (validated) tags: a fresh incarnation, gossiped."""
        self.tags = dict(tags)
        self.incarnation += 1
        self.announce()

    def about_me(self, m: Alive | Suspect | Dead) -> bool:
        """Handle an update about this node; True if it refuted (raised its incarnation)."""
        if self.leaving:
            if not isinstance(m, Dead):
                self._queue.queue(self.id, self.left_message())
            return False
        if isinstance(m, Alive):
            if m.incarnation < self.incarnation or (
                m.incarnation == self.incarnation
                and m.address == self.address
                and dict(m.tags) == self.tags
            ):
                return False
        elif m.incarnation < self.incarnation:
            # A stale suspicion: whoever holds it missed our refutation. Gossip it again.
            if self._queue.pending(self.id) is None:
                self.announce()
            return False
        self.incarnation = max(self.incarnation, m.incarnation) + 1
        self.announce()
        return True
