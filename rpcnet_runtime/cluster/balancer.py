"""Load-balancing strategies, chosen by name and pluggable (ARCHITECTURE #9).

A strategy picks one endpoint out of a non-empty sequence of candidates that the registry has
already filtered (tags, health, exclusions). It sees only what `Endpoint` describes: an id, the
calls in flight and a latency estimate, so the same strategies work for any pool of endpoints.
Strategies are pure apart from their own small state (a round-robin cursor) and the injected
`random.Random`, so a seeded rng makes every choice reproducible.

Built in, each registered under its name:

``round_robin``
    Cycles through the candidates from a random starting offset (so that many clients started
    together do not all hit the first worker). Exact shares while the candidate set is stable.
``random``
    Uniform choice.
``least_connections``
    Fewest calls in flight; ties broken by the rng so equally idle workers share the load.
``p2c``
    Power of two choices over a peak-EWMA latency (Finagle's and linkerd's P2C-EWMA): two
    distinct candidates are drawn at random and the one with the lower cost
    ``latency * (in_flight + 1)`` wins. A slow worker (high latency) or a busy one (many calls
    in flight) loses the comparison, yet still gets the occasional call that refreshes its
    estimate once its latency has decayed. Unknown latency (no call has completed yet) borrows
    the other candidate's estimate, so in-flight counts decide.

`register_strategy(name, factory)` adds a user strategy; `create_strategy(name, rng)` builds one.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar, runtime_checkable

__all__ = [
    "Endpoint",
    "LeastConnections",
    "LoadBalancer",
    "PeakEwma",
    "PowerOfTwoChoices",
    "RandomChoice",
    "RoundRobin",
    "StrategyFactory",
    "available_strategies",
    "create_strategy",
    "register_strategy",
]


class Endpoint(Protocol):
    """What a strategy may look at; `Worker` snapshots satisfy it."""

    @property
    def id(self) -> str: ...

    @property
    def in_flight(self) -> int:
        """Calls sent to the endpoint that have not ended."""
        ...

    @property
    def latency_ewma(self) -> float | None:
        """Latency estimate in seconds (peak EWMA); None before any call completed."""
        ...


E = TypeVar("E", bound=Endpoint)


@runtime_checkable
class LoadBalancer(Protocol):
    """A strategy: picks one of a non-empty sequence of candidates."""

    name: str

    def pick(self, candidates: Sequence[E]) -> E:
        """One of `candidates` (never called with an empty sequence)."""
        ...


StrategyFactory = Callable[[random.Random], LoadBalancer]
"""Builds a strategy around the injected rng."""


def _require(candidates: Sequence[E]) -> None:
    if not candidates:
        raise ValueError("a strategy needs at least one candidate")


class RoundRobin:
    """Cycles through the candidates, starting at a random offset."""

    name = "round_robin"

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._cursor: int | None = None

    def pick(self, candidates: Sequence[E]) -> E:
        _require(candidates)
        if self._cursor is None:
            self._cursor = self._rng.randrange(len(candidates))
        index = self._cursor % len(candidates)
        self._cursor = index + 1
        return candidates[index]

    def __repr__(self) -> str:
        return f"RoundRobin(cursor={self._cursor})"


class RandomChoice:
    """Uniformly random."""

    name = "random"

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng

    def pick(self, candidates: Sequence[E]) -> E:
        _require(candidates)
        return candidates[self._rng.randrange(len(candidates))]

    def __repr__(self) -> str:
        return "RandomChoice()"


class LeastConnections:
    """Fewest calls in flight; ties broken at random."""

    name = "least_connections"

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng

    def pick(self, candidates: Sequence[E]) -> E:
        _require(candidates)
        fewest = min(c.in_flight for c in candidates)
        tied = [c for c in candidates if c.in_flight == fewest]
        return tied[self._rng.randrange(len(tied))] if len(tied) > 1 else tied[0]

    def __repr__(self) -> str:
        return "LeastConnections()"


class PowerOfTwoChoices:
    """Power of two choices on ``latency * (in_flight + 1)``; see the module docstring."""

    name = "p2c"

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng

    @staticmethod
    def cost(endpoint: Endpoint, fallback_latency: float | None = None) -> float:
        """The load figure P2C compares: lower is better."""
        latency = endpoint.latency_ewma
        if latency is None:
            latency = fallback_latency if fallback_latency is not None else 1.0
        # A latency that decayed to zero must still let in-flight counts break the tie.
        return max(latency, 1e-9) * (endpoint.in_flight + 1)

    def pick(self, candidates: Sequence[E]) -> E:
        _require(candidates)
        if len(candidates) == 1:
            return candidates[0]
        i, j = self._rng.sample(range(len(candidates)), 2)
        a, b = candidates[i], candidates[j]
        cost_a = self.cost(a, b.latency_ewma)
        cost_b = self.cost(b, a.latency_ewma)
        if cost_a == cost_b:
            return a  # a and b are already in random order
        return a if cost_a < cost_b else b

    def __repr__(self) -> str:
        return "PowerOfTwoChoices()"


_STRATEGIES: dict[str, StrategyFactory] = {}


def register_strategy(name: str, factory: StrategyFactory, *, replace: bool = False) -> None:
    """Make `factory` available as `name` (an error if taken, unless `replace`)."""
    if not name or not isinstance(name, str):
        raise ValueError(f"bad strategy name {name!r}")
    if name in _STRATEGIES and not replace:
        raise ValueError(f"load-balancing strategy {name!r} is already registered")
    _STRATEGIES[name] = factory


def available_strategies() -> list[str]:
    """Registered strategy names, sorted."""
    return sorted(_STRATEGIES)


def create_strategy(name: str, rng: random.Random | None = None) -> LoadBalancer:
    """A new instance of the strategy registered as `name`, around `rng` (a fresh one if None)."""
    factory = _STRATEGIES.get(name)
    if factory is None:
        known = ", ".join(available_strategies())
        raise ValueError(f"unknown load-balancing strategy {name!r} (known: {known})")
    return factory(rng if rng is not None else random.Random())


register_strategy(RoundRobin.name, RoundRobin)
register_strategy(RandomChoice.name, RandomChoice)
register_strategy(LeastConnections.name, LeastConnections)
register_strategy(PowerOfTwoChoices.name, PowerOfTwoChoices)


class PeakEwma:
    """Latency estimate for P2C: jumps to a slower sample at once, decays towards faster ones.

    As Finagle's peak EWMA: with ``w = exp(-elapsed / decay)`` a sample above the current estimate
    replaces it; any other is blended in as ``estimate * w + sample * (1 - w)``. Reading decays the
    estimate towards zero with the same weight, so a worker that was slow once and then avoided
    is retried after a few `decay` periods. Times are in seconds and passed in.
    """

    __slots__ = ("_decay", "_stamp", "_value")

    def __init__(self, decay: float = 10.0) -> None:
        if not decay > 0 or not math.isfinite(decay):
            raise ValueError(f"decay must be a positive number of seconds, got {decay!r}")
        self._decay = decay
        self._value: float | None = None
        self._stamp = 0.0

    def value(self, now: float) -> float | None:
        """The estimate at `now`; None before the first sample."""
        if self._value is None:
            return None
        return self._value * self._weight(now)

    def observe(self, sample: float, now: float) -> None:
        """Fold in a latency `sample` (seconds) measured at `now`."""
        if not math.isfinite(sample) or sample < 0:
            raise ValueError(f"latency must be a finite number >= 0, got {sample!r}")
        if self._value is None:
            self._value = sample
        else:
            w = self._weight(now)
            current = self._value * w
            self._value = sample if sample > current else current + sample * (1 - w)
        self._stamp = max(self._stamp, now)

    def _weight(self, now: float) -> float:
        return math.exp(-max(0.0, now - self._stamp) / self._decay)

    def __repr__(self) -> str:
        return f"PeakEwma(value={self._value!r}, decay={self._decay})"
