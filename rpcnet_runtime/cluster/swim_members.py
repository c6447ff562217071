"""Membership updates about other members, applied to a `SwimNode`'s table with their effects.

The precedence rules are `state.py`'s; here is what an accepted update does besides: it is
queued for gossip, starts or ends a suspicion, keeps the address index, the list of failed and
left members (``gone``) and the probe order current, stops monitoring members that failed, marks
the partition view dirty when a member became or stopped being live, and yields its event.

Two rules are this node's own (docs/cluster.md, "Better than memberlist"): a ``Dead`` about a
member that answered one of our probes within the last ``suspicion_min(n)`` is handled as a
suspicion from its sender and the member is probed next; and another id at this node's own
address is the process this one replaced, so it is declared failed at once.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator

from .broadcast import TransmitLimitedQueue
from .config import ClusterConfig
from .messages import Alive, Dead, Suspect
from .probing import ProbeOrder
from .state import LIVE, MemberTable, Transition, Update
from .suspicion import Suspicion
from .swim_counters import SwimCounters
from .swim_monitor import PeerMonitor
from .swim_partition import PartitionTracker
from .types import ClusterEvent, Member, MemberState

__all__ = ["MemberUpdates"]


class MemberUpdates:
    """The member table (everyone but this node) and the bookkeeping around its transitions.

    :param events: where transition events are appended.
    """

    def __init__(
        self,
        config: ClusterConfig,
        self_id: str,
        self_address: str,
        *,
        rng: random.Random,
        queue: TransmitLimitedQueue,
        order: ProbeOrder,
        monitor: PeerMonitor,
        partition: PartitionTracker,
        counters: SwimCounters,
        events: list[ClusterEvent],
    ) -> None:
        self._config = config
        self._self_id = self_id
        self._self_address = self_address
        self._rng = rng
        self._queue = queue
        self._order = order
        self._monitor = monitor
        self._partition = partition
        self._counters = counters
        self._events = events
        self.table = MemberTable(config.max_members)
        self._by_address: dict[str, str] = {}
        self.suspects: set[str] = set()
        self.gone: dict[str, float] = {}
        """FAILED or LEFT member -> since when."""

    @property
    def num_members(self) -> int:
        """Live members including this node (the n of the protocol's formulas)."""
        return len(self.table.live) + 1

    def adopt(self, members: Iterable[Member], now: float) -> None:
        """Add `members` as ALIVE without events or gossip (bootstrapping)."""
        for record in self.table.adopt((m for m in members if m.id != self._self_id), now):
            self._by_address[record.address] = record.id
        self._order.reset(self.table.live)
        self._partition.mark()

    def apply(self, m: Alive | Suspect | Dead, now: float) -> None:
        """Apply an update about another member."""
        if isinstance(m, Alive):
            self._apply_alive(m, now)
        elif isinstance(m, Suspect):
            self.apply_suspect(m, now)
        elif m.is_leave or not self._answered_recently(m, now):
            self.apply_dead(m, now)
        else:
            self._counters.dead_downgraded += 1
            self.apply_suspect(Suspect(m.node_id, m.incarnation, m.from_id), now)
            self._order.prioritise(m.node_id)

    def _apply_alive(self, m: Alive, now: float) -> None:
        if m.address == self._self_address:
            # Another id at our own address is the process we replaced: it is gone for certain.
            self._queue.queue(m.node_id, Dead(m.node_id, m.incarnation, self._self_id))
            return
        other = self._by_address.get(m.address)
        if other is not None and other != m.node_id and m.node_id not in self.table:
            old = self.table.get(other)
            if old is not None and old.state not in LIVE:
                self.forget(other)  # a restarted node took over this address
        t = self.table.apply(
            m.node_id, Update.ALIVE, m.incarnation, now, address=m.address, tags=m.tags
        )
        if t is None:
            return
        if t.old_state is None:
            self._by_address[t.record.address] = t.record.id
            self._order.insert(t.record.id)
        else:
            self._by_address[m.address] = m.node_id
            self.suspects.discard(m.node_id)
            self.gone.pop(m.node_id, None)
            if t.old_state not in LIVE:
                self._order.insert(m.node_id)
        self._transitioned(t, m)

    def apply_suspect(self, m: Suspect, now: float) -> None:
        """Start a suspicion, or count a confirmation of a running one."""
        record = self.table.get(m.node_id)
        if record is None or m.incarnation < record.incarnation:
            return
        if record.suspicion is not None:
            if record.suspicion.confirm(m.from_id):
                self._queue.queue(m.node_id, m)
            return
        t = self.table.apply(m.node_id, Update.SUSPECT, m.incarnation, now)
        if t is None:
            return
        n = self.num_members
        c = self._config
        t.record.suspicion = Suspicion(
            m.from_id, c.expected_confirmations(n), c.suspicion_min(n), c.suspicion_max(n), now
        )
        self.suspects.add(m.node_id)
        if m.from_id != self._self_id and self._rng.random() * n < c.early_probers:
            self._order.prioritise(m.node_id)
        self._transitioned(t, m)

    def apply_dead(self, m: Dead, now: float) -> None:
        """Declare a member failed (or left, when it says so itself)."""
        update = Update.LEFT if m.is_leave else Update.FAILED
        t = self.table.apply(m.node_id, update, m.incarnation, now)
        if t is None:
            return
        self.suspects.discard(m.node_id)
        self.gone[m.node_id] = now
        self._monitor.drop(m.node_id)
        self._transitioned(t, m)

    def clear_suspicion(self, member_id: str, now: float) -> bool:
        """An answered probe: a SUSPECT member is ALIVE again here (True if it was suspect)."""
        if self.table.clear_suspicion(member_id, now):
            self.suspects.discard(member_id)
            return True
        return False

    def _transitioned(self, t: Transition, m: Alive | Suspect | Dead) -> None:
        self._queue.queue(m.node_id, m)
        if t.old_state is None or (t.old_state in LIVE) != (t.record.state in LIVE):
            self._partition.mark()
        if t.event is not None:
            self._events.append(t.event)

    def _answered_recently(self, m: Dead, now: float) -> bool:
        record = self.table.get(m.node_id)
        return (
            record is not None
            and record.state in LIVE
            and m.incarnation == record.incarnation
            and self._monitor.answered_within(
                m.node_id, now, self._config.suspicion_min(self.num_members)
            )
            and self._by_address.get(record.address) == record.id  # not replaced by a restart
        )

    # -- suspicions ----------------------------------------------------------------------------

    def expire_suspicions(self, now: float) -> None:
        """Declare failed the suspects whose suspicion expired at `now`."""
        for member_id in [m for m in self.suspects if self._suspicion_due(m, now)]:
            record = self.table.get(member_id)
            if record is not None:
                self.apply_dead(Dead(member_id, record.incarnation, self._self_id), now)

    def _suspicion_due(self, member_id: str, now: float) -> bool:
        record = self.table.get(member_id)
        if record is None or record.suspicion is None:
            self.suspects.discard(member_id)
            return False
        return now >= record.suspicion.deadline

    def suspicion_deadlines(self) -> Iterator[float]:
        for member_id in self.suspects:
            record = self.table.get(member_id)
            if record is not None and record.suspicion is not None:
                yield record.suspicion.deadline

    def postpone_suspicions(self, seconds: float) -> None:
        """Shift every running suspicion later by `seconds` (this node was stalled)."""
        for member_id in self.suspects:
            record = self.table.get(member_id)
            if record is not None and record.suspicion is not None:
                record.suspicion.postpone(seconds)

    # -- reaping -------------------------------------------------------------------------------

    def reap(self, now: float, quorum_settled: bool) -> None:
        """Remove failed and left members that are due (docs/cluster.md, "Reaping").

        :param quorum_settled: only a node with settled quorum reaps failed members after
            ``failed_member_reap_after``: a minority keeps them as reconnect targets (so the
            sides merge on heal) until ``failed_member_retention``.
        """
        retention = self._config.failed_member_retention
        reap_after = self._config.failed_member_reap_after
        for member_id, since in list(self.gone.items()):
            record = self.table.require(member_id)
            age = now - since
            if (
                age > retention
                or self._by_address.get(record.address) != member_id  # a restart took over
                or (quorum_settled and age > reap_after and record.state is MemberState.FAILED)
            ):
                self.forget(member_id)

    def failed(self) -> list[str]:
        """Failed members still in the table (the reconnect targets)."""
        return [m for m in self.gone if self.table.require(m).state is MemberState.FAILED]

    def forget(self, member_id: str) -> None:
        """Remove a member from the table and from everything kept about it."""
        record = self.table.remove(member_id)
        self.gone.pop(member_id, None)
        self.suspects.discard(member_id)
        self._queue.discard(member_id)
        self._monitor.forget(member_id)
        if record is not None and self._by_address.get(record.address) == member_id:
            del self._by_address[record.address]
        self._partition.mark()
