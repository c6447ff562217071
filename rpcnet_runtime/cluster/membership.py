"""`Membership`: the asyncio shell that runs a `SwimNode` on a server's own QUIC port (SPEC §5).

One timer, re-armed from ``node.next_deadline()`` after every input, drives the node; packets
arrive as calls of the gossip service added to the server (so they are protected by its TLS)
and are fed to ``node.receive``; ``node.take_outgoing()`` goes out through a `GossipSender`
(pooled channels, fire-and-forget, bounded); ``node.take_events()`` is published to an
`EventHub`. ``loop.time()`` is the only clock read.
"""

from __future__ import annotations

import asyncio
import contextvars
import random
import uuid
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ..channel import Channel
from .config import ClusterConfig
from .gossip import GossipSender, GossipService
from .subscriptions import EventHub, Subscription
from .swim import SwimCounters, SwimNode
from .types import Member, MemberState

if TYPE_CHECKING:
    from ..server import Server

__all__ = ["Membership"]

_EMPTY = contextvars.Context()
_LIVE = frozenset({MemberState.ALIVE, MemberState.SUSPECT})
_UNSPECIFIED_HOSTS = frozenset({"", "0.0.0.0", "::", "[::]"})


class Membership:
    """This node's membership of a cluster. Create it with `Membership.join`."""

    def __init__(
        self,
        node: SwimNode,
        sender: GossipSender,
        service: GossipService,
        *,
        loop: asyncio.AbstractEventLoop,
        event_queue_size: int = 1024,
    ) -> None:
        self._node = node
        self._sender = sender
        self._service = service
        self._loop = loop
        self._hub = EventHub(queue_size=event_queue_size)
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._closed = False
        self._left = False

    # -- construction --------------------------------------------------------------------------

    @classmethod
    async def join(
        cls,
        server: Server,
        config: ClusterConfig | None = None,
        *,
        node_id: str | None = None,
        advertise_address: str | None = None,
        rng: random.Random | None = None,
        channel_factory: Callable[[str], Channel] | None = None,
        send_timeout: float | None = None,
        event_queue_size: int = 1024,
    ) -> Membership:
        """Add the gossip service to the started `server` and join the cluster via
        ``config.seeds`` (none: start a new cluster). Returns at once: the state sync with the
        seeds is retried in the background until one answers (see `joined`).

        :param node_id: this node's id (default: a random uuid4 hex, new for each process).
        :param advertise_address: ``host:port`` others reach this node at (default: the
            server's bound address; needed behind a relay or NAT, or when bound to 0.0.0.0).
        :param channel_factory: makes the channel to a peer (default: ``connect(address,
            tls=config.tls)``); ``config.tls`` is then required.
        :param send_timeout: deadline of each gossip call (default: 5 protocol periods, at
            least 0.5 s).
        """
        config = config if config is not None else ClusterConfig()
        loop = asyncio.get_running_loop()
        address = advertise_address or _server_address(server)
        if channel_factory is None:
            channel_factory = _default_factory(config)
        timeout = send_timeout if send_timeout is not None else max(0.5, 5 * config.probe_interval)
        node = SwimNode(
            config,
            node_id or uuid.uuid4().hex,
            address,
            config.tags,
            rng=rng or random.Random(),
            now=loop.time(),
        )
        sender = GossipSender(
            channel_factory,
            sender=address,
            timeout=timeout,
            max_peers=min(config.max_members, 1024),
        )
        membership: Membership
        service = GossipService(
            lambda src, data: membership._receive(src, data),
            max_packet_bytes=config.max_message_bytes,
        )
        membership = cls(node, sender, service, loop=loop, event_queue_size=event_queue_size)
        server.add_service(service)
        node.join(config.seeds, loop.time())
        membership._after_input()
        return membership

    # -- views (SPEC §5) -----------------------------------------------------------------------

    @property
    def id(self) -> str:
        return self._node.id

    @property
    def address(self) -> str:
        """The ``host:port`` other members reach this node at."""
        return self._node.address

    @property
    def config(self) -> ClusterConfig:
        return self._node.config

    @property
    def local_member(self) -> Member:
        return self._node.members()[0]

    @property
    def joined(self) -> bool:
        """True once a state sync with another member completed (always after a solo start)."""
        return self._node.joined or not self._node.config.seeds

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def counters(self) -> SwimCounters:
        return self._node.counters

    @property
    def sender(self) -> GossipSender:
        """The gossip transport (counters: sent, failed, dropped, reconnects)."""
        return self._sender

    @property
    def node(self) -> SwimNode:
        """The protocol core (read-only use: views and counters)."""
        return self._node

    def members(self) -> list[Member]:
        """This node first, then every member known (failed and left ones included)."""
        return self._node.members()

    def live_members(self) -> list[Member]:
        """Members ALIVE or SUSPECT, this node included unless it left."""
        return [m for m in self._node.members() if m.state in _LIVE]

    def member(self, member_id: str) -> Member | None:
        return self._node.member(member_id)

    def phi(self, member_id: str) -> float:
        """Phi accrual suspicion level of a member now (0.0 if never heard from)."""
        return self._node.phi(member_id, self._loop.time())

    def has_quorum(self) -> bool:
        """Whether this node sees a majority of the last stable membership."""
        return self._node.has_quorum()

    def subscribe(self) -> Subscription:
        """Events from now on, as an async iterator (bounded queue, see `Subscription`)."""
        return self._hub.subscribe()

    # -- actions -------------------------------------------------------------------------------

    async def update_tags(self, tags: Mapping[str, str]) -> None:
        """Publish new tags (a new incarnation of this node's record, gossiped)."""
        self._check_open()
        self._node.update_tags(tags, self._loop.time())
        self._after_input()

    async def leave(self, linger: float | None = None) -> None:
        """Leave gracefully (others report NodeLeft), then stop.

        The node keeps answering and gossiping for `linger` seconds (default: 5 gossip
        intervals, between 0.25 s and 1 s) so the news spreads before it goes quiet.
        """
        if self._closed:
            return
        if not self._left:
            self._left = True
            self._node.leave(self._loop.time())
            self._after_input()
        if linger is None:
            linger = min(1.0, max(0.25, 5 * self.config.gossip_interval))
        deadline = self._loop.time() + linger
        await asyncio.sleep(max(0.0, deadline - self._loop.time()))
        await self._sender.drain(timeout=max(0.0, deadline + 0.5 - self._loop.time()))
        await self.close()

    async def close(self) -> None:
        """Stop at once without telling anyone (others will detect a failure)."""
        if self._closed:
            return
        self._closed = True
        self._service.enabled = False
        self._cancel_timer()
        await self._sender.close()
        self._hub.close()

    async def __aenter__(self) -> Membership:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.leave()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "leaving" if self._left else "open"
        return f"Membership({self.id}@{self.address}, {state}, members={self._node.num_members})"

    # -- the driver ----------------------------------------------------------------------------

    def _receive(self, sender: str, data: bytes) -> None:
        if self._closed:
            return
        self._node.receive(sender, data, self._loop.time())
        self._after_input()

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        if self._closed:
            return
        self._node.tick(self._loop.time())
        self._after_input()

    def _after_input(self) -> None:
        """Send what the node produced, publish its events, re-arm the timer."""
        for address, data in self._node.take_outgoing():
            self._sender.send(address, data)
        events = self._node.take_events()
        if events:
            self._hub.publish(events)
        deadline = self._node.next_deadline()
        if deadline == self._timer_at:
            return
        self._cancel_timer()
        if deadline is not None:
            self._timer_at = deadline
            # Not in the context of the call whose packet re-armed the timer (see gossip.py).
            self._timer = self._loop.call_at(deadline, self._on_timer, context=_EMPTY)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None
        self._timer_at = None

    def _check_open(self) -> None:
        if self._closed or self._left:
            raise RuntimeError("this membership has left the cluster")


def _server_address(server: Server) -> str:
    host = server.host
    if host in _UNSPECIFIED_HOSTS:
        raise ValueError(
            f"the server listens on {host!r}: pass advertise_address='host:port' to join"
        )
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{host}:{server.port}"


def _default_factory(config: ClusterConfig) -> Callable[[str], Channel]:
    from ..client import connect
    from ..config import ClientConfig
    from ..tls import ClientTLS

    tls = config.tls
    if not isinstance(tls, ClientTLS):
        raise ValueError(
            "ClusterConfig.tls must be a ClientTLS (the CA of the members' certificates, and "
            "this node's certificate under mutual TLS)"
        )
    # Short: a dial that times out is replaced by a fresh one (see gossip.py), so after a cut
    # link heals the next dial starts within this long. A loopback/LAN handshake takes ~10 ms.
    connect_timeout = max(0.5, 2.5 * config.probe_interval)
    client_config = ClientConfig(connect_timeout=connect_timeout)

    def factory(address: str) -> Channel:
        channel: Any = connect(address, tls=tls, config=client_config)
        return channel  # type: ignore[no-any-return]

    return factory
