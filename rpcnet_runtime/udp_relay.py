"""`UdpRelay`: a loopback UDP forwarder that drops, delays or cuts datagrams, for tests.

A relay listens on ``127.0.0.1:<port>`` in front of one target (a node's QUIC server). Every
client address that sends to it gets its own upstream socket towards the target, so the target
sees one client per flow and its replies go back to the right client, much like a NAT. Each
direction has its own rule: ``"in"`` (client -> target) and ``"out"`` (target -> client), each
with a drop probability, a delay and a cut. A node that advertises its relay's address instead of
its own can then be isolated, slowed or made lossy while it runs, from the test or from a control
channel of the process that owns the relay.

It uses plain non-blocking sockets with ``loop.add_reader`` (no transports), so it starts and
stops synchronously; everything it holds is bounded (flows, delayed datagrams, reads per wakeup).
"""

from __future__ import annotations

import asyncio
import functools
import random
import socket
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["Direction", "LinkRule", "RelayCounters", "UdpRelay"]

Direction = Literal["in", "out", "both"]

_MAX_DATAGRAM = 65535
_READS_PER_WAKEUP = 64


@dataclass(slots=True)
class LinkRule:
    """What happens to datagrams in one direction."""

    drop: float = 0.0
    """Probability that a datagram is dropped."""
    delay: float = 0.0
    """Seconds each datagram is held before it is forwarded."""
    cut: bool = False
    """Drop everything."""


@dataclass(slots=True)
class RelayCounters:
    forwarded: dict[str, int] = field(default_factory=lambda: {"in": 0, "out": 0})
    dropped: dict[str, int] = field(default_factory=lambda: {"in": 0, "out": 0})
    errors: int = 0
    """Send errors (e.g. the target's port is closed: the node died)."""


class _Flow:
    __slots__ = ("client", "sock")

    def __init__(self, client: tuple[str, int], sock: socket.socket) -> None:
        self.client = client
        self.sock = sock


def _split(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"expected 'host:port', got {address!r}")
    return host.strip("[]"), int(port)


