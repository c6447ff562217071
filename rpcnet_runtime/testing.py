"""Test support: a fake clock, an in-memory network and a simulated SWIM cluster.

Everything runs in virtual time: nothing sleeps, and every random choice comes from an injected
`random.Random`, so a test with a given seed always sees the same run.

- `FakeClock`: time that moves only when told to.
- `MockNetwork`: named endpoints exchanging datagrams with per-link drop rate, delay and cuts
  (partitions); sending to an address nobody listens on raises `NoRouteError`.
- `SimulatedCluster`: N `SwimNode`s on a `MockNetwork`, driven by an event loop over virtual time
  (`run_until`), with `kill`, `pause`/`resume` (SIGSTOP) and per-node event logs.
- `UdpRelay` (from `rpcnet_runtime.udp_relay`): a real UDP forwarder on loopback, in front of a
  node's QUIC server, with per-direction drop, delay and cut, for real-network tests.
"""

from __future__ import annotations

import heapq
import math
import random
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .cluster.config import ClusterConfig
from .cluster.swim import SwimNode
from .cluster.types import ClusterEvent, Member
from .udp_relay import LinkRule, UdpRelay

__all__ = [
    "FakeClock",
    "LinkRule",
    "MockNetwork",
    "NoRouteError",
    "SimulatedCluster",
    "UdpRelay",
]


