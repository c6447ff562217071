"""The transmit-limited broadcast queue and the retransmit limit."""

from __future__ import annotations

import pytest

from rpcnet_runtime.cluster.broadcast import TransmitLimitedQueue
from rpcnet_runtime.cluster.config import ClusterConfig
from rpcnet_runtime.cluster.messages import Alive, Dead, Suspect, encoded_size


@pytest.mark.parametrize(
    ("mult", "n", "limit"),
    [
        (4, 1, 4),
        (4, 9, 4),
        (4, 10, 8),
        (4, 99, 8),
        (4, 100, 12),
        (4, 999, 12),
        (4, 1000, 16),
        (3, 1000, 12),
        (1, 5, 1),
    ],
)
def test_retransmit_limit(mult: int, n: int, limit: int) -> None:
    assert ClusterConfig(retransmit_mult=mult).retransmit_limit(n) == limit


def _alive(node: str, inc: int = 0) -> Alive:
    return Alive(node, inc, f"{node}:1")


def test_newest_first_among_equal_transmits() -> None:
    q = TransmitLimitedQueue(lambda: 3)
    for name in "abc":
        q.queue(name, _alive(name))
    taken = q.take(10_000)
    assert [m.node_id for m in taken] == ["c", "b", "a"]  # type: ignore[union-attr]


def test_fewest_transmits_first() -> None:
    q = TransmitLimitedQueue(lambda: 5)
    q.queue("a", _alive("a"))
    q.queue("b", _alive("b"))
    q.take(10_000)  # both sent once
    q.queue("c", _alive("c"))
    size = encoded_size(_alive("c"))
    assert q.take(size) == [_alive("c")]  # room for one: the never-sent update wins
    assert q.transmits("c") == 1 and q.transmits("a") == 1


def test_limit_drops_after_n_transmits() -> None:
    q = TransmitLimitedQueue(lambda: 3)
    q.queue("a", _alive("a"))
    sends = 0
    for _ in range(10):
        if q.take(10_000):
            sends += 1
    assert sends == 3
    assert len(q) == 0 and q.take(10_000) == []


def test_limit_follows_cluster_size() -> None:
    size = {"n": 5}
    config = ClusterConfig()
    q = TransmitLimitedQueue(lambda: config.retransmit_limit(size["n"]))
    q.queue("a", _alive("a"))
    size["n"] = 1000
    sends = sum(1 for _ in range(40) if q.take(10_000))
    assert sends == 16


def test_newer_update_invalidates_older_about_same_member() -> None:
    q = TransmitLimitedQueue(lambda: 4)
    q.queue("a", _alive("a"))
    q.take(10_000)
    q.queue("a", Suspect("a", 0, "b"))
    q.queue("a", Dead("a", 0, "b"))
    assert len(q) == 1
    assert q.pending("a") == Dead("a", 0, "b")
    assert q.transmits("a") == 0
    assert q.take(10_000) == [Dead("a", 0, "b")]


def test_budget_respected_and_overhead_counted() -> None:
    q = TransmitLimitedQueue(lambda: 4)
    for i in range(50):
        q.queue(f"m{i}", _alive(f"m{i}"))
    one = encoded_size(_alive("m10")) + 16
    taken = q.take(5 * one, overhead=16)
    assert len(taken) == 5
    assert sum(encoded_size(m) + 16 for m in taken) <= 5 * one
    assert q.take(3) == []  # nothing fits


def test_discard() -> None:
    q = TransmitLimitedQueue(lambda: 4)
    q.queue("a", _alive("a"))
    q.discard("a")
    q.discard("missing")
    assert len(q) == 0 and q.pending("a") is None
