"""`ConnectionPool`: one connection per worker, bounded in count, closed when idle or gone.

Sans-IO: the pool only keeps the book (which worker has which connection, how many calls use
it, when it was last used) with time passed in; it never awaits. Methods that drop connections
*return* them, and the caller closes them (``await conn.close()``), so the pool can be driven
and tested without a loop.

- `acquire(worker_id, address, now)` returns the worker's connection, making one with the
  factory if there is none (or if the worker's address changed). When the pool is full, the
  least recently used connection with no call in flight is evicted to make room; when every
  connection is busy, `PoolExhausted` (RESOURCE_EXHAUSTED, ``not_processed``) is raised.
- `release(worker_id, now)` ends one use.
- `expire(now)` drops the connections idle (no call in flight) for `idle_timeout` seconds.
- `retain(alive)` drops the connections of workers no longer in `alive` (left or failed);
  `discard(worker_id)` drops one.
"""

from __future__ import annotations

from collections.abc import Callable, Container
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from ..errors import RpcError
from ..status import Status

__all__ = ["ConnectionPool", "PoolExhausted", "PooledConnection"]


class PooledConnection(Protocol):
    """What the pool holds: anything that can be closed."""

    async def close(self) -> None: ...


C = TypeVar("C", bound=PooledConnection)


class PoolExhausted(RpcError):
    """Every pooled connection is in use and the pool is at its bound."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            Status.RESOURCE_EXHAUSTED,
            f"connection pool full: {limit} connections, all with calls in flight",
            not_processed=True,
        )


@dataclass(slots=True)
class _Slot(Generic[C]):
    address: str
    connection: C
    in_use: int
    last_used: float


class ConnectionPool(Generic[C]):
    """One connection per worker; see the module docstring.

    :param factory: makes a connection to ``host:port`` (without awaiting: channels dial lazily).
    :param max_connections: the bound on connections held at once.
    :param idle_timeout: seconds without a call after which `expire` drops a connection.
    """

    def __init__(
        self,
        factory: Callable[[str], C],
        *,
        max_connections: int = 64,
        idle_timeout: float = 60.0,
    ) -> None:
        if max_connections < 1:
            raise ValueError(f"max_connections must be >= 1, got {max_connections}")
        if idle_timeout <= 0:
            raise ValueError(f"idle_timeout must be > 0, got {idle_timeout}")
        self._factory = factory
        self.max_connections = max_connections
        self.idle_timeout = idle_timeout
        self._slots: dict[str, _Slot[C]] = {}
        self.created = 0
        """Connections made so far (a health figure: churn shows up here)."""

    def acquire(self, worker_id: str, address: str, now: float) -> tuple[C, list[C]]:
        """The connection to use for one call to `worker_id`, plus connections to close."""
        to_close: list[C] = []
        slot = self._slots.get(worker_id)
        if slot is not None and slot.address != address:
            to_close.append(self._slots.pop(worker_id).connection)  # the worker moved
            slot = None
        if slot is None:
            if len(self._slots) >= self.max_connections:
                victim = self._lru_idle()
                if victim is None:
                    raise PoolExhausted(self.max_connections)
                to_close.append(self._slots.pop(victim).connection)
            slot = _Slot(address, self._factory(address), 0, now)
            self._slots[worker_id] = slot
            self.created += 1
        slot.in_use += 1
        slot.last_used = now
        return slot.connection, to_close

    def release(self, worker_id: str, connection: C, now: float) -> None:
        """One use of `connection` (from `acquire`) ended."""
        slot = self._slots.get(worker_id)
        if slot is not None and slot.connection is connection:
            slot.in_use = max(0, slot.in_use - 1)
            slot.last_used = now

    def get(self, worker_id: str) -> C | None:
        slot = self._slots.get(worker_id)
        return slot.connection if slot is not None else None

    def discard(self, worker_id: str) -> list[C]:
        """Drop the connection to `worker_id` (its calls in flight fail when it is closed)."""
        slot = self._slots.pop(worker_id, None)
        return [slot.connection] if slot is not None else []

    def retain(self, alive: Container[str]) -> list[C]:
        """Drop the connections of workers not in `alive`."""
        gone = [w for w in self._slots if w not in alive]
        return [self._slots.pop(w).connection for w in gone]

    def expire(self, now: float) -> list[C]:
        """Drop connections with no call in flight, unused for `idle_timeout` seconds."""
        idle = [
            w
            for w, s in self._slots.items()
            if s.in_use == 0 and now - s.last_used >= self.idle_timeout
        ]
        return [self._slots.pop(w).connection for w in idle]

    def next_deadline(self) -> float | None:
        """When `expire` will next drop something, if nothing is used before then."""
        times = [s.last_used + self.idle_timeout for s in self._slots.values() if s.in_use == 0]
        return min(times) if times else None

    def drain(self) -> list[C]:
        """Drop every connection (closing the channel)."""
        connections = [s.connection for s in self._slots.values()]
        self._slots.clear()
        return connections

    def in_use(self, worker_id: str) -> int:
        slot = self._slots.get(worker_id)
        return slot.in_use if slot is not None else 0

    def _lru_idle(self) -> str | None:
        idle = [(s.last_used, w) for w, s in self._slots.items() if s.in_use == 0]
        return min(idle)[1] if idle else None

    def __len__(self) -> int:
        return len(self._slots)

    def __contains__(self, worker_id: object) -> bool:
        return worker_id in self._slots

    def __repr__(self) -> str:
        busy = sum(1 for s in self._slots.values() if s.in_use)
        return (
            f"ConnectionPool(connections={len(self._slots)}/{self.max_connections}, busy={busy}, "
            f"idle_timeout={self.idle_timeout}s)"
        )
