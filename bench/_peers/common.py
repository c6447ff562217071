"""What every peer shares: the run's setup, the client interface, CPU clocks, socket buffers."""

from __future__ import annotations

import os
import resource
import socket
import struct
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = [
    "Client",
    "Setup",
    "frame",
    "parse_frame",
    "process_cpu",
    "self_cpu",
    "set_socket_buffers",
]

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_LENGTH = struct.Struct(">I")


@dataclass(frozen=True)
class Setup:
    """Everything a server process or a client needs (picklable, for spawned processes)."""

    ca: str
    server_cert: str
    server_key: str
    workdir: str
    """Temp directory holding generated code (rpcnet schema, protobuf modules) on sys.path."""
    datagram_size: int | None = None
    """QUIC max_datagram_size for the QUIC stacks; None: each stack's default (rpcnet: the
    runtime's loopback choice; raw aioquic: 1,200 bytes)."""
    sockbuf: int = 0
    """SO_RCVBUF/SO_SNDBUF for the QUIC stacks' UDP sockets; 0 keeps the OS default."""
    uvloop: bool = False
    """Server processes run uvloop's event loop (as the bench process does)."""
    profile: str = ""
    """Directory where a server process writes ``<stack>-server.prof`` ('': no profiling)."""


class Client(Protocol):
    """One connected client: `call` sends a payload and returns the echoed payload."""

    async def call(self, payload: bytes) -> bytes: ...

    async def close(self) -> None: ...


def frame(payload: bytes) -> bytes:
    """A 4-byte big-endian length prefix and `payload` (the raw aioquic peer's framing)."""
    return _LENGTH.pack(len(payload)) + payload


def parse_frame(data: bytes) -> bytes:
    """The payload of one complete frame; raises ValueError on a bad length."""
    if len(data) < _LENGTH.size:
        raise ValueError("short frame")
    (length,) = _LENGTH.unpack_from(data)
    if length != len(data) - _LENGTH.size:
        raise ValueError(f"frame length {length} != {len(data) - _LENGTH.size}")
    return data[_LENGTH.size :]


def process_cpu(pid: int) -> float:
    """User+system CPU seconds of process `pid` (all threads), from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # Fields after the ")": state is [0], utime is [11], stime is [12].
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def self_cpu() -> float:
    """User+system CPU seconds of this process (all threads, microsecond resolution)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def set_socket_buffers(transport: Any, size: int) -> None:
    """Raise a datagram transport's socket buffers to `size` bytes (capped by rmem_max)."""
    if not size or transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)
