"""The member table and its transitions by incarnation number.

Theory of operation. Every member carries an incarnation number that only the member itself
raises (to refute a suspicion, or to publish new tags). Updates about a member are ordered by it:

Rule 1 (alive). ``Alive(i)`` is accepted if the member is unknown, or if ``i`` is greater than
the incarnation we hold, whatever the state: a fresh incarnation refutes a suspicion, revives a
failed member and re-admits a member that left.

Rule 2 (suspect). ``Suspect(i)`` is accepted for an ALIVE member when ``i >= ours``; for a
SUSPECT member it is a confirmation (handled by the suspicion timer, not here); it is ignored for
unknown, failed and left members.

Rule 3 (dead). ``Dead(i)`` (failed, or left when sent by the member itself) is accepted for an
ALIVE or SUSPECT member when ``i >= ours``; it is ignored for unknown, failed or left members.

Each accepted transition yields at most one event, from `EVENTS`: an observer reports each
transition exactly once because a repeated update is no longer accepted. Updates about the local
node never reach this table's rules: the protocol node refutes them instead.

`decide` is the pure rule; `MemberTable` applies it and keeps the indexes the protocol needs (the
list of live members, for O(1) random choice).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Iterator, Mapping
from types import MappingProxyType

from .suspicion import Suspicion
from .types import (
    ClusterEvent,
    Member,
    MemberState,
    NodeFailed,
    NodeJoined,
    NodeLeft,
    NodeRecovered,
)

__all__ = ["EVENTS", "MemberRecord", "MemberTable", "Transition", "Update", "decide"]

_A, _S, _F, _L = MemberState.ALIVE, MemberState.SUSPECT, MemberState.FAILED, MemberState.LEFT
LIVE = frozenset({_A, _S})


class Update(enum.Enum):
    """The kinds of update a member's record can receive."""

    ALIVE = "alive"
    SUSPECT = "suspect"
    FAILED = "failed"
    LEFT = "left"


EVENTS: Mapping[tuple[MemberState | None, MemberState], Callable[[Member], ClusterEvent]] = (
    MappingProxyType(
        {
            (None, _A): NodeJoined,
            (_L, _A): NodeJoined,
            (_F, _A): NodeRecovered,
            (_A, _F): NodeFailed,
            (_S, _F): NodeFailed,
            (_A, _L): NodeLeft,
            (_S, _L): NodeLeft,
        }
    )
)
"""The event an observer reports for each transition (other transitions report nothing)."""


_NO_TAGS: Mapping[str, str] = MappingProxyType({})


def _frozen(tags: Mapping[str, str] | None) -> Mapping[str, str]:
    if not tags:
        return _NO_TAGS
    return tags if isinstance(tags, MappingProxyType) else MappingProxyType(dict(tags))


def decide(
    state: MemberState | None, incarnation: int, update: Update, new_incarnation: int
) -> MemberState | None:
    """The member's next state after `update`, or None when the update is to be ignored.

    `state` is None for an unknown member (then `incarnation` is ignored).
    """
    if update is Update.ALIVE:
        if state is None or new_incarnation > incarnation:
            return _A
        return None
    if state is None or new_incarnation < incarnation:
        return None
    if update is Update.SUSPECT:
        return _S if state is _A else None
    if state in LIVE:
        return _F if update is Update.FAILED else _L
    return None


class MemberRecord:
    """One member's entry; mutable, owned by the table."""

    __slots__ = ("address", "id", "incarnation", "since", "state", "suspicion", "tags")

    def __init__(
        self,
        id: str,
        address: str,
        tags: Mapping[str, str],
        state: MemberState,
        incarnation: int,
        since: float,
    ) -> None:
        self.id = id
        self.address = address
        self.tags: Mapping[str, str] = tags
        self.state = state
        self.incarnation = incarnation
        self.since = since
        """Time of the last state change."""
        self.suspicion: Suspicion | None = None

    def to_member(self) -> Member:
        return Member(self.id, self.address, self.tags, self.state, self.incarnation)

    def __repr__(self) -> str:
        return (
            f"MemberRecord({self.id!r}, {self.address!r}, {self.state.value}, "
            f"incarnation={self.incarnation})"
        )


