"""A transmit-limited broadcast queue: membership updates waiting to be piggybacked.

Theory of operation (after memberlist's ``queue.go``): every update about a member (alive,
suspect, dead) is queued under that member's id. A newer update about the same member replaces
the queued one, since it supersedes it. Each time a packet leaves, `take` fills the space left in
it with queued updates, those sent the fewest times first and, among equals, the newest first, so
fresh news spreads before old news is repeated. An update is dropped once it has been sent
``retransmit_limit(n)`` times (``retransmit_mult * ceil(log10(n + 1))`` for n members): enough
for epidemic dissemination to reach everyone with high probability, and no more. The queue holds
at most one update per member, so it is bounded by the member table.

Updates live in buckets by transmit count; a bucket is an insertion-ordered dict, so iterating it
backwards gives the newest first without sorting.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .messages import Message, encoded_size

__all__ = ["TransmitLimitedQueue"]


@dataclass(slots=True)
class _Item:
    key: str
    message: Message
    size: int
    transmits: int
    order: int


class TransmitLimitedQueue:
    """Queued updates, each sent at most `limit()` times."""

    def __init__(self, limit: Callable[[], int]) -> None:
        """:param limit: current retransmit limit (it grows with the cluster size)."""
        self._limit = limit
        self._by_key: dict[str, _Item] = {}
        self._buckets: dict[int, dict[int, _Item]] = {}
        self._order = 0

    def __len__(self) -> int:
        return len(self._by_key)

    def queue(self, key: str, message: Message) -> None:
        """Queue `message` about member `key`, replacing any older update about it."""
        self._discard(key)
        self._order += 1
        item = _Item(key, message, encoded_size(message), 0, self._order)
        self._by_key[key] = item
        self._buckets.setdefault(0, {})[item.order] = item

    def pending(self, key: str) -> Message | None:
        """The update queued about `key`, if any."""
        item = self._by_key.get(key)
        return item.message if item else None

    def discard(self, key: str) -> None:
        """Forget the update queued about `key`."""
        self._discard(key)

    def take(self, budget: int, overhead: int = 0) -> list[Message]:
        """Updates fitting in `budget` bytes (each costing its size plus `overhead`).

        Each returned update counts as sent once more; those that reached the limit are dropped.
        """
        if not self._by_key:
            return []
        limit = self._limit()
        chosen: list[_Item] = []
        room = budget
        for transmits in sorted(self._buckets):
            for item in reversed(self._buckets[transmits].values()):
                cost = item.size + overhead
                if cost <= room:
                    chosen.append(item)
                    room -= cost
                if room < 16:
                    break
            if room < 16:
                break
        for item in chosen:
            self._remove_from_bucket(item)
            item.transmits += 1
            if item.transmits >= limit:
                del self._by_key[item.key]
            else:
                self._buckets.setdefault(item.transmits, {})[item.order] = item
        return [item.message for item in chosen]

    def transmits(self, key: str) -> int | None:
        """How many times the update about `key` was sent, or None if none is queued."""
        item = self._by_key.get(key)
        return item.transmits if item else None

    def _discard(self, key: str) -> None:
        item = self._by_key.pop(key, None)
        if item is not None:
            self._remove_from_bucket(item)

    def _remove_from_bucket(self, item: _Item) -> None:
        bucket = self._buckets[item.transmits]
        del bucket[item.order]
        if not bucket:
            del self._buckets[item.transmits]

    def __repr__(self) -> str:
        return f"TransmitLimitedQueue(queued={len(self)}, limit={self._limit()})"
