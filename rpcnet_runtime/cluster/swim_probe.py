"""The probe cycle of a `SwimNode`, and its answers to other members' probes.

One member is pinged per protocol period (``probe_interval`` scaled by awareness): the next of
`ProbeOrder`, priority members first. No ack within the (scaled) ``probe_timeout``: ping-reqs go
to ``indirect_checks`` random members, which nack if the target stays silent, and the target is
pinged once more directly (memberlist's TCP fallback). No ack by the end of the period: the
target is suspected, and the missing nacks raise the awareness score; an answered probe lowers
it, and clears a suspicion of the target locally. A probe of a suspect carries the suspicion
(buddy system), so the suspect refutes first-hand.

As a relay, the node pings the target of a ping-req under a sequence number of its own, forwards
the ack, or nacks a little before the origin's wait ends.

A ping or ping-req from a member missing from the table, and the ack of a relayed ping from a
target missing from it, are handed to `on_unknown` with the sender's address (a state sync with
it, see `StateSync.sync_unknown`).
"""

from __future__ import annotations

import random
from collections import OrderedDict
from collections.abc import Callable

from .awareness import Awareness
from .config import ClusterConfig
from .messages import Ack, Dead, IndirectPing, Message, Nack, Ping, Suspect
from .probing import ProbeOrder, ProbeRound, Relay, Relays
from .state import LIVE, MemberRecord
from .swim_counters import SwimCounters
from .swim_members import MemberUpdates
from .swim_monitor import PeerMonitor
from .swim_outbox import Outbox
from .types import MemberState

__all__ = ["Prober"]

_UNKNOWN_TARGETS = 64
"""Relayed pings to targets missing from the table whose address is kept for their ack."""