class UdpRelay:
    """Forwards datagrams between clients and `target` (``host:port``) with per-direction rules.

    :param host: address to listen on (loopback by default).
    :param port: port to listen on (0: any free port; see `address`).
    :param rng: the randomness of drops (inject a seeded one for reproducible runs).
    :param max_flows: client flows kept; the least recently used is closed beyond it.
    :param max_delayed: datagrams held for a delay at once; further ones are dropped.
    """

    def __init__(
        self,
        target: str,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        rng: random.Random | None = None,
        max_flows: int = 256,
        max_delayed: int = 4096,
    ) -> None:
        self.target = _split(target)
        self._rng = rng or random.Random()
        self._max_flows = max_flows
        self._max_delayed = max_delayed
        self._rules = {"in": LinkRule(), "out": LinkRule()}
        self._flows: OrderedDict[tuple[str, int], _Flow] = OrderedDict()
        self._delayed: set[asyncio.TimerHandle] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.counters = RelayCounters()
        self._front = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._front.setblocking(False)
        self._front.bind((host, port))

    @property
    def address(self) -> str:
        """``host:port`` to give clients instead of the target's."""
        host, port = self._front.getsockname()[:2]
        return f"{host}:{port}"

    @property
    def flow_count(self) -> int:
        return len(self._flows)

    def rule(self, direction: Literal["in", "out"]) -> LinkRule:
        return self._rules[direction]

    # -- control -------------------------------------------------------------------------------

    def start(self) -> None:
        """Start forwarding (call from the event loop's thread)."""
        if self._loop is not None:
            raise RuntimeError("the relay is already started")
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self._front.fileno(), self._on_front)

    def set(
        self,
        direction: Direction = "both",
        *,
        drop: float | None = None,
        delay: float | None = None,
        cut: bool | None = None,
    ) -> None:
        """Change the rule of one direction (or both); arguments left None are kept."""
        if drop is not None and not 0.0 <= drop <= 1.0:
            raise ValueError(f"drop must be within [0, 1], got {drop!r}")
        if delay is not None and delay < 0:
            raise ValueError(f"delay must be >= 0, got {delay!r}")
        for name in ("in", "out") if direction == "both" else (direction,):
            rule = self._rules[name]
            if drop is not None:
                rule.drop = drop
            if delay is not None:
                rule.delay = delay
            if cut is not None:
                rule.cut = cut

    def cut(self, direction: Direction = "both") -> None:
        """Drop every datagram in `direction` until `heal`."""
        self.set(direction, cut=True)

    def heal(self) -> None:
        """Back to plain forwarding in both directions (no cut, drop or delay)."""
        self._rules = {"in": LinkRule(), "out": LinkRule()}

    def close(self) -> None:
        """Stop forwarding and close every socket; held datagrams are discarded."""
        for handle in self._delayed:
            handle.cancel()
        self._delayed.clear()
        for flow in list(self._flows.values()):
            self._close_flow(flow)
        self._flows.clear()
        if self._loop is not None and self._front.fileno() >= 0:
            self._loop.remove_reader(self._front.fileno())
        self._front.close()

    def __repr__(self) -> str:
        return f"UdpRelay({self.address} -> {self.target[0]}:{self.target[1]}, {self._rules})"

    # -- forwarding ----------------------------------------------------------------------------

    def _on_front(self) -> None:
        for _ in range(_READS_PER_WAKEUP):
            try:
                data, client = self._front.recvfrom(_MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self.counters.errors += 1
                return
            flow = self._flow(client[:2])
            if flow is not None:
                self._forward("in", data, flow.sock.send)

    def _on_upstream(self, flow: _Flow) -> None:
        for _ in range(_READS_PER_WAKEUP):
            try:
                data = flow.sock.recv(_MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # e.g. ECONNREFUSED: the target's port is closed
                self.counters.errors += 1
                return
            self._forward("out", data, functools.partial(self._send_to_client, flow.client))

    def _forward(
        self, direction: Literal["in", "out"], data: bytes, send: Callable[[bytes], object]
    ) -> None:
        rule = self._rules[direction]
        if rule.cut or (rule.drop > 0.0 and self._rng.random() < rule.drop):
            self.counters.dropped[direction] += 1
            return
        if rule.delay <= 0.0:
            self._send(direction, data, send)
            return
        if len(self._delayed) >= self._max_delayed or self._loop is None:
            self.counters.dropped[direction] += 1
            return
        handle: asyncio.TimerHandle

        def later() -> None:
            self._delayed.discard(handle)
            self._send(direction, data, send)

        handle = self._loop.call_later(rule.delay, later)
        self._delayed.add(handle)

    def _send_to_client(self, client: tuple[str, int], data: bytes) -> None:
        self._front.sendto(data, client)

    def _send(self, direction: str, data: bytes, send: Callable[[bytes], object]) -> None:
        try:
            send(data)
            self.counters.forwarded[direction] += 1
        except OSError:
            self.counters.errors += 1

    def _flow(self, client: tuple[str, int]) -> _Flow | None:
        flow = self._flows.get(client)
        if flow is not None:
            self._flows.move_to_end(client)
            return flow
        if self._loop is None:
            return None
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            sock.bind((self._front.getsockname()[0], 0))
            sock.connect(self.target)
        except OSError:
            sock.close()
            self.counters.errors += 1
            return None
        flow = _Flow(client, sock)
        self._flows[client] = flow
        self._loop.add_reader(sock.fileno(), self._on_upstream, flow)
        while len(self._flows) > self._max_flows:
            _, old = self._flows.popitem(last=False)
            self._close_flow(old)
        return flow

    def _close_flow(self, flow: _Flow) -> None:
        if self._loop is not None and flow.sock.fileno() >= 0:
            self._loop.remove_reader(flow.sock.fileno())
        flow.sock.close()
