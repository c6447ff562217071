"""Bounded fan-out of cluster events to subscribers.

Each subscriber has its own queue of at most ``queue_size`` events. ``publish`` never blocks and
never grows a queue past its bound: when a queue is full its *oldest* unread event is dropped
(as a ring buffer, like tokio's broadcast channel), so a slow subscriber keeps the most recent
view. The next read after a loss returns ``EventsDropped(count)``, then the events that were
kept, in order; since only the head is ever dropped the marker sits exactly where the gap is.
Other subscribers are unaffected.

The only asyncio here is one ``asyncio.Event`` per subscription to wake a waiting reader; the
hub is meant to be used from the event loop's thread.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Iterable

from .types import ClusterEvent, EventsDropped

__all__ = ["EventHub", "Subscription"]


class Subscription(AsyncIterator[ClusterEvent]):
    """One subscriber's bounded view of the event stream; an async iterator of events.

    Iteration ends after :meth:`close`, or once the hub is closed and the queue is drained.
    """

    __slots__ = ("_closed", "_dropped", "_ended", "_hub", "_pending_drop", "_queue", "_wakeup")

    def __init__(self, hub: EventHub, queue_size: int) -> None:
        self._hub: EventHub | None = hub
        self._queue: deque[ClusterEvent] = deque(maxlen=queue_size)
        self._pending_drop = 0  # dropped since the last EventsDropped was read
        self._dropped = 0  # dropped over the subscription's lifetime
        self._closed = False  # no more events will arrive; drain what is queued
        self._ended = False  # closed by the subscriber: drop the queue, end now
        self._wakeup = asyncio.Event()

    def __repr__(self) -> str:
        state = "ended" if self._ended else "closed" if self._closed else "open"
        return f"Subscription({state}, queued={len(self._queue)}, dropped={self._dropped})"

    @property
    def dropped(self) -> int:
        """Total number of events this subscriber lost because its queue was full."""
        return self._dropped

    @property
    def queued(self) -> int:
        """Number of events waiting to be read."""
        return len(self._queue)

    @property
    def closed(self) -> bool:
        return self._closed

    def get_nowait(self) -> ClusterEvent | None:
        """The next event (``EventsDropped(count)`` first after a loss), or None if none."""
        if self._ended:
            return None
        if self._pending_drop:
            count, self._pending_drop = self._pending_drop, 0
            return EventsDropped(count)
        if self._queue:
            return self._queue.popleft()
        return None

    def close(self) -> None:
        """Unsubscribe: iteration ends at once and queued events are discarded."""
        self._ended = True
        self._queue.clear()
        self._pending_drop = 0
        self._mark_closed()
        if self._hub is not None:
            self._hub._forget(self)
            self._hub = None

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> ClusterEvent:
        while True:
            event = self.get_nowait()
            if event is not None:
                return event
            if self._closed:
                raise StopAsyncIteration
            self._wakeup.clear()
            await self._wakeup.wait()

    # -- called by the hub ----------------------------------------------------------------------

    def _put(self, event: ClusterEvent) -> None:
        if len(self._queue) == self._queue.maxlen:
            self._pending_drop += 1  # the deque evicts the oldest event on append
            self._dropped += 1
        self._queue.append(event)

    def _notify(self) -> None:
        self._wakeup.set()

    def _mark_closed(self) -> None:
        self._closed = True
        self._wakeup.set()


class EventHub:
    """Fans cluster events out to any number of bounded subscriptions.

    :param queue_size: per-subscriber bound on unread events (>= 1).
    """

    __slots__ = ("_closed", "_queue_size", "_subscribers")

    def __init__(self, *, queue_size: int = 1024) -> None:
        if isinstance(queue_size, bool) or not isinstance(queue_size, int):
            raise TypeError(f"queue_size must be an int, got {queue_size!r}")
        if queue_size < 1:
            raise ValueError(f"queue_size must be >= 1, got {queue_size!r}")
        self._queue_size = queue_size
        self._subscribers: list[Subscription] = []
        self._closed = False

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"EventHub({state}, subscribers={len(self._subscribers)})"

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    @property
    def closed(self) -> bool:
        return self._closed

    def subscribe(self) -> Subscription:
        """A new subscription that receives every event published from now on.

        After :meth:`close` the subscription is already closed and yields nothing.
        """
        subscription = Subscription(self, self._queue_size)
        if self._closed:
            subscription._mark_closed()
        else:
            self._subscribers.append(subscription)
        return subscription

    def publish(self, events: Iterable[ClusterEvent]) -> None:
        """Queue `events`, in order, for every subscriber; never blocks. Ignored after close."""
        if self._closed or not self._subscribers:
            return
        batch = list(events)
        if not batch:
            return
        for subscription in self._subscribers:
            for event in batch:
                subscription._put(event)
            subscription._notify()

    def close(self) -> None:
        """Stop publishing: subscribers read what is queued, then their iteration ends."""
        self._closed = True
        subscribers, self._subscribers = self._subscribers, []
        for subscription in subscribers:
            subscription._hub = None
            subscription._mark_closed()

    def _forget(self, subscription: Subscription) -> None:
        if subscription in self._subscribers:
            self._subscribers.remove(subscription)