class Prober:
    """The probe in flight, the probe schedule and the ping-reqs served for others."""

    def __init__(
        self,
        config: ClusterConfig,
        self_id: str,
        self_address: str,
        *,
        rng: random.Random,
        order: ProbeOrder,
        members: MemberUpdates,
        monitor: PeerMonitor,
        awareness: Awareness,
        outbox: Outbox,
        counters: SwimCounters,
        on_unknown: Callable[[str, str, float], None],
        now: float,
    ) -> None:
        self._config = config
        self._self_id = self_id
        self._self_address = self_address
        self._rng = rng
        self._order = order
        self._members = members
        self._monitor = monitor
        self._awareness = awareness
        self._outbox = outbox
        self._counters = counters
        self.probe: ProbeRound | None = None
        self.relays = Relays()
        self._on_unknown = on_unknown
        self._unknown_targets: OrderedDict[int, str] = OrderedDict()
        """Our seq -> target address, for relayed pings to targets missing from the table."""
        self._seq = rng.randrange(1 << 31)
        self.next_probe = now + rng.uniform(0.0, config.probe_interval)
        """When the next protocol period starts."""

    # -- our probes ----------------------------------------------------------------------------

    def start(self, now: float) -> None:
        """Start a protocol period: check phi, then ping the next member."""
        for member_id in self._monitor.check(now):
            self._order.prioritise(member_id)
        target_id = self._next_target()
        period = self._awareness.scale(self._config.probe_interval)
        self.next_probe = now + period
        if target_id is None:
            return
        record = self._members.table.get(target_id)
        assert record is not None
        seq = self._next_seq()
        messages: list[Message] = [Ping(seq, target_id, self._self_address)]
        if record.state is MemberState.SUSPECT:  # buddy system: tell the suspect directly
            messages.append(Suspect(target_id, record.incarnation, self._self_id))
        self.probe = ProbeRound(
            target_id, seq, now + self._awareness.scale(self._config.probe_timeout), now + period
        )
        self._send(record, messages)

    def tick(self, now: float) -> None:
        """Run the probe's and the relays' timers that are due."""
        probe = self.probe
        if probe is not None:
            if not probe.indirect_sent and now >= probe.direct_deadline:
                self._send_indirect(probe)
            if now >= probe.period_end:
                self._probe_failed(probe, now)
        for relay in self.relays.expire(now):
            if relay.nack:
                self._outbox.send(relay.origin_address, [Nack(relay.origin_seq)])

    def next_deadline(self) -> float | None:
        """The probe's or a relay's next deadline (not the next period's start)."""
        times = [] if self.probe is None else [self.probe.next_deadline()]
        relays = self.relays.next_deadline()
        if relays is not None:
            times.append(relays)
        return min(times, default=None)

    def check_stall(self, now: float) -> None:
        """Notice that this node itself was stalled (SIGSTOP, a blocked event loop).

        The probe timer is re-armed at least every (scaled) protocol period, so being called
        much later than it means this process did not run. Timers that expired meanwhile say
        nothing about the peers: the in-flight probe is abandoned without blame, running
        suspicions are postponed by the stall (the refutations may be waiting unread), and
        the stall counts against local health.
        """
        stall = now - self.next_probe
        if stall <= self._config.stall_threshold:
            return
        self._counters.stalls += 1
        self._awareness.apply_delta(1)
        self.probe = None
        self.relays.clear()
        self._unknown_targets.clear()
        self._members.postpone_suspicions(stall)
        self.next_probe = now

    def _send_indirect(self, probe: ProbeRound) -> None:
        probe.indirect_sent = True
        table = self._members.table
        target = table.get(probe.target)
        if target is None or target.state not in LIVE:
            return
        live = table.live
        count = min(self._config.indirect_checks + 1, len(live))
        relays = [m for m in self._rng.sample(live, count) if m != probe.target]
        for relay_id in relays[: self._config.indirect_checks]:
            relay = table.get(relay_id)
            assert relay is not None
            ping_req = IndirectPing(probe.seq, target.id, target.address, self._self_address, True)
            self._send(relay, [ping_req])
            probe.nacks_expected += 1
        # A second direct ping alongside the indirect ones (memberlist sends it over TCP): one
        # lost datagram on the direct path no longer leads to a suspicion.
        retry: list[Message] = [Ping(probe.seq, target.id, self._self_address)]
        if target.state is MemberState.SUSPECT:
            retry.append(Suspect(target.id, target.incarnation, self._self_id))
        self._send(target, retry)

    def _probe_succeeded(self, probe: ProbeRound, now: float) -> None:
        self.probe = None
        self._awareness.apply_delta(-1)
        self._monitor.acked(probe.target, now)
        if self._members.clear_suspicion(probe.target, now):
            self._counters.suspicions_cleared += 1

    def _probe_failed(self, probe: ProbeRound, now: float) -> None:
        self.probe = None
        missing = probe.nacks_expected - probe.nacks
        self._awareness.apply_delta(missing if probe.nacks_expected else 1)
        record = self._members.table.get(probe.target)
        if record is not None and record.state in LIVE:
            self._members.apply_suspect(Suspect(record.id, record.incarnation, self._self_id), now)

    def _next_target(self) -> str | None:
        table = self._members.table

        def probeable(member_id: str) -> bool:
            record = table.get(member_id)
            return record is not None and record.state in LIVE

        current = self.probe.target if self.probe else None
        return self._order.next(table.live, probeable, exclude=current)

    # -- probe messages ------------------------------------------------------------------------

    def on_message(self, sender_id: str, m: Message, now: float) -> None:
        """Handle a ping, ping-req, ack or nack (other messages are ignored)."""
        if isinstance(m, Ping):
            self._answer_ping(sender_id, m)
            self._on_unknown(sender_id, m.source_address, now)
        elif isinstance(m, IndirectPing):
            self._serve_ping_req(m, now)
            self._on_unknown(sender_id, m.source_address, now)
        elif isinstance(m, Ack):
            if self.probe is not None and m.seq == self.probe.seq:
                self._probe_succeeded(self.probe, now)
            elif (relay := self.relays.pop(m.seq)) is not None:
                self._outbox.send(relay.origin_address, [Ack(relay.origin_seq)])
                target_address = self._unknown_targets.pop(m.seq, None)
                if target_address is not None:
                    self._on_unknown(sender_id, target_address, now)
            else:
                self._counters.stale_acks += 1
        elif isinstance(m, Nack):
            if self.probe is not None and m.seq == self.probe.seq:
                self.probe.nacks += 1
            else:
                self._counters.stale_acks += 1

    def _answer_ping(self, sender_id: str, m: Ping) -> None:
        if m.target_id != self._self_id:
            self._counters.misdirected += 1
            return
        reply: list[Message] = [Ack(m.seq)]
        prober = self._members.table.get(sender_id)
        if prober is not None and prober.state is MemberState.FAILED:
            # It does not know it was declared failed: tell it, so it refutes now.
            reply.append(Dead(prober.id, prober.incarnation, self._self_id))
        self._outbox.send(m.source_address, reply)

    def _serve_ping_req(self, m: IndirectPing, now: float) -> None:
        if m.target_id == self._self_id:
            self._outbox.send(m.source_address, [Ack(m.seq)])
            return
        seq = self._next_seq()
        # Nack a little before the origin's own wait ends, so the nack arrives in time.
        deadline = now + 0.8 * self._config.probe_timeout
        self.relays.add(seq, Relay(m.source_address, m.seq, deadline, m.nack))
        if m.target_id not in self._members.table:  # keep its address for its ack
            if len(self._unknown_targets) >= _UNKNOWN_TARGETS:
                self._unknown_targets.popitem(last=False)
            self._unknown_targets[seq] = m.target_address
        self._outbox.send(m.target_address, [Ping(seq, m.target_id, self._self_address)])

    def _next_seq(self) -> int:
        self._seq = (self._seq + 1) & 0x7FFF_FFFF_FFFF_FFFF
        return self._seq

    def _send(self, record: MemberRecord, messages: list[Message]) -> None:
        self._outbox.send(record.address, messages)
