"""`Membership` on real QUIC + TLS over loopback, several nodes in one process."""

from __future__ import annotations

import asyncio
import random
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import cast

import pytest

from rpcnet_runtime import CallContext, CallOptions, Channel, RpcError, Status
from rpcnet_runtime.certs import DevCerts, write_dev_certs
from rpcnet_runtime.cluster import (
    ClusterConfig,
    ClusterEvent,
    Membership,
    MemberState,
    NodeFailed,
    NodeJoined,
    NodeLeft,
    NodeRecovered,
    Subscription,
)
from rpcnet_runtime.cluster.gen.gossip import GossipAck, GossipPacket
from rpcnet_runtime.cluster.gossip import GossipSender
from rpcnet_runtime.context import _current_call, current_call
from rpcnet_runtime.server import Server
from rpcnet_runtime.tls import ClientTLS, ServerTLS
from rpcnet_runtime.udp_relay import UdpRelay

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> DevCerts:
    return write_dev_certs(tmp_path_factory.mktemp("cluster-certs"))


class Node:
    def __init__(self, server: Server, membership: Membership, events: Subscription) -> None:
        self.server = server
        self.membership = membership
        self.events = events
        self.seen: list[ClusterEvent] = []

    async def wait_for(self, match: Callable[[ClusterEvent], bool], timeout: float) -> ClusterEvent:
        """The first event (seen before or arriving within `timeout`) that `match`es."""
        for event in self.seen:
            if match(event):
                return event
        async with asyncio.timeout(timeout):
            async for event in self.events:
                self.seen.append(event)
                if match(event):
                    return event
        raise AssertionError("subscription ended")

    async def stop(self) -> None:
        await self.membership.close()
        await self.server.stop(grace=0)


async def start_node(
    certs: DevCerts,
    stack: AsyncExitStack,
    seeds: list[str],
    *,
    mutual: bool = False,
    client_tls: ClientTLS | None = None,
    tags: dict[str, str] | None = None,
    seed: int = 0,
) -> Node:
    server_tls = ServerTLS(
        certs.server_cert, certs.server_key, client_ca=certs.ca if mutual else None
    )
    server = Server("127.0.0.1", 0, tls=server_tls)
    await server.start()
    stack.push_async_callback(server.stop, 0)
    tls = client_tls or ClientTLS(ca=certs.ca, cert=certs.client_cert, key=certs.client_key)
    config = ClusterConfig.local(seeds=seeds, tags=tags or {}, tls=tls)
    membership = await Membership.join(server, config, rng=random.Random(seed))
    stack.push_async_callback(membership.close)
    node = Node(server, membership, membership.subscribe())
    return node


def joined_event(member_id: str) -> Callable[[ClusterEvent], bool]:
    return lambda e: isinstance(e, NodeJoined) and e.node.id == member_id


def live_ids(node: Node) -> set[str]:
    return {m.id for m in node.membership.members() if m.state is MemberState.ALIVE}


