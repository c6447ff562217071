"""Large clusters on the in-memory network, in virtual time.

For N = 100 and N = 1,000 nodes with the default (LAN) configuration, one scenario measures:

- steady-state traffic: datagrams sent per member per protocol period;
- a join: a new node joins through one seed; every member must report ``NodeJoined`` within
  3·log2(N) protocol periods;
- a crash: one node is killed; every survivor must report ``NodeFailed`` within 3·log2(N)
  protocol periods of the crash (detection and dissemination together);
- traffic during the crash: it must stay bounded and must not grow with N.

Nodes start with full membership (no join traffic), except for the joining node.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pytest

from rpcnet_runtime.cluster import ClusterConfig, NodeFailed, NodeJoined
from rpcnet_runtime.testing import SimulatedCluster

LAN = ClusterConfig.lan()
PERIOD = LAN.probe_interval


@dataclass
class Outcome:
    n: int
    steady_rate: float = 0.0
    """Datagrams per member per period with nothing happening."""
    crash_rate: float = 0.0
    """Datagrams per member per period from the crash until everyone reported it."""
    join_periods: float = math.inf
    fail_periods: float = math.inf
    spread_periods: float = math.inf
    """From the first NodeFailed anywhere to the last one."""
    false_failures: list[str] = field(default_factory=list)


def _sent(c: SimulatedCluster) -> int:
    return sum(c.network.sent.values())


def _run_until_all(
    c: SimulatedCluster, kind: type[NodeJoined | NodeFailed], node_id: str, budget: float
) -> list[float]:
    """Run one period at a time until every running node (but `node_id`) reported `kind`."""
    seen: dict[str, float] = {}
    running = [a for a in c.nodes if c.network.is_attached(a) and c.nodes[a].id != node_id]
    end = c.clock.now() + budget
    while c.clock.now() < end and len(seen) < len(running):
        c.run_for(PERIOD)
        for address in running:
            if address not in seen:
                for t, e in c.events[address]:
                    if isinstance(e, kind) and e.node.id == node_id:
                        seen[address] = t
                        break
    return sorted(seen.values()) if len(seen) == len(running) else []


def run_scenario(n: int, seed: int) -> Outcome:
    out = Outcome(n)
    bound = 3 * math.log2(n) * PERIOD
    c = SimulatedCluster(LAN, n, seed=seed)
    c.run_for(2 * PERIOD)
    before = _sent(c)
    c.run_for(10 * PERIOD)
    out.steady_rate = (_sent(c) - before) / n / 10

    c.add_node("joiner", "joiner:7946")
    c.join("joiner:7946", ["node0:7946"])
    t0 = c.clock.now()
    joined = _run_until_all(c, NodeJoined, "joiner", 2 * bound)
    if joined:
        out.join_periods = (joined[-1] - t0) / PERIOD

    c.run_for(5 * PERIOD)
    c.kill("node1:7946")
    t0, before = c.clock.now(), _sent(c)
    failed = _run_until_all(c, NodeFailed, "n1", 2 * bound)
    if failed:
        out.fail_periods = (failed[-1] - t0) / PERIOD
        out.spread_periods = (failed[-1] - failed[0]) / PERIOD
        out.crash_rate = (_sent(c) - before) / n / ((c.clock.now() - t0) / PERIOD)
    out.false_failures = [
        f"{a} -> {e.node.id}"
        for a, log in c.events.items()
        for _, e in log
        if isinstance(e, NodeFailed) and e.node.id != "n1"
    ]
    return out


@pytest.fixture(scope="module")
def outcomes() -> dict[int, Outcome]:
    return {n: run_scenario(n, seed=n) for n in (100, 1000)}


@pytest.mark.parametrize("n", [100, 1000])
def test_join_reaches_everyone_within_3_log2_n_periods(
    outcomes: dict[int, Outcome], n: int
) -> None:
    out = outcomes[n]
    assert out.join_periods <= 3 * math.log2(n), out


@pytest.mark.parametrize("n", [100, 1000])
def test_crash_reported_by_everyone_within_3_log2_n_periods(
    outcomes: dict[int, Outcome], n: int
) -> None:
    out = outcomes[n]
    assert out.fail_periods <= 3 * math.log2(n), out
    assert out.spread_periods <= math.log2(n), out  # once declared, the news spreads fast
    assert out.false_failures == []


def test_messages_per_member_per_period_bounded_and_flat_in_n(
    outcomes: dict[int, Outcome],
) -> None:
    small, large = outcomes[100], outcomes[1000]
    # One probe, its ack, and pending updates pushed to `gossip_fanout` members, per period.
    ceiling = 2 + 2 * (1 + LAN.indirect_checks) + LAN.gossip_fanout
    for out in (small, large):
        assert 1.0 <= out.steady_rate <= ceiling, out
        assert out.crash_rate <= ceiling, out
    assert large.steady_rate <= 1.25 * small.steady_rate, (small, large)
    assert large.crash_rate <= 1.25 * max(small.crash_rate, small.steady_rate), (small, large)


@pytest.mark.parametrize("seed", [1, 2])
def test_no_false_failure_under_ten_percent_loss(seed: int) -> None:
    c = SimulatedCluster(LAN, 100, seed=seed, drop=0.1)
    c.run_for(50 * PERIOD)
    failed = [e for log in c.events.values() for _, e in log if isinstance(e, NodeFailed)]
    assert failed == []
    assert c.network.dropped > 0.08 * sum(c.network.sent.values())
    # Losses did cause suspicions, which were refuted in time.
    assert sum(node.counters.refutations for node in c.nodes.values()) > 0


@pytest.mark.slow
def test_no_false_failure_under_ten_percent_loss_1000_nodes() -> None:
    c = SimulatedCluster(LAN, 1000, seed=3, drop=0.1)
    c.run_for(50 * PERIOD)
    failed = [e for log in c.events.values() for _, e in log if isinstance(e, NodeFailed)]
    assert failed == []
