"""The gossip transport: SWIM packets as ordinary RPC calls on the nodes' own QUIC servers.

`GossipService` (a subclass of the skeleton generated from ``gossip.rpc``) hands every packet it
receives to a callback; `GossipSender` sends packets to peers through a bounded pool of client
channels, one per peer address. Sends never block the caller: each is a fire-and-forget task,
bounded in number per peer and in total, and dropped (counted) when over the bound. When a peer's
connection is gone (UNAVAILABLE), or a call timed out and either `reconnect_after` calls in a row
did or no call on the channel succeeded for `stale_after` seconds, the peer's channel is closed,
so the next packet dials a fresh connection. The last rule matters after a cut link heals: an
old QUIC connection that lost everything for seconds sits in exponential retransmission backoff
with a collapsed congestion window, while a new one needs a single round trip. A lone timeout on
a channel that worked a moment ago does not: after this process was paused, every call in
flight expires at once, yet the connections are fine, and redialling every peer at once would
only delay the probes that must now succeed.

Because gossip rides on RPC calls, it is protected by the server's TLS: under mutual TLS a peer
without a certificate from the cluster's CA can neither send gossip nor receive any.

The service's code is generated and checked in; after changing the schema run
``rpcnet-gen rpcnet_runtime/cluster/gossip.rpc rpcnet_runtime/cluster/admin.rpc
-o rpcnet_runtime/cluster/gen`` (both schemas generate into the one folder).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from ..channel import Channel
from ..context import CallContext
from ..errors import RpcError
from ..status import Status
from .gen.gossip import GossipAck, GossipBase, GossipClient, GossipPacket

__all__ = ["GossipCounters", "GossipSender", "GossipService", "PacketHandler"]

log = logging.getLogger(__name__)

PacketHandler = Callable[[str, bytes], None]
"""Called with ``(sender, data)`` for every packet received."""

ChannelFactory = Callable[[str], Channel]
"""Makes a (lazily connecting) channel to ``host:port``."""

# Transport failures: the connection is gone (at once) or perhaps stalled (after a few in a row).
_GONE = frozenset({Status.UNAVAILABLE})
_STALLED = frozenset({Status.DEADLINE_EXCEEDED, Status.CANCELLED})


class GossipService(GossipBase):
    """Serves ``rpcnet.cluster.v1.Gossip``: passes each packet to `handler`, answers at once."""

    def __init__(self, handler: PacketHandler, *, max_packet_bytes: int) -> None:
        self._handler = handler
        self._max_packet_bytes = max_packet_bytes
        self.enabled = True
        """Set to False to ignore packets (after the node left or was closed)."""

    async def send(self, request: GossipPacket, ctx: CallContext) -> GossipAck:
        if self.enabled and len(request.data) <= self._max_packet_bytes:
            self._handler(request.sender or ctx.peer, request.data)
        return GossipAck()


@dataclass(slots=True)
class GossipCounters:
    """What the sender did, for metrics and tests."""

    sent: int = 0
    """Calls that completed."""
    failed: int = 0
    """Calls that raised (the packet may or may not have arrived)."""
    dropped: int = 0
    """Packets not sent because too many calls were in flight."""
    reconnects: int = 0
    """Channels closed after a transport failure (the next packet dials again)."""


class _Peer:
    __slots__ = ("address", "channel", "client", "failures", "in_flight", "last_success")

    def __init__(self, address: str, channel: Channel, now: float) -> None:
        self.address = address
        self.channel = channel
        self.client = GossipClient(channel)
        self.in_flight = 0
        self.failures = 0
        """Transport failures in a row."""
        self.last_success = now
        """When a call last succeeded (or the channel was made)."""


class GossipSender:
    """Sends packets to peers over pooled channels, without ever blocking the caller.

    :param channel_factory: makes the channel to a peer address (e.g. ``connect(address,
        tls=...)``); channels must connect lazily on the first call and close with ``close()``.
    :param sender: this node's advertised address, carried in each packet for diagnostics.
    :param timeout: deadline of each call (covers the dial on a new channel).
    :param max_peers: channels kept open; the least recently used is closed beyond it.
    :param max_in_flight_per_peer: calls in flight to one peer before packets are dropped.
    :param max_in_flight: calls in flight in total before packets are dropped.
    :param reconnect_after: timed-out calls in a row after which the channel is replaced.
    :param stale_after: a timeout replaces the channel if no call succeeded for this long
        (default: twice `timeout`).
    """

    def __init__(
        self,
        channel_factory: ChannelFactory,
        *,
        sender: str,
        timeout: float,
        max_peers: int = 256,
        max_in_flight_per_peer: int = 16,
        max_in_flight: int = 512,
        reconnect_after: int = 3,
        stale_after: float | None = None,
    ) -> None:
        if timeout <= 0 or max_peers < 1 or max_in_flight_per_peer < 1 or max_in_flight < 1:
            raise ValueError("GossipSender bounds must be positive")
        self._factory = channel_factory
        self._sender = sender
        self._timeout = timeout
        self._max_peers = max_peers
        self._max_per_peer = max_in_flight_per_peer
        self._max_in_flight = max_in_flight
        self._reconnect_after = max(1, reconnect_after)
        self._stale_after = stale_after if stale_after is not None else 2 * timeout
        self._peers: OrderedDict[str, _Peer] = OrderedDict()
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing: set[asyncio.Task[None]] = set()
        self._closed = False
        self.counters = GossipCounters()

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    @property
    def peer_count(self) -> int:
        return len(self._peers)

    def send(self, address: str, data: bytes) -> bool:
        """Start sending `data` to `address`; False if it was dropped (bounds, or closed)."""
        if self._closed:
            return False
        peer = self._peer(address)
        if peer.in_flight >= self._max_per_peer or len(self._tasks) >= self._max_in_flight:
            self.counters.dropped += 1
            return False
        peer.in_flight += 1
        # A fresh context: a packet sent while handling an incoming call must not inherit that
        # call's deadline (deadline propagation would shrink along every chain of replies).
        task = asyncio.get_running_loop().create_task(
            self._call(peer, data), context=contextvars.Context()
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    async def drain(self, timeout: float) -> None:
        """Wait (at most `timeout` seconds) for the calls in flight to finish."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)

    async def close(self) -> None:
        """Cancel the calls in flight and close every channel."""
        self._closed = True
        tasks = set(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        peers, self._peers = list(self._peers.values()), OrderedDict()
        for peer in peers:
            self._close_channel(peer.channel)
        if self._closing:
            await asyncio.wait(set(self._closing))

    # -- internals -----------------------------------------------------------------------------

    def _peer(self, address: str) -> _Peer:
        peer = self._peers.get(address)
        if peer is not None:
            self._peers.move_to_end(address)
            return peer
        peer = _Peer(address, self._factory(address), asyncio.get_running_loop().time())
        self._peers[address] = peer
        while len(self._peers) > self._max_peers:
            _, old = self._peers.popitem(last=False)
            self._close_channel(old.channel)
        return peer

    async def _call(self, peer: _Peer, data: bytes) -> None:
        try:
            await peer.client.send(
                GossipPacket(sender=self._sender, data=data), timeout=self._timeout
            )
            self.counters.sent += 1
            peer.failures = 0
            peer.last_success = asyncio.get_running_loop().time()
        except RpcError as exc:
            self.counters.failed += 1
            log.debug("gossip to %s failed: %s", peer.address, exc)
            if exc.status in _GONE:
                self._replace(peer)
            elif exc.status in _STALLED:
                peer.failures += 1
                stale = asyncio.get_running_loop().time() - peer.last_success >= self._stale_after
                if stale or peer.failures >= self._reconnect_after:
                    self._replace(peer)
        except (OSError, ConnectionError) as exc:
            self.counters.failed += 1
            log.debug("gossip to %s failed: %r", peer.address, exc)
            self._replace(peer)
        finally:
            peer.in_flight -= 1

    def _replace(self, peer: _Peer) -> None:
        """Drop `peer`'s channel so that the next packet to it dials a new connection."""
        if self._closed or self._peers.get(peer.address) is not peer:
            return
        del self._peers[peer.address]
        self.counters.reconnects += 1
        self._close_channel(peer.channel)

    def _close_channel(self, channel: Channel) -> None:
        close = getattr(channel, "close", None)
        if close is None:
            return
        task = asyncio.get_running_loop().create_task(_quietly(close))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)


async def _quietly(close: Callable[[], object]) -> None:
    with contextlib.suppress(Exception):
        result = close()
        if asyncio.iscoroutine(result):
            await result
