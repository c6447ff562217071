"""The server's idempotency store: a repeated key gets the stored result, not a second run.

`IdempotencyStore` is the interface (async, so a shared store such as Redis can be plugged
in); `InMemoryIdempotencyStore` is the default. The server scopes keys before using them
(method path and, under mutual TLS, the peer identity) and passes a fingerprint of the request
(see `request_fingerprint`). `begin` answers with a `Claim`:

- ``RUN``: you own the key; run the handler, then `complete` (success or a schema error, whose
  encoded reply is stored) or `abandon` (a transient failure: UNAVAILABLE, CANCELLED,
  DEADLINE_EXCEEDED, INTERNAL, so that a retry runs again).
- ``STORED``: the key has a stored reply (`Claim.result`); send it without running anything.
- ``WAIT``: the first execution is still running; `wait` for its reply. If the owner abandons,
  one waiter becomes the new owner (``RUN``) and the others keep waiting.
- ``CONFLICT``: the key was used with a different request. The caller gets FAILED_PRECONDITION:
  the request cannot succeed until the caller picks a new key; ALREADY_EXISTS was rejected as it
  suggests the resource the call creates already exists, which is not what happened.
- ``REJECTED``: the store is full of in-flight entries, or a key has too many waiters; the caller
  gets RESOURCE_EXHAUSTED marked ``not_processed`` so it may retry safely.

Hedged attempts (``is_hedge=True``) are never held back: while the key is in flight they get
``RUN`` and execute side by side; the first to `complete` is the stored result and later
completions are ignored. The store is bounded in entries and bytes (least recently used
completed entries are evicted first); a completed entry expires `ttl` seconds after it was
stored.
"""

from __future__ import annotations

import abc
import asyncio
import enum
import hashlib
import itertools
from collections import OrderedDict
from dataclasses import dataclass, field

from ..clock import Clock
from ..errors import RpcError
from ..status import Status
from .counters import PolicyCounters

__all__ = [
    "Claim",
    "ClaimKind",
    "IdempotencyStore",
    "InMemoryIdempotencyStore",
    "request_fingerprint",
]

CONFLICT_STATUS = Status.FAILED_PRECONDITION


class ClaimKind(enum.Enum):
    RUN = "run"
    STORED = "stored"
    WAIT = "wait"
    CONFLICT = "conflict"
    REJECTED = "rejected"


@dataclass(frozen=True, slots=True)
class Claim:
    """The store's answer to `begin`; pass it back to `wait`, `complete` or `abandon`."""

    kind: ClaimKind
    key: str
    token: int = 0
    """Identifies the runner for RUN claims."""
    result: bytes | None = None
    """The stored reply, for STORED claims."""
    message: str = ""

    def error(self) -> RpcError:
        """The error to answer a CONFLICT or REJECTED claim with."""
        if self.kind is ClaimKind.CONFLICT:
            return RpcError(CONFLICT_STATUS, self.message)
        if self.kind is ClaimKind.REJECTED:
            return RpcError(Status.RESOURCE_EXHAUSTED, self.message, not_processed=True)
        raise ValueError(f"a {self.kind.name} claim is not an error")


def request_fingerprint(method: str, payload: bytes) -> bytes:
    """A digest identifying a request: same method and same encoded request, same digest."""
    digest = hashlib.sha256(method.encode())
    digest.update(b"\0")
    digest.update(payload)
    return digest.digest()


class IdempotencyStore(abc.ABC):
    """Where the server records the outcome of each idempotency key (module docstring)."""

    @abc.abstractmethod
    async def begin(self, key: str, fingerprint: bytes, *, is_hedge: bool = False) -> Claim:
        """Claim `key` for a request with `fingerprint`."""

    @abc.abstractmethod
    async def wait(self, claim: Claim) -> Claim:
        """Resolve a WAIT claim: STORED once the owner completes, RUN if it abandoned and this
        waiter takes over, REJECTED if the key has too many waiters. Cancel it to stop waiting.
        """

    @abc.abstractmethod
    async def complete(self, claim: Claim, result: bytes) -> None:
        """Store the reply of a RUN claim (the first completion of a key wins)."""

    @abc.abstractmethod
    async def abandon(self, claim: Claim) -> None:
        """Give up a RUN claim after a transient failure, so that a retry runs again."""


@dataclass(slots=True)
class _Entry:
    fingerprint: bytes
    runners: set[int] = field(default_factory=set)
    result: bytes | None = None
    size: int = 0
    waiters: int = 0
    event: asyncio.Event | None = None