class Transition:
    """An accepted update: the record after it and its previous state."""

    __slots__ = ("old_state", "record")

    def __init__(self, record: MemberRecord, old_state: MemberState | None) -> None:
        self.record = record
        self.old_state = old_state

    @property
    def event(self) -> ClusterEvent | None:
        """The event an observer reports for this transition, if any."""
        kind = EVENTS.get((self.old_state, self.record.state))
        return kind(self.record.to_member()) if kind else None


class MemberTable:
    """Members other than the local node, by id, with a random-access list of live members."""

    def __init__(self, max_members: int) -> None:
        self.max_members = max_members
        self._records: dict[str, MemberRecord] = {}
        self._live: list[str] = []
        self._live_index: dict[str, int] = {}
        self.rejected_full = 0
        """Updates dropped because the table was full."""

    def __len__(self) -> int:
        return len(self._records)

    def __contains__(self, member_id: object) -> bool:
        return member_id in self._records

    def __iter__(self) -> Iterator[MemberRecord]:
        return iter(self._records.values())

    def get(self, member_id: str) -> MemberRecord | None:
        return self._records.get(member_id)

    def require(self, member_id: str) -> MemberRecord:
        """The record of a member known to be in the table (KeyError otherwise)."""
        return self._records[member_id]

    @property
    def live(self) -> list[str]:
        """Ids of ALIVE and SUSPECT members (do not mutate)."""
        return self._live

    def apply(
        self,
        member_id: str,
        update: Update,
        incarnation: int,
        now: float,
        *,
        address: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> Transition | None:
        """Apply one update by the rules above; None if it was ignored."""
        record = self._records.get(member_id)
        old = record.state if record else None
        new = decide(old, record.incarnation if record else 0, update, incarnation)
        if new is None:
            return None
        if record is None:
            if address is None or len(self._records) >= self.max_members:
                self.rejected_full += address is not None
                return None
            record = MemberRecord(member_id, address, _frozen(tags), new, incarnation, now)
            self._records[member_id] = record
        else:
            if update is Update.ALIVE:
                record.address = address if address is not None else record.address
                record.tags = _frozen(tags) if tags is not None else record.tags
            record.incarnation = incarnation
            if new is not record.state:
                record.state = new
                record.since = now
        if new is not _S:
            record.suspicion = None
        self._index(record)
        return Transition(record, old)

    def adopt(self, members: Iterable[Member], now: float) -> list[MemberRecord]:
        """Add unknown members as ALIVE in bulk, without events (bootstrapping); returns them."""
        added = []
        for m in members:
            if m.id in self._records or len(self._records) >= self.max_members:
                continue
            record = MemberRecord(m.id, m.address, _frozen(m.tags), _A, m.incarnation, now)
            self._records[m.id] = record
            self._live_index[m.id] = len(self._live)
            self._live.append(m.id)
            added.append(record)
        return added

    def clear_suspicion(self, member_id: str, now: float) -> bool:
        """Set a SUSPECT member back to ALIVE at the same incarnation (local evidence only)."""
        record = self._records.get(member_id)
        if record is None or record.state is not _S:
            return False
        record.state = _A
        record.since = now
        record.suspicion = None
        return True

    def remove(self, member_id: str) -> MemberRecord | None:
        """Forget a member entirely (reaping)."""
        record = self._records.pop(member_id, None)
        if record is not None:
            self._index(record, present=False)
        return record

    def _index(self, record: MemberRecord, present: bool = True) -> None:
        live = present and record.state in LIVE
        at = self._live_index.get(record.id)
        if live and at is None:
            self._live_index[record.id] = len(self._live)
            self._live.append(record.id)
        elif not live and at is not None:
            last = self._live.pop()
            del self._live_index[record.id]
            if last != record.id:
                self._live[at] = last
                self._live_index[last] = at
