"""Outbound packets of a `SwimNode`: piggybacking queued updates, and the gossip fan-out.

Every packet carries its protocol messages plus as many queued membership updates as fit in
``packet_budget`` bytes (see `broadcast.py` for which go first). While updates are queued, the
node also pushes them every ``gossip_interval`` to ``gossip_fanout`` random live members, in
packets of updates only.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

from .broadcast import TransmitLimitedQueue
from .config import ClusterConfig
from .messages import Message, encode_packet, encoded_size
from .swim_counters import SwimCounters

__all__ = ["PACKET_OVERHEAD", "Outbox"]

PACKET_OVERHEAD = 16
"""Bytes counted per piggybacked update on top of its encoded size."""


class Outbox:
    """Packets waiting to be sent, and the broadcast queue whose updates ride on them.

    :param limit: the current retransmit limit of an update (it grows with the cluster).
    """

    def __init__(
        self,
        self_id: str,
        config: ClusterConfig,
        counters: SwimCounters,
        limit: Callable[[], int],
    ) -> None:
        self._self_id = self_id
        self._config = config
        self._counters = counters
        self.queue = TransmitLimitedQueue(limit)
        self._outgoing: list[tuple[str, bytes]] = []

    def send(self, address: str, messages: list[Message], piggyback: bool = True) -> None:
        """Encode one packet to `address`, filled up with queued updates if `piggyback`."""
        if piggyback:
            room = self._config.packet_budget - sum(encoded_size(m) for m in messages)
            messages = messages + self.queue.take(room, PACKET_OVERHEAD)
        data = encode_packet(self._self_id, messages)
        self._counters.packets_sent += 1
        self._counters.bytes_sent += len(data)
        self._outgoing.append((address, data))

    def gossip(
        self, live: Sequence[str], address_of: Callable[[str], str], rng: random.Random
    ) -> None:
        """Push queued updates to ``gossip_fanout`` random members of `live`, if any are queued."""
        if not self.queue or not live:
            return
        for member_id in rng.sample(live, min(self._config.gossip_fanout, len(live))):
            address = address_of(member_id)
            updates = self.queue.take(self._config.packet_budget, PACKET_OVERHEAD)
            if not updates:
                return
            self.send(address, updates, piggyback=False)

    def take(self) -> list[tuple[str, bytes]]:
        """Packets since the last call: ``(address, data)`` pairs."""
        out, self._outgoing = self._outgoing, []
        return out
