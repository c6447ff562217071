"""Dialling one server: resolve, open the UDP socket, run the QUIC and TLS handshake."""

from __future__ import annotations

import asyncio
import socket

from aioquic.quic.connection import QuicConnection

from .client_protocol import ClientProtocol
from .config import ClientConfig
from .connection import ALPN
from .errors import RpcError
from .protocol import enable_icmp_errors, is_loopback, tune_socket
from .status import Status
from .tls import ClientTLS

__all__ = ["dial", "split_address"]


def split_address(address: str) -> tuple[str, int]:
    """``host:port`` (``[v6]:port`` too) as host and port; ValueError when it is neither."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"address must be 'host:port', got {address!r}")
    return host.strip("[]"), int(port)


async def dial(
    address: str, host: str, port: int, tls: ClientTLS, config: ClientConfig
) -> ClientProtocol:
    """A new connection to `host`:`port`, ready for calls (keep-alive started).

    Any failure, the handshake's `connect_timeout` included, is UNAVAILABLE and
    ``not_processed``, naming `address`.
    """
    loop = asyncio.get_running_loop()
    protocol: ClientProtocol | None = None
    try:
        async with asyncio.timeout(config.connect_timeout):
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
            family, _, _, _, resolved = infos[0]
            configuration = tls.quic_configuration(
                alpn_protocols=[ALPN], idle_timeout=config.idle_timeout, server_name=host
            )
            configuration.max_stream_data = config.receive_window
            loopback = is_loopback(str(resolved[0]))
            configuration.max_datagram_size = config.datagram_size(loopback)
            quic = QuicConnection(configuration=configuration)
            transport, protocol = await loop.create_datagram_endpoint(
                lambda: ClientProtocol(quic, config=config),
                local_addr=("::1" if family == socket.AF_INET6 else "127.0.0.1", 0)
                if loopback
                else ("::" if family == socket.AF_INET6 else "0.0.0.0", 0),
            )
            tune_socket(transport, config.socket_buffer_size)
            enable_icmp_errors(transport)  # a closed server port fails calls at once
            protocol.connect(resolved)
            await protocol.ready
    except (OSError, TimeoutError, RpcError, ConnectionError) as exc:
        if protocol is not None:
            protocol.shutdown()
        reason = str(exc) or type(exc).__name__
        raise RpcError(
            Status.UNAVAILABLE, f"cannot connect to {address}: {reason}", not_processed=True
        ) from None
    protocol.start_keepalive(config.keepalive_interval)
    return protocol
