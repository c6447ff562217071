"""ConnectionPool: one connection per worker, bounded, idle expiry, departures (time passed in)."""

from __future__ import annotations

import pytest

from rpcnet_runtime.cluster.pool import ConnectionPool, PoolExhausted
from rpcnet_runtime.status import Status


class Conn:
    def __init__(self, address: str) -> None:
        self.address = address
        self.closed = False

    async def close(self) -> None:
        self.closed = True


def make_pool(**kwargs: float) -> ConnectionPool[Conn]:
    return ConnectionPool(Conn, **kwargs)  # type: ignore[arg-type]


def test_one_connection_per_worker_reused() -> None:
    pool = make_pool()
    a, closing = pool.acquire("w1", "h:1", now=0.0)
    b, _ = pool.acquire("w1", "h:1", now=1.0)
    assert a is b and closing == [] and pool.in_use("w1") == 2 and pool.created == 1
    pool.release("w1", a, now=2.0)
    pool.release("w1", a, now=2.0)
    assert pool.in_use("w1") == 0


def test_address_change_replaces_the_connection() -> None:
    pool = make_pool()
    old, _ = pool.acquire("w1", "h:1", now=0.0)
    new, closing = pool.acquire("w1", "h:2", now=0.0)
    assert closing == [old] and new is not old and new.address == "h:2"
    pool.release("w1", old, now=1.0)  # a stale release does not touch the new slot
    assert pool.in_use("w1") == 1


def test_bounded_count_evicts_least_recently_used_idle() -> None:
    pool = make_pool(max_connections=2)
    a, _ = pool.acquire("w1", "h:1", now=0.0)
    b, _ = pool.acquire("w2", "h:2", now=1.0)
    pool.release("w1", a, now=2.0)
    pool.release("w2", b, now=3.0)
    c, closing = pool.acquire("w3", "h:3", now=4.0)
    assert closing == [a] and len(pool) == 2 and "w1" not in pool and "w3" in pool
    assert c.address == "h:3"


def test_full_pool_of_busy_connections_refuses_not_processed() -> None:
    pool = make_pool(max_connections=1)
    pool.acquire("w1", "h:1", now=0.0)
    with pytest.raises(PoolExhausted) as caught:
        pool.acquire("w2", "h:2", now=0.0)
    assert caught.value.status is Status.RESOURCE_EXHAUSTED and caught.value.not_processed


def test_idle_expiry_spares_busy_connections() -> None:
    pool = make_pool(idle_timeout=10.0)
    a, _ = pool.acquire("w1", "h:1", now=0.0)
    b, _ = pool.acquire("w2", "h:2", now=0.0)
    pool.release("w1", a, now=1.0)
    assert pool.next_deadline() == 11.0
    assert pool.expire(now=10.9) == []
    assert pool.expire(now=11.0) == [a]
    assert pool.expire(now=1000.0) == []  # w2 still has a call in flight
    assert "w2" in pool and pool.get("w2") is b


def test_departed_workers_are_dropped() -> None:
    pool = make_pool()
    a, _ = pool.acquire("w1", "h:1", now=0.0)
    b, _ = pool.acquire("w2", "h:2", now=0.0)
    assert pool.retain({"w2"}) == [a]
    assert pool.discard("w2") == [b] and pool.discard("w2") == []
    assert len(pool) == 0 and pool.drain() == []


def test_invalid_settings() -> None:
    with pytest.raises(ValueError):
        make_pool(max_connections=0)
    with pytest.raises(ValueError):
        make_pool(idle_timeout=0)
    assert "0/64" in repr(make_pool())
