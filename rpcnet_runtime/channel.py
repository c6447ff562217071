"""The `Channel` protocol: what a generated client stub calls.

`connect()` returns a channel to one server; `ClusterChannel` is a channel to a set of workers.
Either one carries out the method's policy from its `MethodDescriptor`.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Protocol

from .descriptors import MethodDescriptor

__all__ = ["NO_CALL_OPTIONS", "CallOptions", "Channel"]

from .descriptors import RequestT, ResponseT


@dataclass(frozen=True, slots=True)
class CallOptions:
    """Per-call overrides a stub method accepts as keyword arguments."""

    timeout: float | None = None
    """Seconds for the whole logical call; overrides the schema's ``@timeout`` when given."""
    metadata: Mapping[str, str] | None = None
    idempotency_key: str | None = None
    """The caller's key; else taken from the ``@idempotent(key=...)`` field, else random."""


NO_CALL_OPTIONS = CallOptions()
"""The options of a call that passes none (shared: options are immutable)."""


class Channel(Protocol):
    """Something that carries calls: one server's connection, or a cluster."""

    async def unary_unary(
        self,
        method: MethodDescriptor[RequestT, ResponseT],
        request: RequestT,
        options: CallOptions,
    ) -> ResponseT: ...

    def unary_stream(
        self,
        method: MethodDescriptor[RequestT, ResponseT],
        request: RequestT,
        options: CallOptions,
    ) -> AsyncIterator[ResponseT]: ...

    async def stream_unary(
        self,
        method: MethodDescriptor[RequestT, ResponseT],
        requests: AsyncIterable[RequestT],
        options: CallOptions,
    ) -> ResponseT: ...

    def stream_stream(
        self,
        method: MethodDescriptor[RequestT, ResponseT],
        requests: AsyncIterable[RequestT],
        options: CallOptions,
    ) -> AsyncIterator[ResponseT]: ...

    async def close(self) -> None: ...
