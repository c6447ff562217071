"""rpcnet's runtime: RPC over QUIC and TLS 1.3, call policies and cluster membership."""

from .channel import CallOptions, Channel
from .context import CallContext
from .descriptors import (
    HedgePolicy,
    MethodDescriptor,
    MethodKind,
    MethodPolicy,
    RetryPolicy,
    ServiceDescriptor,
)
from .errors import RpcError, SchemaError, WireDecodeError
from .status import Status

__all__ = [
    "CallContext",
    "CallOptions",
    "Channel",
    "HedgePolicy",
    "MethodDescriptor",
    "MethodKind",
    "MethodPolicy",
    "RetryPolicy",
    "RpcError",
    "SchemaError",
    "ServiceDescriptor",
    "Status",
    "WireDecodeError",
]
