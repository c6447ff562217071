"""Settings of servers and client channels: frozen, validated dataclasses with safe defaults."""

from __future__ import annotations

from dataclasses import dataclass

from .framing import DEFAULT_MAX_FRAME_SIZE, DEFAULT_MAX_HEADER_SIZE

__all__ = ["LOOPBACK_DATAGRAM_SIZE", "MAX_DATAGRAM_SIZE", "ClientConfig", "ServerConfig"]

LOOPBACK_DATAGRAM_SIZE = 64_000
"""Loopback carries UDP payloads up to 65,507 bytes, and aioquic's cost is per packet, so big
datagrams move bulk data with far fewer packets to build, encrypt and acknowledge. Above
16,383 bytes every `RpcConnection` installs `stream_frames.install_wide_frames` (aioquic 1.7
alone corrupts longer STREAM frames) and `window_cap.install_window_cap` (a congestion window
of at most 16 datagrams, so aioquic keeps pacing: right for loopback's sub-millisecond RTT,
too small for a long path)."""
MAX_DATAGRAM_SIZE = 64_000
"""Largest accepted `max_datagram_size` (below the 65,507-byte UDP limit, with room for IPv6)."""


def _positive(name: str, value: float | None, *, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if value is None or value <= 0:
        raise ValueError(f"{name} must be positive, got {value!r}")


@dataclass(frozen=True, slots=True)
class _Common:
    max_frame_size: int = DEFAULT_MAX_FRAME_SIZE
    """Largest frame accepted from the peer, in bytes; a larger one fails its call with
    RESOURCE_EXHAUSTED before it is buffered."""
    max_header_size: int = DEFAULT_MAX_HEADER_SIZE
    """Largest HEADER or TRAILER frame accepted from the peer (the call's fields and
    metadata), in bytes; a larger one fails its call with RESOURCE_EXHAUSTED."""
    idle_timeout: float = 10.0
    """Seconds without any packet from the peer after which the connection is dead."""
    receive_window: int = 256 * 1024
    """Per-call receive credit in bytes: how far the peer may send ahead of the application."""
    send_buffer_limit: int = 256 * 1024
    """Per-call bytes written but not yet acknowledged above which a sender waits."""
    max_datagram_size: int | None = None
    """Largest UDP payload sent. None: `LOOPBACK_DATAGRAM_SIZE` when the traffic stays on the
    loopback interface (a server bound to a loopback address, a client dialling one), else
    1200 bytes, which every QUIC path carries. Raise it on paths known to carry more; above
    16,383 bytes the congestion window is held at 16 datagrams (see `LOOPBACK_DATAGRAM_SIZE`)."""
    socket_buffer_size: int | None = 4 * 1024 * 1024
    """SO_RCVBUF and SO_SNDBUF asked for the UDP socket (the OS may cap them); None leaves the
    OS defaults, which drop bursts of large datagrams."""

    def __post_init__(self) -> None:
        _positive("max_frame_size", self.max_frame_size)
        _positive("max_header_size", self.max_header_size)
        _positive("idle_timeout", self.idle_timeout)
        _positive("receive_window", self.receive_window)
        _positive("send_buffer_limit", self.send_buffer_limit)
        if self.max_datagram_size is not None and not (
            1200 <= self.max_datagram_size <= MAX_DATAGRAM_SIZE
        ):
            raise ValueError(f"max_datagram_size must be within 1200..{MAX_DATAGRAM_SIZE}")
        _positive("socket_buffer_size", self.socket_buffer_size, allow_none=True)

    def datagram_size(self, loopback: bool) -> int:
        """The datagram size to use on a path that is (or is not) loopback."""
        if self.max_datagram_size is not None:
            return self.max_datagram_size
        return LOOPBACK_DATAGRAM_SIZE if loopback else 1200


@dataclass(frozen=True, slots=True)
class ServerConfig(_Common):
    """How a `Server` treats its connections."""

    max_concurrent_streams: int = 128
    """Calls one connection may have open at once (QUIC's bidirectional stream limit)."""
    keepalive_interval: float | None = None
    """Seconds between PINGs the server sends on an otherwise quiet connection; None: never
    (clients keep their connections alive)."""
    header_timeout: float | None = 10.0
    """Seconds a call may take to deliver its request header after its first bytes arrived;
    a slower one fails with DEADLINE_EXCEEDED (no sooner than this, at most twice this), so a
    client cannot hold streams and buffers with headers it never finishes. None: no limit."""

    def __post_init__(self) -> None:
        _Common.__post_init__(self)
        _positive("max_concurrent_streams", self.max_concurrent_streams)
        _positive("header_timeout", self.header_timeout, allow_none=True)
        _positive("keepalive_interval", self.keepalive_interval, allow_none=True)


@dataclass(frozen=True, slots=True)
class ClientConfig(_Common):
    """How a client channel keeps its connection."""

    keepalive_interval: float | None = 2.0
    """Seconds between PINGs, so a quiet connection stays up and a dead server is noticed
    within `idle_timeout`; None disables them."""
    connect_timeout: float = 5.0
    """Seconds allowed for the QUIC and TLS handshake."""

    def __post_init__(self) -> None:
        _Common.__post_init__(self)
        _positive("keepalive_interval", self.keepalive_interval, allow_none=True)
        _positive("connect_timeout", self.connect_timeout)
        if self.keepalive_interval is not None and self.keepalive_interval >= self.idle_timeout:
            raise ValueError("keepalive_interval must be shorter than idle_timeout")
