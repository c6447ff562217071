"""rpcnet's runtime: RPC over QUIC and TLS 1.3, call policies and cluster membership."""

from .channel import CallOptions, Channel
from .client import ClientChannel, connect
from .config import ClientConfig, ServerConfig
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
from .server import Server
from .status import Status
from .tls import ClientTLS, ServerTLS

__all__ = [
    "CallContext",
    "CallOptions",
    "Channel",
    "ClientChannel",
    "ClientConfig",
    "ClientTLS",
    "HedgePolicy",
    "MethodDescriptor",
    "MethodKind",
    "MethodPolicy",
    "RetryPolicy",
    "RpcError",
    "SchemaError",
    "Server",
    "ServerConfig",
    "ServerTLS",
    "ServiceDescriptor",
    "Status",
    "WireDecodeError",
    "connect",
]
