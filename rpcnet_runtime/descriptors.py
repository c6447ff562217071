"""What generated code tells the runtime about a service: its methods and their policies.

The generator emits one `ServiceDescriptor` per service, holding a `MethodDescriptor` per method.
A descriptor is plain data; the runtime reads it to route calls, encode and decode messages and
carry out the method's timeout, retry, hedging and idempotency policy.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, Self, TypeVar

from .errors import SchemaError
from .status import Status

__all__ = [
    "HedgePolicy",
    "MethodDescriptor",
    "MethodKind",
    "MethodPolicy",
    "RetryPolicy",
    "ServiceDescriptor",
    "WireMessage",
]


class WireMessage(Protocol):
    """A generated message or union: a msgpack map from field number to value."""

    def to_wire(self) -> dict[int, Any]: ...

    @classmethod
    def from_wire(cls, data: Any) -> Self: ...


RequestT = TypeVar("RequestT", bound=WireMessage)
ResponseT = TypeVar("ResponseT", bound=WireMessage)


class MethodKind(enum.Enum):
    """The streaming kind of a method, named as gRPC names them."""

    UNARY_UNARY = "unary_unary"
    UNARY_STREAM = "unary_stream"  # server streaming
    STREAM_UNARY = "stream_unary"  # client streaming
    STREAM_STREAM = "stream_stream"  # bidirectional

    @property
    def client_streams(self) -> bool:
        return self in (MethodKind.STREAM_UNARY, MethodKind.STREAM_STREAM)

    @property
    def server_streams(self) -> bool:
        return self in (MethodKind.UNARY_STREAM, MethodKind.STREAM_STREAM)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """``@retry(attempts=, backoff=MIN..MAX, on=[...])``: gRFC A6 retries with full jitter."""

    max_attempts: int
    """Attempts in all, the first included (>= 2)."""
    initial_backoff: float
    """Seconds: the upper bound of the first jittered wait."""
    max_backoff: float
    """Seconds: the cap of the jittered wait."""
    backoff_multiplier: float = 2.0
    retryable_statuses: frozenset[Status] = frozenset()
    retryable_errors: tuple[type[SchemaError], ...] = ()


@dataclass(frozen=True, slots=True)
class HedgePolicy:
    """``@hedge(after=, attempts=)``: send another attempt every `delay` until one answers."""

    max_attempts: int
    delay: float
    """Seconds between hedged attempts."""
    non_fatal_statuses: frozenset[Status] = frozenset()
    """Statuses after which the remaining hedges go on rather than the call failing at once."""


@dataclass(frozen=True, slots=True)
class MethodPolicy:
    """The resilience a schema declares for a method (service defaults already merged in)."""

    timeout: float | None = None
    """``@timeout``: seconds for the whole logical call, every attempt included."""
    attempt_timeout: float | None = None
    """Optional per-attempt bound, in seconds."""
    idempotent: bool = False
    """``@idempotent``: safe to run more than once, so retries after dispatch are allowed."""
    idempotency_key_field: str | None = None
    """``@idempotent(key = f)``: the Python attribute of the request that is the key."""
    retry: RetryPolicy | None = None
    hedge: HedgePolicy | None = None
    deprecated: str | None = None
    """``@deprecated("why")``: the reason, or None when the method is current."""


@dataclass(frozen=True, slots=True)
class MethodDescriptor(Generic[RequestT, ResponseT]):
    """One rpc of a service as the runtime needs it."""

    service: str
    """Fully qualified service name, such as ``acme.compute.v1.ComputeService``."""
    name: str
    """The method's schema name, such as ``Process``."""
    py_name: str
    """The Python method name on the client and the skeleton, such as ``process``."""
    kind: MethodKind
    request_type: type[RequestT]
    response_type: type[ResponseT]
    errors: tuple[type[SchemaError], ...] = ()
    """The schema errors the method ``throws``, raised again in the caller as these classes."""
    policy: MethodPolicy = field(default_factory=MethodPolicy)
    path: str = field(init=False, repr=False, compare=False)
    """The wire name: ``package.Service/Method``."""
    server_streams: bool = field(init=False, repr=False, compare=False)
    """The method answers with a stream of messages (``kind.server_streams``)."""

    def __post_init__(self) -> None:
        # Read on every call: worked out once here.
        object.__setattr__(self, "path", f"{self.service}/{self.name}")
        object.__setattr__(self, "server_streams", self.kind.server_streams)


@dataclass(frozen=True, slots=True)
class ServiceDescriptor:
    """A service: its fully qualified name and its methods in schema order."""

    name: str
    methods: tuple[MethodDescriptor[Any, Any], ...]

    def method(self, name: str) -> MethodDescriptor[Any, Any] | None:
        """The method with schema name `name`, or None."""
        for method in self.methods:
            if method.name == name:
                return method
        return None
