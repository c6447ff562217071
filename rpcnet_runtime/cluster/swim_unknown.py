"""Rate limit for state syncs with unknown senders (`SwimNode`'s answer to strangers' probes).

A ping, ping-req or relayed ack from a member that is not in the table means that member is
running and knows us, while we missed every ``Alive`` about it (under churn in a small cluster
an update is sent only ``retransmit_limit(n)`` = 4 times, and all of them can go to a member
that is dead but not yet declared failed). Waiting for the next periodic push-pull could take
``push_pull_interval`` (30 s), so the node starts a push-pull with the sender at once.

A stranger's probe costs one small packet while the sync sends the whole state, so syncs are
limited: at most one per sender per ``unknown_sender_sync_interval``, and at most
``unknown_sender_syncs`` over all senders in any such interval. One ordered table of the syncs
started within the last interval enforces both, so it never holds more than
``unknown_sender_syncs`` entries, whatever the number of senders.
"""

from __future__ import annotations

from collections import OrderedDict

__all__ = ["UnknownSenders"]


class UnknownSenders:
    """Which unknown senders may be synced with now.

    :param interval: per-sender interval, and the window of the overall limit (seconds).
    :param limit: syncs per window over all senders (0 turns the syncs off).
    """

    def __init__(self, interval: float, limit: int) -> None:
        self._interval = interval
        self._limit = limit
        self._started: OrderedDict[str, float] = OrderedDict()
        """Sender -> when its sync started, oldest first; only syncs within the window."""

    def __len__(self) -> int:
        return len(self._started)

    def allow(self, sender_id: str, now: float) -> bool:
        """Whether to sync with `sender_id` at `now`; if so, the sync counts from now on.

        `now` must not go backwards between calls.
        """
        started = self._started
        while started:
            oldest, when = next(iter(started.items()))
            if now - when < self._interval:
                break
            del started[oldest]
        if sender_id in started or len(started) >= self._limit:
            return False
        started[sender_id] = now
        return True
