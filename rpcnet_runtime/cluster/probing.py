"""Probe bookkeeping for `SwimNode`: whom to probe next, the probe in flight, relayed probes.

`ProbeOrder` is memberlist's schedule: a round robin over a list of members shuffled once per
round, so each member is probed by each other member once per round, with new members inserted
at a random place in the rest of the current round. A bounded *priority* list goes first
(suspects to confirm or clear, members whose phi crossed the threshold).

`Relays` holds the probes this node makes on behalf of others (ping-req): the origin to forward
an ack to, or to nack when the target stays silent. It is bounded: the oldest entry goes first.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

__all__ = ["ProbeOrder", "ProbeRound", "Relay", "Relays"]


@dataclass(slots=True)
class ProbeRound:
    """The probe in flight: one per protocol period."""

    target: str
    seq: int
    direct_deadline: float
    """When to give up on the direct ack and send ping-reqs."""
    period_end: float
    """When to give up altogether and suspect the target."""
    indirect_sent: bool = False
    nacks_expected: int = 0
    nacks: int = 0

    def next_deadline(self) -> float:
        return self.period_end if self.indirect_sent else self.direct_deadline


class ProbeOrder:
    """Which member to probe next."""

    def __init__(self, rng: random.Random, max_priority: int = 64) -> None:
        self._rng = rng
        self._max_priority = max_priority
        self._order: list[str] = []
        self._index = 0
        self._priority: deque[str] = deque()

    def reset(self, members: Sequence[str]) -> None:
        """Start a new round over `members`, shuffled."""
        self._order = list(members)
        self._rng.shuffle(self._order)
        self._index = 0

    def insert(self, member_id: str) -> None:
        """Add a member at a random place in what is left of the current round."""
        self._order.insert(self._rng.randint(self._index, len(self._order)), member_id)

    def prioritise(self, member_id: str) -> None:
        """Probe `member_id` before the round-robin members (bounded; duplicates ignored)."""
        if member_id not in self._priority and len(self._priority) < self._max_priority:
            self._priority.append(member_id)

    def next(
        self, live: Sequence[str], probeable: Callable[[str], bool], exclude: str | None = None
    ) -> str | None:
        """The next member to probe: priority first, then round robin over `live`.

        Members for which `probeable` is false are skipped (they failed or left since).
        """
        while self._priority:
            member_id = self._priority.popleft()
            if member_id != exclude and probeable(member_id):
                return member_id
        for _ in range(len(self._order) + len(live) + 1):
            if self._index >= len(self._order):
                self.reset(live)
                if not self._order:
                    return None
            member_id = self._order[self._index]
            self._index += 1
            if probeable(member_id):
                return member_id
        return None


@dataclass(slots=True)
class Relay:
    """A ping-req this node is serving."""

    origin_address: str
    origin_seq: int
    deadline: float
    nack: bool


class Relays:
    """Ping-reqs in progress, keyed by the sequence number of our own ping to the target."""

    def __init__(self, limit: int = 1024) -> None:
        self._limit = limit
        self._by_seq: dict[int, Relay] = {}

    def __len__(self) -> int:
        return len(self._by_seq)

    def add(self, seq: int, relay: Relay) -> None:
        if len(self._by_seq) >= self._limit:
            del self._by_seq[next(iter(self._by_seq))]
        self._by_seq[seq] = relay

    def pop(self, seq: int) -> Relay | None:
        return self._by_seq.pop(seq, None)

    def expire(self, now: float) -> list[Relay]:
        """Remove and return the relays whose deadline passed."""
        due = [seq for seq, r in self._by_seq.items() if now >= r.deadline]
        return [self._by_seq.pop(seq) for seq in due]

    def next_deadline(self) -> float | None:
        return min((r.deadline for r in self._by_seq.values()), default=None)

    def clear(self) -> None:
        self._by_seq.clear()