class FakeClock:
    """A monotonic clock that only moves when told to."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = float(start)

    def now(self) -> float:
        return self._now

    def __call__(self) -> float:
        return self._now

    def advance(self, seconds: float) -> float:
        """Move forward by `seconds` (>= 0); returns the new time."""
        if seconds < 0 or not math.isfinite(seconds):
            raise ValueError(f"cannot advance by {seconds!r}")
        self._now += seconds
        return self._now

    def set(self, when: float) -> None:
        """Move to `when`, which must not be in the past."""
        if when < self._now:
            raise ValueError(f"time cannot go backwards ({when!r} < {self._now!r})")
        self._now = float(when)

    def __repr__(self) -> str:
        return f"FakeClock({self._now!r})"


class NoRouteError(ConnectionError):
    """Nobody listens on the destination address."""


@dataclass(slots=True)
class _Link:
    drop: float | None = None
    delay: float | None = None
    cut: bool = False


class MockNetwork:
    """In-memory datagrams between named addresses, in virtual time.

    :param rng: source of drop decisions.
    :param delay: default one-way delay in seconds.
    :param drop: default probability that a datagram is lost.
    """

    def __init__(self, *, rng: random.Random, delay: float = 0.0005, drop: float = 0.0) -> None:
        self._rng = rng
        self.delay = delay
        self.drop = drop
        self._endpoints: set[str] = set()
        self._links: dict[tuple[str, str], _Link] = {}
        self._groups: dict[str, int] | None = None
        self._in_flight: list[tuple[float, int, str, str, bytes]] = []
        self._counter = 0
        self.sent: Counter[str] = Counter()
        """Datagrams sent, by source address."""
        self.dropped = 0
        self.delivered = 0

    def attach(self, address: str) -> None:
        self._endpoints.add(address)

    def is_attached(self, address: str) -> bool:
        return address in self._endpoints

    def detach(self, address: str) -> None:
        """Stop listening on `address`: later sends to it raise `NoRouteError`, and datagrams
        already in flight to it are lost."""
        self._endpoints.discard(address)

    def set_link(
        self,
        src: str,
        dst: str,
        *,
        drop: float | None = None,
        delay: float | None = None,
        cut: bool = False,
        both_ways: bool = True,
    ) -> None:
        """Override drop rate, delay or cut the link from `src` to `dst` (and back)."""
        for key in [(src, dst), (dst, src)] if both_ways else [(src, dst)]:
            self._links[key] = _Link(drop, delay, cut)

    def reset_links(self) -> None:
        self._links.clear()

    def partition(self, *groups: Iterable[str]) -> None:
        """Only addresses in the same group reach each other (unlisted ones reach everyone)."""
        self._groups = {a: i for i, group in enumerate(groups) for a in group}

    def heal(self) -> None:
        """Undo `partition`."""
        self._groups = None

    def send(self, src: str, dst: str, data: bytes, now: float) -> None:
        """Queue `data` for delivery; it may be dropped silently, like a datagram."""
        if dst not in self._endpoints:
            raise NoRouteError(f"no route to {dst}")
        self.sent[src] += 1
        link = self._links.get((src, dst))
        if (link is not None and link.cut) or self._separated(src, dst):
            self.dropped += 1
            return
        drop = link.drop if link is not None and link.drop is not None else self.drop
        if drop and self._rng.random() < drop:
            self.dropped += 1
            return
        delay = link.delay if link is not None and link.delay is not None else self.delay
        self._counter += 1
        heapq.heappush(self._in_flight, (now + delay, self._counter, src, dst, data))

    def next_delivery(self) -> float | None:
        return self._in_flight[0][0] if self._in_flight else None

    def pop(self) -> tuple[float, str, str, bytes] | None:
        """The next datagram in delivery order (to an attached endpoint), or None."""
        while self._in_flight:
            when, _, src, dst, data = heapq.heappop(self._in_flight)
            if dst in self._endpoints:
                self.delivered += 1
                return when, src, dst, data
            self.dropped += 1
        return None

    def _separated(self, src: str, dst: str) -> bool:
        if self._groups is None:
            return False
        a, b = self._groups.get(src), self._groups.get(dst)
        return a is not None and b is not None and a != b


class SimulatedCluster:
    """SWIM nodes on a `MockNetwork`, run in virtual time.

    :param config: every node's configuration.
    :param n: nodes to create (ids ``n0``... at addresses ``node0:7946``...).
    :param bootstrap: start every node knowing every other (no join traffic); otherwise nodes
        are created alone and join through ``join()``.
    """

    def __init__(
        self,
        config: ClusterConfig,
        n: int = 0,
        *,
        seed: int = 0,
        bootstrap: bool = True,
        delay: float = 0.0005,
        drop: float = 0.0,
        start: float = 0.0,
        max_steps: int = 50_000_000,
    ) -> None:
        self.config = config
        self.rng = random.Random(seed)
        self.clock = FakeClock(start)
        self.network = MockNetwork(rng=random.Random(self.rng.random()), delay=delay, drop=drop)
        self.nodes: dict[str, SwimNode] = {}
        self.events: dict[str, list[tuple[float, ClusterEvent]]] = {}
        self.no_route = 0
        self.max_steps = max_steps
        self._paused: dict[str, list[tuple[str, bytes]]] = {}
        self._heap: list[tuple[float, int, str]] = []
        self._scheduled: dict[str, float] = {}
        self._counter = 0
        for i in range(n):
            self.add_node(f"n{i}", f"node{i}:7946")
        if bootstrap and n:
            members = [Member(node.id, node.address) for node in self.nodes.values()]
            for node in self.nodes.values():
                node.seed_members(members, self.clock.now())
                self._schedule(node.address)

    def add_node(
        self, node_id: str, address: str, tags: Mapping[str, str] | None = None
    ) -> SwimNode:
        """Create a node listening on `address` (replacing a dead one there)."""
        node = SwimNode(
            self.config,
            node_id,
            address,
            tags,
            rng=random.Random(self.rng.random()),
            now=self.clock.now(),
        )
        self.nodes[address] = node
        self.events[address] = []
        self._paused.pop(address, None)
        self.network.attach(address)
        self._schedule(address)
        return node

    def join(self, address: str, seeds: Iterable[str]) -> None:
        self.nodes[address].join(list(seeds), self.clock.now())
        self._flush(address)

    def leave(self, address: str) -> None:
        """Graceful leave of the node at `address` (it keeps running to spread the news)."""
        self.nodes[address].leave(self.clock.now())
        self._flush(address)

    def update_tags(self, address: str, tags: Mapping[str, str]) -> None:
        self.nodes[address].update_tags(tags, self.clock.now())
        self._flush(address)

    def kill(self, address: str) -> None:
        """Crash the node: it stops running and datagrams to it find no route."""
        self.network.detach(address)
        self._scheduled.pop(address, None)
        self._paused.pop(address, None)

    def pause(self, address: str) -> None:
        """SIGSTOP: the node stops running; datagrams to it wait until `resume`."""
        self._paused.setdefault(address, [])

    def resume(self, address: str, *, timers_first: bool = False) -> None:
        """SIGCONT: the node handles what arrived meanwhile, then runs its timers.

        :param timers_first: run the expired timers before reading the backlog (an event loop
            may well do that after a pause).
        """
        backlog = self._paused.pop(address, [])
        node = self.nodes[address]
        if timers_first:
            node.tick(self.clock.now())
        for src, data in backlog:
            node.receive(src, data, self.clock.now())
        self._flush(address)

    def alive(self) -> list[SwimNode]:
        """Nodes that are running (not killed)."""
        return [n for a, n in self.nodes.items() if self.network.is_attached(a)]

    def run_for(self, seconds: float) -> None:
        self.run_until(self.clock.now() + seconds)

    def run_until(self, end: float) -> None:
        """Deliver datagrams and fire timers in time order up to `end`."""
        steps = 0
        while True:
            t_msg = self.network.next_delivery()
            t_msg = math.inf if t_msg is None else t_msg
            t_tick = self._heap[0][0] if self._heap else math.inf
            t = min(t_msg, t_tick)
            if t > end:
                break
            steps += 1
            if steps > self.max_steps:
                raise RuntimeError(f"simulation did not settle within {self.max_steps} steps")
            self.clock.set(max(t, self.clock.now()))
            now = self.clock.now()
            if t_msg <= t_tick:
                item = self.network.pop()
                if item is None:
                    continue
                _, src, dst, data = item
                if dst in self._paused:
                    self._paused[dst].append((src, data))
                    continue
                self.nodes[dst].receive(src, data, now)
                self._flush(dst)
            else:
                when, _, address = heapq.heappop(self._heap)
                if self._scheduled.get(address) != when:
                    continue
                del self._scheduled[address]
                if address in self._paused:
                    continue  # resume() reschedules
                self.nodes[address].tick(now)
                self._flush(address)
        self.clock.set(max(end, self.clock.now()))

    def _flush(self, address: str) -> None:
        node = self.nodes[address]
        now = self.clock.now()
        for dst, data in node.take_outgoing():
            try:
                self.network.send(address, dst, data, now)
            except NoRouteError:
                self.no_route += 1
        log = self.events[address]
        log.extend((now, e) for e in node.take_events())
        self._schedule(address)

    def _schedule(self, address: str) -> None:
        if not self.network.is_attached(address):
            return
        deadline = self.nodes[address].next_deadline()
        if deadline is None:
            self._scheduled.pop(address, None)
            return
        deadline = max(deadline, self.clock.now())
        if self._scheduled.get(address) == deadline:
            return
        self._scheduled[address] = deadline
        self._counter += 1
        heapq.heappush(self._heap, (deadline, self._counter, address))
