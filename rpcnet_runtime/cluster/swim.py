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
while it could not read the refutations (see `_check_stall`).

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
merge again (a member that sees itself failed in the other's state refutes).
"""

from __future__ import annotations

import math
import random
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from .awareness import Awareness
from .broadcast import TransmitLimitedQueue
from .config import ClusterConfig
from .failure_detector import PhiAccrualDetector
from .messages import (
    Ack,
    Alive,
    Dead,
    IndirectPing,
    MemberSnapshot,
    Message,
    MessageError,
    Nack,
    Ping,
    PushPull,
    Suspect,
    decode_packet,
    encode_packet,
    encoded_size,
)
from .partition import PartitionDetector
from .probing import ProbeOrder, ProbeRound, Relay, Relays
from .state import LIVE, MemberRecord, MemberTable, Transition, Update
from .suspicion import Suspicion
from .types import ClusterEvent, Member, MemberState

__all__ = ["SwimCounters", "SwimNode"]

_PACKET_OVERHEAD = 16


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
    """Times this node noticed it had not run for a while (see `SwimNode._check_stall`)."""


class SwimNode:
    """One node's view of the cluster and its share of the SWIM protocol."""

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
        self._tags = dict(config.tags if tags is None else tags)
        self._incarnation = 0
        self._leaving = False
        self._rng = rng
        self._table = MemberTable(config.max_members)
        self._by_address: dict[str, str] = {}
        self._queue = TransmitLimitedQueue(lambda: config.retransmit_limit(self.num_members))
        self._awareness = Awareness(config.awareness_max_multiplier)
        self._detectors: dict[str, PhiAccrualDetector] = {}
        self._heard: OrderedDict[str, None] = OrderedDict()
        self._unreachable: set[str] = set()
        self._last_ack: dict[str, float] = {}
        self._suspects: set[str] = set()
        self._gone: dict[str, float] = {}  # FAILED or LEFT member -> since
        self._partition = PartitionDetector(self_id, stable_after=config.partition_stable_after)
        self._partition_dirty = True
        self._partition_deadline: float | None = None
        self._outgoing: list[tuple[str, bytes]] = []
        self._events: list[ClusterEvent] = []
        self._probe: ProbeRound | None = None
        self._relays = Relays()
        self._order = ProbeOrder(rng)
        self._seq = rng.randrange(1 << 31)
        self._next_probe = now + rng.uniform(0.0, config.probe_interval)
        self._next_gossip = now + rng.uniform(0.0, config.gossip_interval)
        self._next_push_pull = now + config.push_pull_interval
        self._next_reconnect = now + config.reconnect_interval
        self._seeds: tuple[str, ...] = ()
        self._next_join: float | None = None
        self.joined = False
        """True once a state sync with another member completed (or members were seeded)."""
        self._queue.queue(self_id, self._alive_message())

    # -- inputs --------------------------------------------------------------------------------

    def join(self, seeds: Sequence[str], now: float) -> None:
        """Sync state with `seeds` (push-pull), retrying every ``reconnect_interval`` until one
        answers. Seeds equal to this node's own address are skipped."""
        self._seeds = tuple(s for s in seeds if s != self.address)
        self._next_join = now if self._seeds else None
        self.tick(now)

    def seed_members(self, members: Iterable[Member], now: float) -> None:
        """Adopt `members` as ALIVE without events or gossip (bootstrapping simulations/tests)."""
        for record in self._table.adopt((m for m in members if m.id != self.id), now):
            self._by_address[record.address] = record.id
        self._order.reset(self._table.live)
        self.joined = True
        self._partition_dirty = True

    def leave(self, now: float) -> None:
        """Leave gracefully: gossip that this node left (others report NodeLeft, not NodeFailed).

        Keep driving the node for a few gossip intervals so the news spreads; it no longer
        probes anyone, but still answers probes.
        """
        if self._leaving:
            return
        self._leaving = True
        self._probe = None
        message = Dead(self.id, self._incarnation, self.id)
        self._queue.queue(self.id, message)
        live = self._table.live
        count = min(len(live), max(self.config.gossip_fanout, 8))
        for member_id in self._rng.sample(live, count):
            self._send(self._table.require(member_id), [message], piggyback=False)

    def update_tags(self, tags: Mapping[str, str], now: float) -> None:
        """Publish new tags: a fresh incarnation of this node's ``Alive``."""
        self.config.with_(tags=tags)  # validates
        self._tags = dict(tags)
        self._incarnation += 1
        self._queue.queue(self.id, self._alive_message())

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
        probe = self._probe
        if probe is not None:
            if not probe.indirect_sent and now >= probe.direct_deadline:
                self._send_indirect(probe)
            if now >= probe.period_end:
                self._probe_failed(probe, now)
        for relay in self._relays.expire(now):
            if relay.nack:
                self._send_to(relay.origin_address, [Nack(relay.origin_seq)])
        for member_id in [m for m in self._suspects if self._suspicion_due(m, now)]:
            record = self._table.get(member_id)
            if record is not None:
                self._apply_dead(Dead(member_id, record.incarnation, self.id), now)
        if self._next_join is not None and now >= self._next_join:
            self._next_join = now + self.config.reconnect_interval
            for seed in self._seeds:
                self._send_to(seed, [self._push_pull(join=True)], piggyback=False)
        if not self._leaving:
            if now >= self._next_probe:
                self._start_probe(now)
            if now >= self._next_push_pull:
                self._next_push_pull = now + self.config.push_pull_interval_for(self.num_members)
                if self._table.live:
                    target = self._table.require(self._rng.choice(self._table.live))
                    self._send(target, [self._push_pull()], piggyback=False)
            if now >= self._next_reconnect:
                self._next_reconnect = now + self.config.reconnect_interval_for(self.num_members)
                self._reconnect(now)
        if now >= self._next_gossip:
            self._next_gossip = now + self.config.gossip_interval
            self._gossip()
        self._update_partition(now)

    # -- outputs -------------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        """The next time `tick` has something to do."""
        times = [self._next_gossip if len(self._queue) else math.inf]
        if not self._leaving:
            times += [self._next_probe, self._next_push_pull]
            if self._gone:
                times.append(self._next_reconnect)
        if self._probe is not None:
            times.append(self._probe.next_deadline())
        relays = self._relays.next_deadline()
        if relays is not None:
            times.append(relays)
        for member_id in self._suspects:
            record = self._table.get(member_id)
            if record is not None and record.suspicion is not None:
                times.append(record.suspicion.deadline)
        if self._next_join is not None:
            times.append(self._next_join)
        if self._partition_deadline is not None:
            times.append(self._partition_deadline)
        best = min(times)
        return None if best == math.inf else best

    def take_outgoing(self) -> list[tuple[str, bytes]]:
        """Packets to send since the last call: ``(address, data)`` pairs."""
        out, self._outgoing = self._outgoing, []
        return out

    def take_events(self) -> list[ClusterEvent]:
        """Events since the last call, in order."""
        events, self._events = self._events, []
        return events

    # -- views ---------------------------------------------------------------------------------

    @property
    def incarnation(self) -> int:
        return self._incarnation

    @property
    def awareness(self) -> int:
        """Lifeguard health score (0 is healthy)."""
        return self._awareness.score

    @property
    def num_members(self) -> int:
        """Live members including this node (the n of the protocol's formulas)."""
        return len(self._table.live) + 1

    @property
    def leaving(self) -> bool:
        return self._leaving

    def members(self) -> list[Member]:
        """This node first, then every member in the table (failed and left ones included)."""
        me = Member(
            self.id,
            self.address,
            self._tags,
            MemberState.LEFT if self._leaving else MemberState.ALIVE,
            self._incarnation,
        )
        return [me, *(r.to_member() for r in self._table)]

    def member(self, member_id: str) -> Member | None:
        if member_id == self.id:
            return self.members()[0]
        record = self._table.get(member_id)
        return record.to_member() if record else None

    def phi(self, member_id: str, now: float) -> float:
        """Phi of `member_id` (0.0 if never heard from, inf once failed or left)."""
        detector = self._detectors.get(member_id)
        if detector is not None:
            return detector.phi(now)
        record = self._table.get(member_id)
        return math.inf if record is not None and record.state not in LIVE else 0.0

    @property
    def stable_members(self) -> frozenset[str]:
        """The partition detector's last stable membership (ids, self included)."""
        return self._partition.last_stable

    def has_quorum(self) -> bool:
        """Whether this node sees a majority of the last stable membership (see partition.py)."""
        return self._partition.has_quorum()

    def __repr__(self) -> str:
        return (
            f"SwimNode({self.id!r}, {self.address!r}, members={len(self._table)}, "
            f"incarnation={self._incarnation}, awareness={self._awareness.score})"
        )

    # -- protocol messages ---------------------------------------------------------------------

    def _on_protocol(self, sender_id: str, m: Message, now: float) -> None:
        if isinstance(m, Ping):
            if m.target_id != self.id:
                self.counters.misdirected += 1
                return
            reply: list[Message] = [Ack(m.seq)]
            prober = self._table.get(sender_id)
            if prober is not None and prober.state is MemberState.FAILED:
                # It does not know it was declared failed: tell it, so it refutes now.
                reply.append(Dead(prober.id, prober.incarnation, self.id))
            self._send_to(m.source_address, reply)
        elif isinstance(m, IndirectPing):
            if m.target_id == self.id:
                self._send_to(m.source_address, [Ack(m.seq)])
                return
            seq = self._next_seq()
            # Nack a little before the origin's own wait ends, so the nack arrives in time.
            deadline = now + 0.8 * self.config.probe_timeout
            self._relays.add(seq, Relay(m.source_address, m.seq, deadline, m.nack))
            self._send_to(m.target_address, [Ping(seq, m.target_id, self.address)])
        elif isinstance(m, Ack):
            if self._probe is not None and m.seq == self._probe.seq:
                self._probe_succeeded(self._probe, now)
            elif (relay := self._relays.pop(m.seq)) is not None:
                self._send_to(relay.origin_address, [Ack(relay.origin_seq)])
            else:
                self.counters.stale_acks += 1
        elif isinstance(m, Nack):
            if self._probe is not None and m.seq == self._probe.seq:
                self._probe.nacks += 1
            else:
                self.counters.stale_acks += 1
        elif isinstance(m, PushPull):
            self._on_push_pull(sender_id, m, now)

    def _start_probe(self, now: float) -> None:
        self._check_phi(now)
        target_id = self._next_target()
        period = self._awareness.scale(self.config.probe_interval)
        self._next_probe = now + period
        if target_id is None:
            return
        record = self._table.get(target_id)
        assert record is not None
        seq = self._next_seq()
        messages: list[Message] = [Ping(seq, target_id, self.address)]
        if record.state is MemberState.SUSPECT:  # buddy system: tell the suspect directly
            messages.append(Suspect(target_id, record.incarnation, self.id))
        self._probe = ProbeRound(
            target_id, seq, now + self._awareness.scale(self.config.probe_timeout), now + period
        )
        self._send(record, messages)

    def _send_indirect(self, probe: ProbeRound) -> None:
        probe.indirect_sent = True
        target = self._table.get(probe.target)
        if target is None or target.state not in LIVE:
            return
        live = self._table.live
        count = min(self.config.indirect_checks + 1, len(live))
        relays = [m for m in self._rng.sample(live, count) if m != probe.target]
        for relay_id in relays[: self.config.indirect_checks]:
            relay = self._table.get(relay_id)
            assert relay is not None
            ping_req = IndirectPing(probe.seq, target.id, target.address, self.address, True)
            self._send(relay, [ping_req])
            probe.nacks_expected += 1
        # A second direct ping alongside the indirect ones (memberlist sends it over TCP): one
        # lost datagram on the direct path no longer leads to a suspicion.
        retry: list[Message] = [Ping(probe.seq, target.id, self.address)]
        if target.state is MemberState.SUSPECT:
            retry.append(Suspect(target.id, target.incarnation, self.id))
        self._send(target, retry)

    def _probe_succeeded(self, probe: ProbeRound, now: float) -> None:
        self._probe = None
        self._awareness.apply_delta(-1)
        self._last_ack[probe.target] = now
        if self._table.clear_suspicion(probe.target, now):
            self._suspects.discard(probe.target)
            self.counters.suspicions_cleared += 1

    def _probe_failed(self, probe: ProbeRound, now: float) -> None:
        self._probe = None
        missing = probe.nacks_expected - probe.nacks
        self._awareness.apply_delta(missing if probe.nacks_expected else 1)
        record = self._table.get(probe.target)
        if record is not None and record.state in LIVE:
            self._apply_suspect(Suspect(record.id, record.incarnation, self.id), now)

    def _next_target(self) -> str | None:
        table = self._table

        def probeable(member_id: str) -> bool:
            record = table.get(member_id)
            return record is not None and record.state in LIVE

        current = self._probe.target if self._probe else None
        return self._order.next(table.live, probeable, exclude=current)

    def _check_phi(self, now: float) -> None:
        threshold = self.config.phi_threshold
        for i, member_id in enumerate(self._heard):
            if i >= self.config.phi_checks_per_period:
                break
            if self._detectors[member_id].phi(now) >= threshold:
                if member_id not in self._unreachable:
                    self._unreachable.add(member_id)
                    self._partition_dirty = True
                self._order.prioritise(member_id)

    def _heard_from(self, member_id: str, now: float) -> None:
        record = self._table.get(member_id)
        if record is None or record.state not in LIVE:
            return
        detector = self._detectors.get(member_id)
        if detector is None:
            n = self.num_members
            detector = PhiAccrualDetector(
                threshold=self.config.phi_threshold,
                max_sample_size=self.config.phi_max_sample_size,
                min_std_deviation=self.config.phi_min_std_deviation,
                first_heartbeat_estimate=self.config.probe_interval * max(1.0, (n - 1) / 2),
            )
            self._detectors[member_id] = detector
        detector.heartbeat(now)
        self._heard[member_id] = None
        self._heard.move_to_end(member_id)
        if member_id in self._unreachable:
            self._unreachable.discard(member_id)
            self._partition_dirty = True

    def _check_stall(self, now: float) -> None:
        """Notice that this node itself was stalled (SIGSTOP, a blocked event loop).

        The probe timer is re-armed at least every (scaled) protocol period, so being called
        much later than it means this process did not run. Timers that expired meanwhile say
        nothing about the peers: the in-flight probe is abandoned without blame, running
        suspicions are postponed by the stall (the refutations may be waiting unread), and
        the stall counts against local health.
        """
        if self._leaving:
            return
        stall = now - self._next_probe
        if stall <= self.config.stall_threshold:
            return
        self.counters.stalls += 1
        self._awareness.apply_delta(1)
        self._probe = None
        self._relays.clear()
        for member_id in self._suspects:
            record = self._table.get(member_id)
            if record is not None and record.suspicion is not None:
                record.suspicion.postpone(stall)
        self._next_probe = now

    def _gossip(self) -> None:
        if not self._queue or not self._table.live:
            return
        live = self._table.live
        for member_id in self._rng.sample(live, min(self.config.gossip_fanout, len(live))):
            record = self._table.get(member_id)
            assert record is not None
            updates = self._queue.take(self.config.packet_budget, _PACKET_OVERHEAD)
            if not updates:
                return
            self._send_to(record.address, updates, piggyback=False)

    def _reconnect(self, now: float) -> None:
        retention = self.config.failed_member_retention
        reap_after = self.config.failed_member_reap_after
        # Only a node with quorum reaps failed members early: a minority keeps them as
        # reconnect targets (so the sides merge on heal) and its stable membership is frozen.
        quorum = self._partition.quorum_settled()
        for member_id, since in list(self._gone.items()):
            record = self._table.require(member_id)
            age = now - since
            if (
                age > retention
                or self._by_address.get(record.address) != member_id  # a restart took over
                or (quorum and age > reap_after and record.state is MemberState.FAILED)
            ):
                self._forget(member_id)
        failed = [m for m in self._gone if self._table.require(m).state is MemberState.FAILED]
        if failed:
            record = self._table.require(self._rng.choice(failed))
            self._send(record, [self._push_pull()], piggyback=False)

    # -- state sync ----------------------------------------------------------------------------

    def _push_pull(self, *, join: bool = False, response: bool = False) -> PushPull:
        states = [
            MemberSnapshot(
                self.id,
                self.address,
                self._tags,
                MemberState.LEFT if self._leaving else MemberState.ALIVE,
                self._incarnation,
            )
        ]
        states.extend(
            MemberSnapshot(r.id, r.address, r.tags, r.state, r.incarnation) for r in self._table
        )
        return PushPull(tuple(states), self.address, response, join)

    def _on_push_pull(self, sender_id: str, m: PushPull, now: float) -> None:
        for s in m.states:
            if s.state is MemberState.ALIVE:
                self._on_update(Alive(s.node_id, s.incarnation, s.address, s.tags), now)
            elif s.state is MemberState.LEFT:
                self._on_update(Dead(s.node_id, s.incarnation, s.node_id), now)
            else:  # a remote failure is only a suspicion here (memberlist's rule)
                self._on_update(Suspect(s.node_id, s.incarnation, sender_id), now)
        if m.is_response:
            self.joined = True
            self._next_join = None
        else:
            self._send_to(m.reply_address, [self._push_pull(response=True)], piggyback=False)

    # -- membership updates --------------------------------------------------------------------

    def _on_update(self, m: Alive | Suspect | Dead, now: float) -> None:
        if m.node_id == self.id:
            self._about_me(m)
        elif isinstance(m, Alive):
            self._apply_alive(m, now)
        elif isinstance(m, Suspect):
            self._apply_suspect(m, now)
        elif m.is_leave or not self._answered_recently(m, now):
            self._apply_dead(m, now)
        else:
            self.counters.dead_downgraded += 1
            self._apply_suspect(Suspect(m.node_id, m.incarnation, m.from_id), now)
            self._order.prioritise(m.node_id)

    def _about_me(self, m: Alive | Suspect | Dead) -> None:
        if self._leaving:
            if not isinstance(m, Dead):
                self._queue.queue(self.id, Dead(self.id, self._incarnation, self.id))
            return
        if isinstance(m, Alive):
            if m.incarnation < self._incarnation or (
                m.incarnation == self._incarnation
                and m.address == self.address
                and dict(m.tags) == self._tags
            ):
                return
        elif m.incarnation < self._incarnation:
            # A stale suspicion: whoever holds it missed our refutation. Gossip it again.
            if self._queue.pending(self.id) is None:
                self._queue.queue(self.id, self._alive_message())
            return
        self._incarnation = max(self._incarnation, m.incarnation) + 1
        self.counters.refutations += 1
        self._awareness.apply_delta(1)
        self._queue.queue(self.id, self._alive_message())

    def _apply_alive(self, m: Alive, now: float) -> None:
        if m.address == self.address:
            # Another id at our own address is the process we replaced: it is gone for certain.
            self._queue.queue(m.node_id, Dead(m.node_id, m.incarnation, self.id))
            return
        other = self._by_address.get(m.address)
        if other is not None and other != m.node_id and m.node_id not in self._table:
            old = self._table.get(other)
            if old is not None and old.state not in LIVE:
                self._forget(other)  # a restarted node took over this address
        t = self._table.apply(
            m.node_id, Update.ALIVE, m.incarnation, now, address=m.address, tags=m.tags
        )
        if t is None:
            return
        if t.old_state is None:
            self._admitted(t.record)
        else:
            self._by_address[m.address] = m.node_id
            self._suspects.discard(m.node_id)
            self._gone.pop(m.node_id, None)
            if t.old_state not in LIVE:
                self._order.insert(m.node_id)
        self._transitioned(t, m)

    def _apply_suspect(self, m: Suspect, now: float) -> None:
        record = self._table.get(m.node_id)
        if record is None or m.incarnation < record.incarnation:
            return
        if record.suspicion is not None:
            if record.suspicion.confirm(m.from_id):
                self._queue.queue(m.node_id, m)
            return
        t = self._table.apply(m.node_id, Update.SUSPECT, m.incarnation, now)
        if t is None:
            return
        n = self.num_members
        c = self.config
        t.record.suspicion = Suspicion(
            m.from_id, c.expected_confirmations(n), c.suspicion_min(n), c.suspicion_max(n), now
        )
        self._suspects.add(m.node_id)
        if m.from_id != self.id and self._rng.random() * n < c.early_probers:
            self._order.prioritise(m.node_id)
        self._transitioned(t, m)

    def _apply_dead(self, m: Dead, now: float) -> None:
        update = Update.LEFT if m.is_leave else Update.FAILED
        t = self._table.apply(m.node_id, update, m.incarnation, now)
        if t is None:
            return
        self._suspects.discard(m.node_id)
        self._gone[m.node_id] = now
        self._drop_monitoring(m.node_id)
        self._transitioned(t, m)

    def _transitioned(self, t: Transition, m: Alive | Suspect | Dead) -> None:
        self._queue.queue(m.node_id, m)
        if t.old_state is None or (t.old_state in LIVE) != (t.record.state in LIVE):
            self._partition_dirty = True
        if t.event is not None:
            self._events.append(t.event)

    def _answered_recently(self, m: Dead, now: float) -> bool:
        record = self._table.get(m.node_id)
        last = self._last_ack.get(m.node_id)
        return (
            record is not None
            and record.state in LIVE
            and m.incarnation == record.incarnation
            and last is not None
            and now - last < self.config.suspicion_min(self.num_members)
            and self._by_address.get(record.address) == record.id  # not replaced by a restart
        )

    def _suspicion_due(self, member_id: str, now: float) -> bool:
        record = self._table.get(member_id)
        if record is None or record.suspicion is None:
            self._suspects.discard(member_id)
            return False
        return now >= record.suspicion.deadline

    # -- bookkeeping ---------------------------------------------------------------------------

    def _admitted(self, record: MemberRecord) -> None:
        self._by_address[record.address] = record.id
        self._order.insert(record.id)

    def _forget(self, member_id: str) -> None:
        record = self._table.remove(member_id)
        self._gone.pop(member_id, None)
        self._suspects.discard(member_id)
        self._last_ack.pop(member_id, None)
        self._queue.discard(member_id)
        self._drop_monitoring(member_id)
        if record is not None and self._by_address.get(record.address) == member_id:
            del self._by_address[record.address]
        self._partition_dirty = True

    def _drop_monitoring(self, member_id: str) -> None:
        self._detectors.pop(member_id, None)
        self._heard.pop(member_id, None)
        self._unreachable.discard(member_id)

    def _update_partition(self, now: float) -> None:
        deadline = self._partition_deadline
        if not self._partition_dirty and (deadline is None or now < deadline):
            return
        # A member failed for partition_reap_after no longer counts as known to the partition
        # detector, which drops it from its stable set only while this node has quorum.
        reap_after = self.config.partition_reap_after
        next_reap = math.inf
        reaped: set[str] = set()
        for member_id, since in self._gone.items():
            if self._table.require(member_id).state is MemberState.FAILED:
                if now >= since + reap_after:
                    reaped.add(member_id)
                else:
                    next_reap = min(next_reap, since + reap_after)
        unreachable = self._unreachable
        alive = frozenset(m for m in self._table.live if m not in unreachable) | {self.id}
        known = frozenset(
            r.id for r in self._table if r.state is not MemberState.LEFT and r.id not in reaped
        )
        self._partition_dirty = False
        self._events.extend(self._partition.observe(alive, known | {self.id}, now))
        detector = self._partition.next_deadline()
        best = min(next_reap, math.inf if detector is None else detector)
        self._partition_deadline = None if best == math.inf else best

    def _alive_message(self) -> Alive:
        return Alive(self.id, self._incarnation, self.address, self._tags)

    def _next_seq(self) -> int:
        self._seq = (self._seq + 1) & 0x7FFF_FFFF_FFFF_FFFF
        return self._seq

    def _send(self, record: MemberRecord, messages: list[Message], piggyback: bool = True) -> None:
        self._send_to(record.address, messages, piggyback=piggyback)

    def _send_to(self, address: str, messages: list[Message], piggyback: bool = True) -> None:
        if piggyback:
            room = self.config.packet_budget - sum(encoded_size(m) for m in messages)
            messages = messages + self._queue.take(room, _PACKET_OVERHEAD)
        data = encode_packet(self.id, messages)
        self.counters.packets_sent += 1
        self.counters.bytes_sent += len(data)
        self._outgoing.append((address, data))