class InMemoryIdempotencyStore(IdempotencyStore):
    """The default store: a bounded LRU in this process (see the module docstring)."""

    def __init__(
        self,
        *,
        clock: Clock,
        max_entries: int = 10_000,
        max_bytes: int = 64 * 1024 * 1024,
        ttl: float = 300.0,
        max_waiters_per_key: int = 64,
        counters: PolicyCounters | None = None,
    ) -> None:
        if max_entries < 1 or max_bytes < 1 or ttl <= 0 or max_waiters_per_key < 0:
            raise ValueError("bad idempotency store bounds")
        self._clock = clock
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.ttl = ttl
        self.max_waiters_per_key = max_waiters_per_key
        self.counters = counters or PolicyCounters()
        self._entries: OrderedDict[str, _Entry] = OrderedDict()  # least recently used first
        self._expiry: OrderedDict[str, float] = OrderedDict()  # completed keys, oldest first
        self._bytes = 0
        self._in_flight = 0
        self._tokens = itertools.count(1)

    @property
    def stored_bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)

    async def begin(self, key: str, fingerprint: bytes, *, is_hedge: bool = False) -> Claim:
        self._purge_expired(self._clock.now())
        entry = self._entries.get(key)
        if entry is None:
            return self._start(key, fingerprint)
        if entry.fingerprint != fingerprint:
            self.counters.dedupe_conflicts += 1
            return Claim(
                ClaimKind.CONFLICT, key, message="idempotency key reused with a different request"
            )
        if entry.result is not None:
            self._entries.move_to_end(key)
            self.counters.dedupe_hits += 1
            return Claim(ClaimKind.STORED, key, result=entry.result)
        if is_hedge or not entry.runners:
            return self._take_over(key, entry)
        return Claim(ClaimKind.WAIT, key)

    async def wait(self, claim: Claim) -> Claim:
        if claim.kind is not ClaimKind.WAIT:
            raise ValueError(f"wait() needs a WAIT claim, got {claim.kind.name}")
        entry = self._entries.get(claim.key)
        while True:
            if entry is None:
                # Completed and expired between begin() and wait(): rare; the caller may retry.
                self.counters.dedupe_rejected += 1
                return Claim(ClaimKind.REJECTED, claim.key, message="idempotency entry expired")
            if entry.result is not None:
                self.counters.dedupe_hits += 1
                return Claim(ClaimKind.STORED, claim.key, result=entry.result)
            if not entry.runners:
                return self._take_over(claim.key, entry)
            if entry.waiters >= self.max_waiters_per_key:
                self.counters.dedupe_rejected += 1
                return Claim(ClaimKind.REJECTED, claim.key, message="too many waiters for key")
            if entry.event is None:
                entry.event = asyncio.Event()
            event = entry.event
            entry.waiters += 1
            self.counters.dedupe_waits += 1
            try:
                await event.wait()
            finally:
                entry.waiters -= 1
            # Keep the entry we waited on: a completed reply too big to store was dropped from
            # the table but is still readable here.

    async def complete(self, claim: Claim, result: bytes) -> None:
        entry = self._entries.get(claim.key)
        if entry is None or claim.token not in entry.runners:
            return  # a late hedge, or an entry that was evicted or expired meanwhile
        entry.runners.discard(claim.token)
        if entry.result is not None:
            return  # another hedge finished first; its reply is the stored one
        self._in_flight -= 1
        entry.result = result
        entry.size = len(result) + len(claim.key) + len(entry.fingerprint)
        entry.runners.clear()
        if entry.event is not None:
            entry.event.set()
        if entry.size > self.max_bytes:
            self._drop(claim.key)  # waiters already woken still read entry.result
            return
        self._bytes += entry.size
        self._entries.move_to_end(claim.key)
        self._expiry[claim.key] = self._clock.now() + self.ttl
        self._evict()

    async def abandon(self, claim: Claim) -> None:
        entry = self._entries.get(claim.key)
        if entry is None or claim.token not in entry.runners:
            return
        entry.runners.discard(claim.token)
        if entry.runners or entry.result is not None:
            return  # a hedge of the same key is still running
        if entry.waiters and entry.event is not None:
            entry.event.set()  # one waiter takes over; the entry stays in flight
            return
        self._in_flight -= 1
        del self._entries[claim.key]

    # -- bookkeeping -----------------------------------------------------------------------------

    def _start(self, key: str, fingerprint: bytes) -> Claim:
        if len(self._entries) >= self.max_entries:
            self._evict(extra=1)
        if len(self._entries) >= self.max_entries:
            self.counters.dedupe_rejected += 1
            return Claim(ClaimKind.REJECTED, key, message="idempotency store full")
        token = next(self._tokens)
        self._entries[key] = _Entry(fingerprint=fingerprint, runners={token})
        self._in_flight += 1
        return Claim(ClaimKind.RUN, key, token=token)

    def _take_over(self, key: str, entry: _Entry) -> Claim:
        """Add a runner to an in-flight entry (a hedge, or a waiter whose owner abandoned)."""
        token = next(self._tokens)
        entry.runners.add(token)
        if entry.event is not None and entry.event.is_set():
            entry.event = None  # waiters woken by the abandon wait on a fresh event
        return Claim(ClaimKind.RUN, key, token=token)

    def _drop(self, key: str) -> None:
        entry = self._entries.pop(key)
        if key in self._expiry:
            del self._expiry[key]
            self._bytes -= entry.size

    def _evict(self, extra: int = 0) -> None:
        """Evict least recently used completed entries until within bounds."""
        if len(self._entries) + extra <= self.max_entries and self._bytes <= self.max_bytes:
            return
        entries = len(self._entries) + extra
        size = self._bytes
        victims: list[str] = []
        for key, entry in self._entries.items():  # least recently used first; stops early
            if entries <= self.max_entries and size <= self.max_bytes:
                break
            if entry.result is not None:
                victims.append(key)
                entries -= 1
                size -= entry.size
        for key in victims:
            self._drop(key)

    def _purge_expired(self, now: float) -> None:
        while self._expiry:
            key, expires = next(iter(self._expiry.items()))
            if expires > now:
                return
            self._drop(key)

    def __repr__(self) -> str:
        return (
            f"InMemoryIdempotencyStore(entries={len(self._entries)}, in_flight={self._in_flight}, "
            f"bytes={self._bytes})"
        )
