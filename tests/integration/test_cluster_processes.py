"""Five cluster nodes as real processes on loopback (QUIC + mutual TLS), default LAN config.

Each node runs `tests/cluster/node_process.py` behind `UdpRelay`s it owns (see there), so a test
can isolate one. Waits are bounded waits on the nodes' event streams, never sleeps standing in
for synchronisation; the one fixed wait is the observation window after a pause, in which no
NodeFailed may appear. Timing figures are for ``bench/bench_cluster.py``, not asserted here
beyond generous bounds.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from rpcnet_runtime.certs import DevCerts, write_dev_certs
from rpcnet_runtime.cluster import ClusterConfig

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "cluster"))
from node_process import NodeProcess, start_cluster

pytestmark = [pytest.mark.timeout(90)]

LAN = ClusterConfig.lan()
N = 5


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> DevCerts:
    return write_dev_certs(tmp_path_factory.mktemp("cluster-certs"))


@pytest.fixture
async def cluster(certs: DevCerts) -> AsyncIterator[list[NodeProcess]]:
    nodes: list[NodeProcess] = []
    try:
        nodes.extend(await start_cluster(certs.directory, N, preset="lan", timeout=30))
        yield nodes
    finally:
        await asyncio.gather(*(n.stop() for n in nodes))


async def test_sigkill_is_reported_failed_by_every_survivor(cluster: list[NodeProcess]) -> None:
    nodes = list(cluster)
    victim = nodes.pop(2)
    marks = [len(n.lines) for n in nodes]
    victim.signal(signal.SIGKILL)
    bound = 3 * LAN.suspicion_max(N)  # generous: the bench measures the real figure
    events = await asyncio.gather(
        *(
            n.wait_event("NodeFailed", victim.name, bound, since=m)
            for n, m in zip(nodes, marks, strict=True)
        )
    )
    assert len(events) == N - 1
    for node in nodes:
        assert node.events("NodeLeft", victim.name) == []
        assert node.events("NodeFailed") == node.events("NodeFailed", victim.name)


async def test_a_one_second_pause_raises_no_false_failure(cluster: list[NodeProcess]) -> None:
    nodes = list(cluster)
    paused = nodes[3]
    paused.signal(signal.SIGSTOP)
    try:
        await asyncio.sleep(1.0)  # the pause itself
    finally:
        paused.signal(signal.SIGCONT)
    # Observe past the longest suspicion a pause could have started.
    await asyncio.sleep(LAN.suspicion_max(N) + 0.5)
    for node in nodes:
        assert node.events("NodeFailed") == [], node.name
    members = await paused.members()
    assert sorted(m["state"] for m in members) == ["alive"] * N


async def test_isolated_node_detects_partition_and_heals(cluster: list[NodeProcess]) -> None:
    nodes = list(cluster)
    lonely = nodes[4]
    # Partitions are judged against the last stable membership: a member counts in it once it
    # has been there for `partition_stable_after`, so wait until every node counts on `lonely`.
    names = {n.name for n in nodes}
    async with asyncio.timeout(15):
        while await lonely.stable_members() != names:
            await asyncio.sleep(0.1)  # polling the detector's view, bounded by the timeout
    mark = len(lonely.lines)
    lonely.command("cut")
    detected = await lonely.wait_event("PartitionDetected", None, 15, since=mark)
    assert lonely.name in detected["minority"]
    # The sides as the isolated node sees them when it loses quorum (a peer whose silence it
    # has not yet noticed still counts on its side).
    minority, majority = set(detected["minority"]), set(detected["majority"])
    assert minority | majority == {n.name for n in nodes} and not minority & majority
    assert len(minority) < len(majority)
    # The majority lost one of five: it keeps its quorum and reports no partition.
    for node in nodes[:4]:
        assert node.events("PartitionDetected") == []
    mark = len(lonely.lines)
    lonely.command("heal")
    await lonely.wait_event("PartitionHealed", None, 15, since=mark)

    async def all_alive(node: NodeProcess) -> bool:
        members = await node.members()
        return len(members) == N and all(m["state"] == "alive" for m in members)

    async with asyncio.timeout(15):
        while not all([await all_alive(n) for n in nodes]):
            await asyncio.sleep(0.1)  # polling membership views, bounded by the timeout
