"""EventHub / Subscription: order, bounded queues with drop signalling, close, fan-out."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rpcnet_runtime.cluster.subscriptions import EventHub, Subscription
from rpcnet_runtime.cluster.types import (
    ClusterEvent,
    EventsDropped,
    Member,
    NodeFailed,
    NodeJoined,
    PartitionHealed,
)


def joined(i: int) -> NodeJoined:
    return NodeJoined(Member(id=f"n{i}", address=f"127.0.0.1:{7000 + i}"))


def seq(event: ClusterEvent) -> int:
    assert isinstance(event, NodeJoined)
    return int(event.node.id[1:])


def drain(sub: Subscription) -> list[ClusterEvent]:
    out: list[ClusterEvent] = []
    for _ in range(100_000):
        event = sub.get_nowait()
        if event is None:
            return out
        out.append(event)
    raise AssertionError("subscription never ran dry")


async def collect(sub: Subscription) -> list[ClusterEvent]:
    return [event async for event in sub]


def test_events_arrive_in_publish_order() -> None:
    hub = EventHub()
    sub = hub.subscribe()
    events = [joined(i) for i in range(5)]
    hub.publish(events[:2])
    hub.publish(iter(events[2:]))  # any iterable
    assert drain(sub) == events
    assert sub.get_nowait() is None
    assert sub.dropped == 0


def test_subscriber_sees_only_events_published_after_subscribing() -> None:
    hub = EventHub()
    hub.publish([joined(0)])
    sub = hub.subscribe()
    hub.publish([joined(1)])
    assert drain(sub) == [joined(1)]


def test_full_queue_drops_oldest_and_signals_the_loss_first() -> None:
    hub = EventHub(queue_size=3)
    sub = hub.subscribe()
    hub.publish([joined(i) for i in range(5)])
    assert sub.queued == 3
    assert drain(sub) == [EventsDropped(2), joined(2), joined(3), joined(4)]
    assert sub.dropped == 2


def test_each_gap_is_signalled_where_it_happened() -> None:
    hub = EventHub(queue_size=2)
    sub = hub.subscribe()
    hub.publish([joined(i) for i in range(4)])  # drops 0, 1
    assert sub.get_nowait() == EventsDropped(2)
    assert sub.get_nowait() == joined(2)
    hub.publish([joined(4), joined(5)])  # queue [3, 4] then 5 evicts 3
    assert drain(sub) == [EventsDropped(1), joined(4), joined(5)]
    assert sub.dropped == 3


def test_slow_subscriber_does_not_affect_others() -> None:
    hub = EventHub(queue_size=4)
    slow, fast = hub.subscribe(), hub.subscribe()
    received: list[ClusterEvent] = []
    for i in range(20):
        hub.publish([joined(i)])
        received += drain(fast)
    assert received == [joined(i) for i in range(20)]
    assert fast.dropped == 0
    assert drain(slow) == [EventsDropped(16)] + [joined(i) for i in range(16, 20)]


def test_memory_stays_bounded_under_a_flood() -> None:
    hub = EventHub(queue_size=8)
    sub = hub.subscribe()
    for i in range(10_000):
        hub.publish([joined(i)])
        assert sub.queued <= 8
    assert sub.dropped == 10_000 - 8


def test_subscription_close_ends_at_once_and_unsubscribes() -> None:
    hub = EventHub()
    sub, other = hub.subscribe(), hub.subscribe()
    hub.publish([joined(0)])
    sub.close()
    assert hub.subscriber_count == 1
    assert sub.get_nowait() is None
    hub.publish([joined(1)])
    assert sub.queued == 0
    assert drain(other) == [joined(0), joined(1)]
    sub.close()  # idempotent


def test_publish_after_close_is_ignored_and_late_subscribers_get_nothing() -> None:
    hub = EventHub()
    hub.close()
    hub.publish([joined(0)])
    sub = hub.subscribe()
    assert sub.closed
    assert sub.get_nowait() is None
    assert hub.subscriber_count == 0


@pytest.mark.parametrize("bad", [0, -1])
def test_queue_size_must_be_positive(bad: int) -> None:
    with pytest.raises(ValueError, match="queue_size"):
        EventHub(queue_size=bad)


def test_queue_size_must_be_an_int() -> None:
    with pytest.raises(TypeError, match="queue_size"):
        EventHub(queue_size=2.0)  # type: ignore[arg-type]


async def test_async_iteration_drains_then_ends_on_hub_close() -> None:
    hub = EventHub(queue_size=2)
    sub = hub.subscribe()
    hub.publish([joined(0), joined(1), joined(2)])
    hub.close()
    assert await asyncio.wait_for(collect(sub), 5) == [EventsDropped(1), joined(1), joined(2)]


async def test_waiting_reader_is_woken_by_publish() -> None:
    hub = EventHub()
    sub = hub.subscribe()
    reader = asyncio.ensure_future(anext(sub))
    # FIFO scheduling: the reader runs first and blocks, then the publish wakes it.
    asyncio.get_running_loop().call_soon(hub.publish, [NodeFailed(joined(1).node)])
    assert await asyncio.wait_for(reader, 5) == NodeFailed(joined(1).node)


async def test_waiting_reader_ends_when_the_hub_closes() -> None:
    hub = EventHub()
    sub = hub.subscribe()
    reader = asyncio.ensure_future(collect(sub))
    loop = asyncio.get_running_loop()
    loop.call_soon(hub.publish, [PartitionHealed()])
    loop.call_soon(hub.close)
    assert await asyncio.wait_for(reader, 5) == [PartitionHealed()]


async def test_waiting_reader_ends_when_its_subscription_closes() -> None:
    hub = EventHub()
    sub = hub.subscribe()
    reader = asyncio.ensure_future(collect(sub))
    asyncio.get_running_loop().call_soon(sub.close)
    assert await asyncio.wait_for(reader, 5) == []
    assert hub.subscriber_count == 0


async def test_every_subscriber_gets_every_event() -> None:
    hub = EventHub()
    subs = [hub.subscribe() for _ in range(3)]
    readers = [asyncio.ensure_future(collect(s)) for s in subs]
    loop = asyncio.get_running_loop()
    loop.call_soon(hub.publish, [joined(0), joined(1)])
    loop.call_soon(hub.publish, [joined(2)])
    loop.call_soon(hub.close)
    results = await asyncio.wait_for(asyncio.gather(*readers), 5)
    assert results == [[joined(0), joined(1), joined(2)]] * 3


# A script of operations: ("publish", n) publishes n new events, ("read", n) reads up to n.
ops_st = st.lists(
    st.tuples(st.sampled_from(["publish", "read"]), st.integers(1, 12)), min_size=1, max_size=40
)


@settings(max_examples=200, deadline=None)
@given(size=st.integers(1, 6), ops=ops_st)
def test_reads_account_for_every_event_in_order(size: int, ops: list[tuple[str, int]]) -> None:
    hub = EventHub(queue_size=size)
    sub = hub.subscribe()
    published = 0
    read: list[ClusterEvent] = []
    for op, n in ops:
        if op == "publish":
            hub.publish([joined(published + i) for i in range(n)])
            published += n
        else:
            for _ in range(n):
                event = sub.get_nowait()
                if event is None:
                    break
                read.append(event)
        assert sub.queued <= size
    read += drain(sub)
    # Every published event is either read or counted by the EventsDropped just before the next
    # one read: sequence numbers advance by exactly the count signalled in between.
    expected_next = 0
    gap = 0
    for event in read:
        if isinstance(event, EventsDropped):
            assert event.count > 0
            gap += event.count  # two markers in a row: the head was dropped after a marker read
            continue
        assert seq(event) == expected_next + gap
        expected_next, gap = seq(event) + 1, 0
    assert expected_next + gap == published
    assert sub.dropped == published - sum(1 for e in read if not isinstance(e, EventsDropped))
