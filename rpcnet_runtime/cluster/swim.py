"""`SwimNode`: the sans-IO SWIM + Lifeguard membership protocol of one node.

Theory of operation
-------------------
The node is driven from outside: `receive(sender, data, now)` for each incoming packet,
`tick(now)` at `next_deadline()` at the latest, and `take_outgoing()` / `take_events()` after
either. Nothing here reads a clock, sleeps or does I/O.

Probing. Each protocol period (``probe_interval``, stretched by Lifeguard awareness) the node pings
one member: first any member waiting in the *priority* list (see below), otherwise the next one of
a shuffled round-robin list of live members, reshuffled after each full round (memberlist's
scheme: every member is probed once per round). No ack within ``probe_timeout`` (also stretched):
``indirect_checks`` random members are asked to ping it for us (ping-req) and to answer with a
nack if it stays silent, and the ping is sent once more directly (memberlist's TCP fallback).
No ack by the end of the period: the member is suspected, and the missing nacks raise the
awareness score (a node whose relays do not even answer is itself the likely problem). Each
answered probe lowers it.

Suspicion. A suspected member gets a Lifeguard suspicion timer (see `suspicion.py`) that
independent confirmations from other members shorten. When it expires the member is declared
failed and a ``Dead`` update is gossiped. A member refutes a suspicion about itself by raising
its incarnation and gossiping ``Alive``; see `state.py` for the precedence rules.

Buddy system and answered probes. A probe of a suspect carries the suspicion, so the suspect
learns of it directly and refutes. Unlike memberlist, an *answered* probe of a suspect clears the
suspicion locally (the member is ALIVE again here at the same incarnation) and a ``Dead`` update
about a member that answered one of our probes within the last minimum suspicion time is treated
as a suspicion (it is confirmed or cleared by probing it at once) rather than accepted. A genuinely
crashed member cannot have answered within that time, since a ``Dead`` is only issued after a
suspicion of at least that long; so this delays no true failure and avoids a false one whenever
the suspect's refutation was lost. A member that receives a stale suspicion (older incarnation)
about itself re-gossips its current ``Alive``, so a survivor that missed the refutation catches up.

Priority probes. A member joins the priority list when (a) this node learns it is suspected (with
probability ``early_probers / n``, so small clusters probe at once and large ones do not flood the
suspect), (b) its phi accrual detector crosses ``phi_threshold``, or (c) a ``Dead`` about it was
downgraded as above. Priority probes replace round-robin ones, so each node still sends one probe
per period.

Stalls. Called long after the probe timer was due, the node concludes that it was itself stopped
(SIGSTOP, a blocked loop) and postpones its suspicions instead of acting on timers that expired
while it could not read the refutations (see `Prober.check_stall`).

Phi accrual. Every packet from a live member is a heartbeat for that member's detector. At the
start of each period the ``phi_checks_per_period`` members heard from least recently are checked;
phi above the threshold makes the member a priority probe and counts it as unreachable for
partition detection until it is heard from again. Phi never declares a failure by itself: SWIM's
probes and suspicion do, so a peer that is merely quiet costs one probe, not a false alarm.

Dissemination. Updates are piggybacked, within ``packet_budget`` bytes, on every packet (pings,
acks, ping-reqs, nacks) and pushed every ``gossip_interval`` to ``gossip_fanout`` random members
while any are queued; each is sent ``retransmit_limit(n)`` times (see `broadcast.py`).

State sync. ``join`` sends the whole member table to the seeds (push-pull) and retries until one
answers; afterwards one random member is synced every ``push_pull_interval`` (scaled with n), and
one random *failed* member every ``reconnect_interval``, so the two sides of a healed partition
merge again (a member that sees itself failed in the other's state refutes). A ping or ping-req
from a member not in the table (or the ack of a ping relayed to one) starts a push-pull with it,
at most once per sender per ``unknown_sender_sync_interval`` and ``unknown_sender_syncs`` times
per interval in all: its gossip may all have gone elsewhere (see `swim_unknown`).
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Mapping, Sequence

from .awareness import Awareness
from .config import ClusterConfig
from .messages import Alive, Dead, Message, MessageError, PushPull, Suspect, decode_packet
from .probing import ProbeOrder
from .state import LIVE
from .swim_counters import SwimCounters
from .swim_local import LocalMember
from .swim_members import MemberUpdates
from .swim_monitor import PeerMonitor
from .swim_outbox import Outbox
from .swim_partition import PartitionTracker
from .swim_probe import Prober
from .swim_sync import StateSync
from .types import ClusterEvent, Member

__all__ = ["SwimCounters", "SwimNode"]


class SwimNode:
    """One node's view of the cluster and its share of the SWIM protocol.

    The parts, each in its own module: `LocalMember` (this node's incarnation, tags and
    refutations, ``swim_local``), `MemberUpdates` (the member table and the effects of each
    update, ``swim_members``), `Prober` (the probe cycle and answers to probes,
    ``swim_probe``), `StateSync` (join and push-pull, ``swim_sync``), `PeerMonitor` (phi and
    answered probes, ``swim_monitor``), `PartitionTracker` (``swim_partition``) and `Outbox`
    (packets and piggybacked gossip, ``swim_outbox``). This class dispatches the inputs to them
    and runs the timers in a fixed order.
    """

    def __init__(
        self,
        config: ClusterConfig,
        self_id: str,
        address: str,
        tags: Mapping[str, str] | None = None,
        *,
        rng: random.Random,
        now: float,
    ) -> None:
        if not self_id or not address:
            raise ValueError("self_id and address must be non-empty")
        self.config = config
        self.id = self_id
        self.address = address
        self.counters = SwimCounters()
        if tags is not None:
            config.with_(tags=tags)  # validates
        self._rng = rng
        self._events: list[ClusterEvent] = []
        self._awareness = Awareness(config.awareness_max_multiplier)
        self._outbox = Outbox(
            self_id, config, self.counters, lambda: config.retransmit_limit(self.num_members)
        )
        self._local = LocalMember(
            self_id, address, dict(config.tags if tags is None else tags), self._outbox.queue
        )
        self._partition = PartitionTracker(self_id, config)
        self._monitor = PeerMonitor(config, self._partition)
        order = ProbeOrder(rng)
        self._members = MemberUpdates(
            config,
            self_id,
            address,
            rng=rng,
            queue=self._outbox.queue,
            order=order,
            monitor=self._monitor,
            partition=self._partition,
            counters=self.counters,
            events=self._events,
        )
        self._sync = StateSync(
            config,
            self._local,
            rng=rng,
            members=self._members,
            outbox=self._outbox,
            counters=self.counters,
            on_update=self._on_update,
            now=now,
        )
        self._prober = Prober(
            config,
            self_id,
            address,
            rng=rng,
            order=order,
            members=self._members,
            monitor=self._monitor,
            awareness=self._awareness,
            outbox=self._outbox,
            counters=self.counters,
            on_unknown=self._sync.sync_unknown,
            now=now,
        )
        self._next_gossip = now + rng.uniform(0.0, config.gossip_interval)
        self._local.announce()

    # -- inputs --------------------------------------------------------------------------------

    def join(self, seeds: Sequence[str], now: float) -> None:
        """Sync state with `seeds` (push-pull), retrying every ``reconnect_interval`` until one
        answers. Seeds equal to this node's own address are skipped."""
        self._sync.join(seeds, now)
        self.tick(now)

    def seed_members(self, members: Iterable[Member], now: float) -> None:
        """Adopt `members` as ALIVE without events or gossip (bootstrapping simulations/tests)."""
        self._members.adopt(members, now)
        self._sync.joined = True

    def leave(self, now: float) -> None:
        """Leave gracefully: gossip that this node left (others report NodeLeft, not NodeFailed).

        Keep driving the node for a few gossip intervals so the news spreads; it no longer
        probes anyone, but still answers probes.
        """
        if self._local.leaving:
            return
        self._local.leaving = True
        self._prober.probe = None
        message = self._local.left_message()
        self._outbox.queue.queue(self.id, message)
        table = self._members.table
        live = table.live
        count = min(len(live), max(self.config.gossip_fanout, 8))
        for member_id in self._rng.sample(live, count):
            self._outbox.send(table.require(member_id).address, [message], piggyback=False)

    def update_tags(self, tags: Mapping[str, str], now: float) -> None:
        """Publish new tags: a fresh incarnation of this node's ``Alive``."""
        self.config.with_(tags=tags)  # validates
        self._local.set_tags(tags)

    def receive(self, sender: str, data: bytes, now: float) -> None:
        """Handle one packet. Malformed or oversized data is counted and dropped, never raised.

        :param sender: the transport's idea of the sender (for diagnostics only; replies go to
            the addresses the messages name).
        """
        self.counters.packets_received += 1
        self._check_stall(now)
        if len(data) > self.config.max_message_bytes:
            self.counters.oversized += 1
            return
        try:
            packet = decode_packet(
                data, max_bytes=self.config.max_message_bytes, max_states=self.config.max_members
            )
        except MessageError:
            self.counters.malformed += 1
            return
        if packet.sender_id == self.id:
            self.counters.malformed += 1
            return
        self._heard_from(packet.sender_id, now)
        # Membership updates first, so a reply sent below already carries their consequences
        # (a refutation rides on the ack of the ping that carried the suspicion). Alive ones
        # before the others: the precedence rules make the result independent of the order,
        # except for what the Dead rule checks (who owns an address now).
        for m in packet.messages:
            if isinstance(m, Alive):
                self._on_update(m, now)
        for m in packet.messages:
            if isinstance(m, Suspect | Dead):
                self._on_update(m, now)
        for m in packet.messages:
            if not isinstance(m, Alive | Suspect | Dead):
                self._on_protocol(packet.sender_id, m, now)

    def tick(self, now: float) -> None:
        """Run every timer that is due at `now`."""
        self._check_stall(now)
        self._prober.tick(now)
        self._members.expire_suspicions(now)
        self._sync.retry_join(now)
        if not self._local.leaving:
            if now >= self._prober.next_probe:
                self._prober.start(now)
            self._sync.tick(now, self._partition.detector.quorum_settled())
        if now >= self._next_gossip:
            self._next_gossip = now + self.config.gossip_interval
            table = self._members.table
            self._outbox.gossip(table.live, lambda m: table.require(m).address, self._rng)
        self._events.extend(
            self._partition.update(
                self._members.table, self._members.gone, self._monitor.unreachable, now
            )
        )

    # -- outputs -------------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        """The next time `tick` has something to do."""
        times = [self._next_gossip if len(self._outbox.queue) else math.inf]
        if not self._local.leaving:
            times += [self._prober.next_probe, self._sync.next_push_pull]
            if self._members.gone:
                times.append(self._sync.next_reconnect)
        probe = self._prober.next_deadline()
        if probe is not None:
            times.append(probe)
        times.extend(self._members.suspicion_deadlines())
        if self._sync.next_join is not None:
            times.append(self._sync.next_join)
        if self._partition.deadline is not None:
            times.append(self._partition.deadline)
        best = min(times)
        return None if best == math.inf else best

    def take_outgoing(self) -> list[tuple[str, bytes]]:
        """Packets to send since the last call: ``(address, data)`` pairs."""
        return self._outbox.take()

    def take_events(self) -> list[ClusterEvent]:
        """Events since the last call, in order."""
        events = self._events[:]
        self._events.clear()
        return events

    # -- views ---------------------------------------------------------------------------------

    @property
    def joined(self) -> bool:
        """True once a state sync with another member completed (or members were seeded)."""
        return self._sync.joined

    @property
    def incarnation(self) -> int:
        return self._local.incarnation

    @property
    def awareness(self) -> int:
        """Lifeguard health score (0 is healthy)."""
        return self._awareness.score

    @property
    def num_members(self) -> int:
        """Live members including this node (the n of the protocol's formulas)."""
        return self._members.num_members

    @property
    def leaving(self) -> bool:
        return self._local.leaving

    def members(self) -> list[Member]:
        """This node first, then every member in the table (failed and left ones included)."""
        return [self._local.to_member(), *(r.to_member() for r in self._members.table)]

    def member(self, member_id: str) -> Member | None:
        if member_id == self.id:
            return self._local.to_member()
        record = self._members.table.get(member_id)
        return record.to_member() if record else None

    def phi(self, member_id: str, now: float) -> float:
        """Phi of `member_id` (0.0 if never heard from, inf once failed or left)."""
        value = self._monitor.phi(member_id, now)
        if value is not None:
            return value
        record = self._members.table.get(member_id)
        return math.inf if record is not None and record.state not in LIVE else 0.0

    @property
    def stable_members(self) -> frozenset[str]:
        """The partition detector's last stable membership (ids, self included)."""
        return self._partition.detector.last_stable

    def has_quorum(self) -> bool:
        """Whether this node sees a majority of the last stable membership (see partition.py)."""
        return self._partition.detector.has_quorum()

    def __repr__(self) -> str:
        return (
            f"SwimNode({self.id!r}, {self.address!r}, members={len(self._members.table)}, "
            f"incarnation={self._local.incarnation}, awareness={self._awareness.score})"
        )

    # -- internals -----------------------------------------------------------------------------

    def _on_update(self, m: Alive | Suspect | Dead, now: float) -> None:
        if m.node_id != self.id:
            self._members.apply(m, now)
        elif self._local.about_me(m):
            self.counters.refutations += 1
            self._awareness.apply_delta(1)

    def _on_protocol(self, sender_id: str, m: Message, now: float) -> None:
        if isinstance(m, PushPull):
            self._sync.on_push_pull(sender_id, m, now)
        else:
            self._prober.on_message(sender_id, m, now)

    def _heard_from(self, member_id: str, now: float) -> None:
        record = self._members.table.get(member_id)
        if record is None or record.state not in LIVE:
            return
        self._monitor.heard_from(member_id, now, self.num_members)

    def _check_stall(self, now: float) -> None:
        if not self._local.leaving:
            self._prober.check_stall(now)