async def until(condition: Callable[[], bool], timeout: float, step: float = 0.02) -> None:
    """Poll `condition` (bounded in time) until it holds."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(step)


@pytest.fixture
async def stack() -> AsyncIterator[AsyncExitStack]:
    async with AsyncExitStack() as stack:
        yield stack


async def three_nodes(certs: DevCerts, stack: AsyncExitStack, mutual: bool = False) -> list[Node]:
    first = await start_node(certs, stack, [], mutual=mutual, tags={"role": "seed"}, seed=1)
    seed = first.membership.address
    others = [
        await start_node(certs, stack, [seed], mutual=mutual, tags={"role": "worker"}, seed=i)
        for i in (2, 3)
    ]
    nodes = [first, *others]
    ids = {n.membership.id for n in nodes}
    await until(lambda: all(live_ids(n) == ids for n in nodes), timeout=5)
    return nodes


async def test_three_nodes_join_via_a_seed_and_leave_gracefully(
    certs: DevCerts, stack: AsyncExitStack
) -> None:
    a, b, c = await three_nodes(certs, stack)
    # Every node reported the other two as joined, once each.
    for node in (a, b, c):
        others = {n.membership.id for n in (a, b, c)} - {node.membership.id}
        for other in others:
            await node.wait_for(joined_event(other), 2)
        joined = [e for e in node.seen if isinstance(e, NodeJoined)]
        assert sorted(e.node.id for e in joined) == sorted(others)
    member = a.membership.member(b.membership.id)
    assert member is not None and member.tags["role"] == "worker"
    assert member.address == b.membership.address
    assert a.membership.has_quorum()
    assert a.membership.local_member.id == a.membership.id

    await c.membership.leave()
    for node in (a, b):
        event = await node.wait_for(
            lambda e: isinstance(e, NodeLeft) and e.node.id == c.membership.id, 3
        )
        assert isinstance(event, NodeLeft)
    # Give a failure detector time to (wrongly) fire: none does.
    await asyncio.sleep(ClusterConfig.local().suspicion_max(3))
    for node in (a, b):
        assert not any(isinstance(e, NodeFailed) for e in node.seen)
        member = node.membership.member(c.membership.id)
        assert member is not None and member.state is MemberState.LEFT
    assert c.membership.closed


async def test_tags_update_spreads(certs: DevCerts, stack: AsyncExitStack) -> None:
    a, b, c = await three_nodes(certs, stack)
    await b.membership.update_tags({"role": "worker", "zone": "z1"})
    assert b.membership.local_member.tags["zone"] == "z1"

    def updated() -> bool:
        for node in (a, c):
            member = node.membership.member(b.membership.id)
            if member is None or member.tags.get("zone") != "z1":
                return False
        return True

    await until(updated, timeout=3)


async def test_a_stopped_node_is_reported_failed(certs: DevCerts, stack: AsyncExitStack) -> None:
    a, b, c = await three_nodes(certs, stack)
    victim = c.membership.id
    await c.stop()
    for node in (a, b):
        event = await node.wait_for(lambda e: isinstance(e, NodeFailed) and e.node.id == victim, 5)
        assert isinstance(event, NodeFailed)
        assert not any(isinstance(e, NodeLeft) for e in node.seen)
    assert a.membership.phi(victim) > 0.0


async def test_mutual_tls_refuses_a_node_without_a_cluster_certificate(
    certs: DevCerts, stack: AsyncExitStack, tmp_path: Path
) -> None:
    a, b, _ = await three_nodes(certs, stack, mutual=True)
    other = write_dev_certs(tmp_path / "other")
    intruders = [
        # No client certificate at all.
        await start_node(
            certs,
            stack,
            [a.membership.address],
            mutual=True,
            client_tls=ClientTLS(ca=certs.ca),
            seed=7,
        ),
        # A certificate from another CA.
        await start_node(
            certs,
            stack,
            [a.membership.address],
            mutual=True,
            client_tls=ClientTLS(ca=certs.ca, cert=other.client_cert, key=other.client_key),
            seed=8,
        ),
    ]
    # Each intruder keeps retrying its join; give it several attempts.
    await until(lambda: all(n.membership.sender.counters.failed >= 3 for n in intruders), 10)
    for intruder in intruders:
        assert not intruder.membership.joined
        assert live_ids(intruder) == {intruder.membership.id}
        for node in (a, b):
            assert node.membership.member(intruder.membership.id) is None
    # The members still gossip among themselves.
    assert a.membership.sender.counters.sent > 0


async def test_join_needs_client_tls(certs: DevCerts, stack: AsyncExitStack) -> None:
    server = Server("127.0.0.1", 0, tls=ServerTLS(certs.server_cert, certs.server_key))
    await server.start()
    stack.push_async_callback(server.stop, 0)
    with pytest.raises(ValueError, match="ClientTLS"):
        await Membership.join(server, ClusterConfig.local())


def test_generated_cluster_modules_are_up_to_date() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "rpcnet_idl.cli",
            "rpcnet_runtime/cluster/gossip.rpc",
            "rpcnet_runtime/cluster/admin.rpc",
            "-o",
            "rpcnet_runtime/cluster/gen",
            "--check",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


async def test_gossip_keeps_flowing_past_the_send_timeout(
    certs: DevCerts, stack: AsyncExitStack
) -> None:
    """Replies sent while handling a packet must not inherit its deadline (regression: every
    chain of replies ran out of time after ~16 hops and the cluster fell apart)."""
    nodes = await three_nodes(certs, stack)
    timeout = max(0.5, 5 * ClusterConfig.local().probe_interval)
    start = [n.membership.sender.counters.sent for n in nodes]
    # Enough traffic to span several send timeouts (each node sends ~20 packets per second).
    await until(
        lambda: all(
            n.membership.sender.counters.sent - s >= 80 for n, s in zip(nodes, start, strict=True)
        ),
        timeout=20 * timeout,
    )
    for node in nodes:
        assert node.membership.sender.counters.failed == 0
        assert not any(isinstance(e, NodeFailed) for e in node.seen)


async def test_a_node_cut_off_behind_a_relay_is_failed_and_recovers(
    certs: DevCerts, stack: AsyncExitStack
) -> None:
    a = await start_node(certs, stack, [], seed=11)
    b = await start_node(certs, stack, [a.membership.address], seed=12)
    # c advertises a relay in front of its server: the others reach it only through the relay.
    server = Server("127.0.0.1", 0, tls=ServerTLS(certs.server_cert, certs.server_key))
    await server.start()
    stack.push_async_callback(server.stop, 0)
    relay = UdpRelay(f"127.0.0.1:{server.port}", rng=random.Random(5))
    relay.start()
    stack.callback(relay.close)
    tls = ClientTLS(ca=certs.ca, cert=certs.client_cert, key=certs.client_key)
    config = ClusterConfig.local(seeds=[a.membership.address], tls=tls)
    membership = await Membership.join(
        server, config, advertise_address=relay.address, rng=random.Random(13)
    )
    stack.push_async_callback(membership.close)
    c = Node(server, membership, membership.subscribe())
    ids = {n.membership.id for n in (a, b, c)}
    await until(lambda: all(live_ids(n) == ids for n in (a, b, c)), timeout=5)
    assert a.membership.member(c.membership.id).address == relay.address  # type: ignore[union-attr]

    relay.cut()  # nothing reaches c's server, nor do its answers leave
    for node in (a, b):
        await node.wait_for(lambda e: isinstance(e, NodeFailed) and e.node.id == c.membership.id, 5)
    assert relay.counters.dropped["in"] > 0
    relay.heal()
    for node in (a, b):
        await node.wait_for(
            lambda e: isinstance(e, NodeRecovered) and e.node.id == c.membership.id, 10
        )


# -- GossipSender with a fake channel (no network) ---------------------------------------------


class FakeChannel:
    """Answers calls as told: `fail` (an RpcError) or parks them until `release`."""

    def __init__(self, address: str, log: list[FakeChannel]) -> None:
        self.address = address
        self.calls: list[tuple[bytes, float | None, object]] = []
        self.fail: RpcError | None = None
        self.hold = False
        self.released = asyncio.Event()
        self.closed = False
        log.append(self)

    async def unary_unary(
        self, method: object, request: GossipPacket, options: CallOptions
    ) -> GossipAck:
        self.calls.append((request.data, options.timeout, current_call()))
        if self.hold:
            await self.released.wait()
        if self.fail is not None:
            raise self.fail
        return GossipAck()

    async def close(self) -> None:
        self.closed = True


def fakes(channels: list[FakeChannel], hold: bool = False) -> Callable[[str], Channel]:
    def factory(address: str) -> Channel:
        channel = FakeChannel(address, channels)
        channel.hold = hold
        return cast(Channel, channel)

    return factory


async def test_sender_bounds_in_flight_and_drops_the_excess() -> None:
    channels: list[FakeChannel] = []
    factory = fakes(channels, hold=True)
    sender = GossipSender(
        factory, sender="me:1", timeout=1.0, max_in_flight_per_peer=2, max_in_flight=3
    )
    assert [sender.send("a:1", b"1"), sender.send("a:1", b"2"), sender.send("a:1", b"3")] == [
        True,
        True,
        False,
    ]
    assert sender.send("b:1", b"4") and not sender.send("c:1", b"5")  # total bound
    assert sender.counters.dropped == 2 and sender.in_flight == 3
    await asyncio.sleep(0)  # let the tasks start their calls
    assert [len(c.calls) for c in channels] == [2, 1, 0]
    assert {call[1] for c in channels for call in c.calls} == {1.0}  # each call's deadline
    for channel in channels:
        channel.released.set()
    await sender.drain(timeout=1.0)
    assert sender.in_flight == 0 and sender.counters.sent == 3
    await sender.close()
    assert all(c.closed for c in channels)
    assert not sender.send("a:1", b"6")


async def test_sender_replaces_a_channel_when_gone_or_after_repeated_timeouts() -> None:
    channels: list[FakeChannel] = []
    sender = GossipSender(
        fakes(channels),
        sender="me:1",
        timeout=1.0,
        reconnect_after=3,
    )

    async def send_and_wait(error: RpcError | None) -> None:
        sender.send("a:1", b"x")
        channels[-1].fail = error  # the channel the send went to (created on first use)
        await sender.drain(timeout=1.0)

    await send_and_wait(RpcError(Status.DEADLINE_EXCEEDED, "slow"))
    await send_and_wait(RpcError(Status.DEADLINE_EXCEEDED, "slow"))
    assert len(channels) == 1 and sender.counters.reconnects == 0
    await send_and_wait(RpcError(Status.DEADLINE_EXCEEDED, "slow"))  # third in a row
    assert sender.counters.reconnects == 1
    await send_and_wait(None)  # a new channel
    assert len(channels) == 2 and sender.counters.sent == 1
    await send_and_wait(RpcError(Status.UNAVAILABLE, "gone"))  # at once
    assert sender.counters.reconnects == 2 and sender.counters.failed == 4
    await send_and_wait(RpcError(Status.INVALID_ARGUMENT, "refused"))  # not a transport failure
    assert len(channels) == 3 and sender.counters.reconnects == 2
    await sender.close()
    assert channels[0].closed and channels[1].closed


async def test_sends_from_inside_a_handler_do_not_inherit_its_deadline() -> None:
    channels: list[FakeChannel] = []
    sender = GossipSender(fakes(channels), sender="me:1", timeout=1.0)
    token = _current_call.set(CallContext(method="x.Y/Z", clock=lambda: 0.0, deadline=0.0))
    try:
        assert current_call() is not None
        sender.send("a:1", b"x")
    finally:
        _current_call.reset(token)
    await sender.drain(timeout=1.0)
    assert channels[0].calls[0][2] is None
    await sender.close()


async def test_sender_replaces_a_stale_channel_on_its_first_timeout() -> None:
    channels: list[FakeChannel] = []
    # stale_after=0: no call succeeded "recently", so one timeout is enough.
    sender = GossipSender(fakes(channels), sender="me:1", timeout=1.0, stale_after=0.0)
    sender.send("a:1", b"x")
    channels[0].fail = RpcError(Status.DEADLINE_EXCEEDED, "slow")
    await sender.drain(timeout=1.0)
    assert sender.counters.reconnects == 1
    await sender.close()
    assert channels[0].closed
