"""`CallContext`: what a handler knows about the call it is serving."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextvars import ContextVar
from types import MappingProxyType

__all__ = ["CallContext", "current_call"]

_NO_METADATA: Mapping[str, str] = MappingProxyType({})


class CallContext:
    """The call a handler serves: deadline, metadata, idempotency key, attempt and peer.

    The server builds one per call; `clock` is the loop's monotonic clock and `deadline` an
    absolute time on it (None when the caller set no deadline).
    """

    __slots__ = (
        "_cancelled",
        "_clock",
        "attempt",
        "deadline",
        "idempotency_key",
        "is_hedge",
        "metadata",
        "method",
        "peer",
        "peer_identity",
        "response_metadata",
    )

    def __init__(
        self,
        *,
        method: str,
        clock: Callable[[], float],
        deadline: float | None = None,
        metadata: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
        attempt: int = 1,
        is_hedge: bool = False,
        peer: str = "",
        peer_identity: str | None = None,
    ) -> None:
        self.method = method
        """The wire name, ``package.Service/Method``."""
        self._clock = clock
        self.deadline = deadline
        self.metadata: Mapping[str, str] = (
            MappingProxyType(dict(metadata)) if metadata else _NO_METADATA
        )
        self.idempotency_key = idempotency_key
        self.attempt = attempt
        """1 for the first attempt, 2 for the first retry or hedge, and so on."""
        self.is_hedge = is_hedge
        self.peer = peer
        """The caller's address, ``host:port``."""
        self.peer_identity = peer_identity
        """The client certificate's subject under mutual TLS, else None."""
        self.response_metadata: dict[str, str] = {}
        """Metadata the handler wants sent back in the trailer."""
        self._cancelled = False

    def time_remaining(self) -> float | None:
        """Seconds left before the caller's deadline (never negative), or None without one."""
        if self.deadline is None:
            return None
        return max(0.0, self.deadline - self._clock())

    def cancelled(self) -> bool:
        """True once the caller has gone or the deadline has passed."""
        if self._cancelled:
            return True
        return self.deadline is not None and self._clock() >= self.deadline

    def mark_cancelled(self) -> None:
        """Called by the server when the caller reset the stream or the connection died."""
        self._cancelled = True

    def __repr__(self) -> str:
        return (
            f"CallContext(method={self.method!r}, peer={self.peer!r}, attempt={self.attempt}, "
            f"time_remaining={self.time_remaining()!r})"
        )


_current_call: ContextVar[CallContext | None] = ContextVar("rpcnet_current_call", default=None)


def current_call() -> CallContext | None:
    """The call the running handler serves, or None outside a handler.

    The server sets it around each handler, so outgoing calls made inside a handler can inherit
    its remaining deadline without the user passing it on.
    """
    return _current_call.get()
