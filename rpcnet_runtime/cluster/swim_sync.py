"""State sync (push-pull) of a `SwimNode`: joining, anti-entropy and reconnecting partitions.

``join`` sends the whole member table to the seeds and retries every ``reconnect_interval``
until one answers. Afterwards one random live member is synced every ``push_pull_interval``
(scaled with n), and one random *failed* member every ``reconnect_interval`` (scaled with n),
so the sides of a healed partition merge again (a member that sees itself failed in the other's
state refutes). Reaping of failed and left members runs on the reconnect timer too. In a
received state a failed or suspect member is merged as a suspicion (memberlist's rule).

A probe from a member missing from the table (``sync_unknown``) starts a sync with it at once,
rate-limited by `UnknownSenders`. Its answer is merged like any other state, by incarnation:
a member that left or failed is not revived by it, only one that is running answers at all.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

from .config import ClusterConfig
from .messages import Alive, Dead, MemberSnapshot, PushPull, Suspect
from .swim_counters import SwimCounters
from .swim_local import LocalMember
from .swim_members import MemberUpdates
from .swim_outbox import Outbox
from .swim_unknown import UnknownSenders
from .types import MemberState

__all__ = ["StateSync"]


class StateSync:
    """Join retries and the periodic push-pull timers.

    :param on_update: handles each member state received (updates about this node included).
    """

    def __init__(
        self,
        config: ClusterConfig,
        local: LocalMember,
        *,
        rng: random.Random,
        members: MemberUpdates,
        outbox: Outbox,
        counters: SwimCounters,
        on_update: Callable[[Alive | Suspect | Dead, float], None],
        now: float,
    ) -> None:
        self._config = config
        self._local = local
        self._rng = rng
        self._members = members
        self._outbox = outbox
        self._counters = counters
        self._on_update = on_update
        self._unknown = UnknownSenders(
            config.unknown_sender_sync_interval, config.unknown_sender_syncs
        )
        self.next_push_pull = now + config.push_pull_interval
        self.next_reconnect = now + config.reconnect_interval
        self._seeds: tuple[str, ...] = ()
        self.next_join: float | None = None
        self.joined = False

    def join(self, seeds: Sequence[str], now: float) -> None:
        """Sync with `seeds` (other than this node's address) from `now` until one answers."""
        self._seeds = tuple(s for s in seeds if s != self._local.address)
        self.next_join = now if self._seeds else None

    def retry_join(self, now: float) -> None:
        """Send the state to every seed if a join attempt is due."""
        if self.next_join is not None and now >= self.next_join:
            self.next_join = now + self._config.reconnect_interval
            for seed in self._seeds:
                self._outbox.send(seed, [self.push_pull(join=True)], piggyback=False)

    def tick(self, now: float, quorum_settled: bool) -> None:
        """The periodic syncs: with a random live member, and reaping plus reconnecting."""
        n = self._members.num_members
        table = self._members.table
        if now >= self.next_push_pull:
            self.next_push_pull = now + self._config.push_pull_interval_for(n)
            if table.live:
                target = table.require(self._rng.choice(table.live))
                self._outbox.send(target.address, [self.push_pull()], piggyback=False)
        if now >= self.next_reconnect:
            self.next_reconnect = now + self._config.reconnect_interval_for(n)
            self._members.reap(now, quorum_settled)
            failed = self._members.failed()
            if failed:
                record = table.require(self._rng.choice(failed))
                self._outbox.send(record.address, [self.push_pull()], piggyback=False)

    def sync_unknown(self, sender_id: str, address: str, now: float) -> None:
        """`sender_id`, at `address`, probed us or answered our relayed probe: if it is not in
        the table (nor this node), send it our state, so its answer teaches us about it."""
        if (
            sender_id in self._members.table
            or sender_id == self._local.id
            or address == self._local.address
            or self._local.leaving
            or self._config.unknown_sender_syncs == 0
        ):
            return
        if not self._unknown.allow(sender_id, now):
            self._counters.unknown_syncs_limited += 1
            return
        self._counters.unknown_syncs += 1
        self._outbox.send(address, [self.push_pull()], piggyback=False)

    def push_pull(self, *, join: bool = False, response: bool = False) -> PushPull:
        """This node's whole state: itself first, then every member in the table."""
        states = [self._local.snapshot()]
        states.extend(
            MemberSnapshot(r.id, r.address, r.tags, r.state, r.incarnation)
            for r in self._members.table
        )
        return PushPull(tuple(states), self._local.address, response, join)

    def on_push_pull(self, sender_id: str, m: PushPull, now: float) -> None:
        """Merge a received state; answer a request with ours."""
        for s in m.states:
            if s.state is MemberState.ALIVE:
                self._on_update(Alive(s.node_id, s.incarnation, s.address, s.tags), now)
            elif s.state is MemberState.LEFT:
                self._on_update(Dead(s.node_id, s.incarnation, s.node_id), now)
            else:  # a remote failure is only a suspicion here (memberlist's rule)
                self._on_update(Suspect(s.node_id, s.incarnation, sender_id), now)
        if m.is_response:
            self.joined = True
            self.next_join = None
        else:
            self._outbox.send(m.reply_address, [self.push_pull(response=True)], piggyback=False)
