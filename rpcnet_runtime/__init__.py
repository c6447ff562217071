"""rpcnet's runtime: RPC over QUIC and TLS 1.3, call policies and cluster membership.

The QUIC and TLS stack (`Server`, `connect`, `ServerTLS`, `ClientTLS`, the configs) is imported
on first use, so that importing generated code's light dependencies (`Status`, descriptors,
errors) stays cheap, e.g. for ``rpcnet-gen``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .channel import NO_CALL_OPTIONS, CallOptions, Channel
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

if TYPE_CHECKING:
    from .client import ClientChannel, connect
    from .config import ClientConfig, ServerConfig
    from .policies.channel_policy import ChannelPolicy
    from .server import Server
    from .tls import ClientTLS, ServerTLS

_LAZY = {
    "ClientChannel": ".client",
    "connect": ".client",
    "ChannelPolicy": ".policies.channel_policy",
    "ClientConfig": ".config",
    "ServerConfig": ".config",
    "Server": ".server",
    "ClientTLS": ".tls",
    "ServerTLS": ".tls",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


__all__ = [
    "NO_CALL_OPTIONS",
    "CallContext",
    "CallOptions",
    "Channel",
    "ChannelPolicy",
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
