"""The asyncio shell around `RpcConnection`: one `QuicConnectionProtocol` per connection.

The protocol feeds aioquic's events to the sans-IO core and hands the resulting `RpcEvent`s to
`rpc_event_received` (implemented by the client and server sides). Datagrams go out once per
batch: a received datagram and every send made by application code schedule a single
`transmit` for the end of the current loop iteration (aioquic alone would transmit after each
datagram, before the handlers and callers it wakes have run); timers transmit at once.

Per call, a `CallInbox` holds the messages that arrived and not yet read; reading one returns its
bytes to the core's credit (so a slow reader slows its writer), and `send_message` waits while
more than ``send_buffer_limit`` bytes of the call are unacknowledged.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import sys
from collections import deque
from typing import Any

from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.quic.connection import NetworkAddress, QuicConnection
from aioquic.quic.events import QuicEvent

from .codec import unpack
from .config import ClientConfig, ServerConfig
from .connection import RpcConnection
from .errors import RpcError, WireDecodeError
from .events import RpcEvent
from .framing import Trailer
from .status import Status
from .window_cap import BURST_DATAGRAMS

__all__ = [
    "CallInbox",
    "RpcProtocol",
    "TooManyMessages",
    "decode_message",
    "enable_icmp_errors",
    "is_loopback",
    "tune_socket",
]

_IP_RECVERR = 11  # Linux <netinet/in.h>; the socket module does not name it
_IPV6_RECVERR = 25


def decode_message(message_type: Any, payload: bytes, what: str, status: Status) -> Any:
    """Decode a message payload into `message_type`; failures raise `RpcError(status)`."""
    try:
        data = unpack(payload)
    except Exception:
        raise RpcError(status, f"{what} is not valid msgpack") from None
    try:
        return message_type.from_wire(data)
    except WireDecodeError as exc:
        raise RpcError(status, f"bad {what}: {exc}") from None
    except (TypeError, ValueError, KeyError, AttributeError, OverflowError) as exc:
        raise RpcError(
            status, f"{what} does not decode as {message_type.__name__}: {type(exc).__name__}"
        ) from None


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback IP addresses."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


RECEIVE_SIZE = 65_536
"""Bytes each receive asks for: more than any UDP payload (65,507 bytes over IPv4, 65,527 over
IPv6), and less than glibc's mmap threshold (128 KiB). asyncio's selector transport asks for
256 KiB per datagram, a buffer glibc maps and unmaps every time: on this machine 14 us per
datagram of 1,200 bytes and 45 us per 64,000 bytes, against 1.4 and 3.9 us at 64 KiB."""


def tune_socket(transport: asyncio.BaseTransport | None, buffer_size: int | None) -> None:
    """Ask for larger UDP socket buffers (best effort: the OS caps them), and receive each
    datagram into a buffer of `RECEIVE_SIZE` bytes (asyncio's selector transport only; uvloop's
    has its own)."""
    if getattr(transport, "max_size", 0) > RECEIVE_SIZE:
        transport.max_size = RECEIVE_SIZE  # type: ignore[union-attr]
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is None or buffer_size is None:
        return
    for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, option, buffer_size)


def enable_icmp_errors(transport: asyncio.BaseTransport | None) -> bool:
    """Linux: have ICMP errors (port unreachable) reported on this unconnected UDP socket, so
    that `error_received` sees ``ConnectionRefusedError`` from a peer whose port is closed.

    Returns False where this is not available (other systems: the idle timeout still applies).
    """
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sys.platform != "linux" or sock is None:
        return False
    try:
        if sock.family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, _IPV6_RECVERR, 1)
        else:
            sock.setsockopt(socket.IPPROTO_IP, _IP_RECVERR, 1)
    except OSError:
        return False
    return True


def drain_icmp_errors(transport: asyncio.BaseTransport | None, limit: int = 16) -> None:
    """Empty (at most `limit` entries of) the socket's error queue, which `enable_icmp_errors`
    fills and which would otherwise take receive buffer space."""
    wrapped = transport.get_extra_info("socket") if transport is not None else None
    flag = getattr(socket, "MSG_ERRQUEUE", 0)
    if wrapped is None or not flag or wrapped.fileno() == -1:
        return
    # asyncio's socket wrapper has no recvmsg: read through a duplicate of the descriptor.
    with socket.fromfd(wrapped.fileno(), wrapped.family, wrapped.type) as sock:
        for _ in range(limit):
            try:
                sock.recvmsg(1, 1024, flag | socket.MSG_DONTWAIT)
            except OSError:
                return


def quicken_debug_log(quic: QuicConnection) -> None:
    """Make aioquic's per-stream debug messages cheap while debug logging is off.

    aioquic logs a debug line for every stream it opens and discards, through a LoggerAdapter
    whose `debug` takes three calls to find it has nothing to do; this one takes one check.
    Enabling debug logging for ``quic`` later still shows every message.
    """
    adapter: Any = getattr(quic, "_logger", None)
    if not isinstance(adapter, logging.LoggerAdapter) or adapter.logger is None:
        return
    enabled_for = adapter.logger.isEnabledFor
    # The logger's own answer cache (emptied by logging whenever levels change): one C-level
    # lookup while debug logging stays off.
    known = getattr(adapter.logger, "_cache", {}).get
    log = adapter.log

    def debug(msg: object, *args: object, **kwargs: Any) -> None:
        if known(logging.DEBUG) is not False and enabled_for(logging.DEBUG):
            log(logging.DEBUG, msg, *args, **kwargs)

    adapter.debug = debug  # type: ignore[method-assign]


FLUSH_CALLS = 16
"""Calls written in one loop iteration after which a connection transmits at once (see
`RpcProtocol.call_written`; 16 gave the most calls/s at concurrency 64 on loopback)."""


class TooManyMessages(Exception):
    """A peer sent more than one message on a side that carries exactly one."""


class CallInbox:
    """The incoming messages of one call, read by a single consumer.

    `get` returns each message's bytes in order, then None once the peer finished (a server
    sees the request stream's FIN; a client sees the trailer, kept in `trailer`); it raises the
    exception given to `fail`.
    """

    __slots__ = (
        "_end_waiter",
        "_error",
        "_items",
        "_protocol",
        "_waiter",
        "ended",
        "single",
        "stream_id",
        "trailer",
    )

    def __init__(self, protocol: RpcProtocol, stream_id: int, *, single: bool = False) -> None:
        self._protocol = protocol
        self.stream_id = stream_id
        self.single = single
        """This side carries one message (read with `wait_ended`): each message is returned
        to flow control as it arrives, and a second one fails the call at once."""
        self._items: deque[tuple[bytes, int]] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._end_waiter: asyncio.Future[None] | None = None
        self._error: BaseException | None = None
        self.ended = False
        self.trailer: Trailer | None = None

    def push(self, payload: bytes, size: int) -> None:
        if self.single:
            if self._items:
                self.fail(TooManyMessages())
                return
            self._protocol.consumed(self.stream_id, size)
        self._items.append((payload, size))
        self._wake()

    def finish(self, trailer: Trailer | None = None, last: bytes | None = None) -> None:
        """The peer finished; `last` is a final message that came with the end (it returns
        no credit to flow control: nothing more will be sent)."""
        if last is not None:
            if self.single and self._items:
                self.fail(TooManyMessages())
                return
            self._items.append((last, len(last) + 5))
        self.ended = True
        self.trailer = trailer
        self._wake()
        self._wake_end()

    def fail(self, error: BaseException) -> None:
        if not self.ended:
            self._error = error
            self.ended = True
            self._wake()
            self._wake_end()

    def _wake_end(self) -> None:
        waiter = self._end_waiter
        if waiter is not None:
            self._end_waiter = None
            if not waiter.done():
                waiter.set_result(None)

    async def wait_ended(self) -> list[bytes]:
        """Wait until the peer finished; returns every message (for single-message sides).

        Raises the exception given to `fail`. The messages are not handed back to flow
        control one by one: the peer has finished sending anyway.
        """
        if not self.ended:
            await self.end_waiter()
        return self.take_all()

    def end_waiter(self) -> asyncio.Future[None]:
        """A future that is done once the peer finished (`wait_ended` without its own
        coroutine, for the caller's hot path); await it only while `ended` is False."""
        waiter = self._end_waiter = self._protocol.loop.create_future()
        return waiter

    def take_all(self) -> list[bytes]:
        """Every message, once the peer finished; raises the exception given to `fail`."""
        if self._error is not None:
            raise self._error
        payloads = [payload for payload, _ in self._items]
        self._items.clear()
        return payloads

    def __len__(self) -> int:
        """Messages waiting to be read."""
        return len(self._items)

    @property
    def error(self) -> BaseException | None:
        return self._error

    @property
    def done(self) -> bool:
        """True when everything was read and nothing more will come."""
        return self.ended and not self._items

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    async def get(self) -> bytes | None:
        while True:
            if self._items:
                payload, size = self._items.popleft()
                self._protocol.consumed(self.stream_id, size)
                return payload
            if self._error is not None:
                raise self._error
            if self.ended:
                return None
            self._waiter = self._protocol.loop.create_future()
            await self._waiter


class RpcProtocol(QuicConnectionProtocol):
    """Shared shell of the client and server sides."""

    def __init__(
        self,
        quic: QuicConnection,
        *,
        is_client: bool,
        config: ClientConfig | ServerConfig,
        **kwargs: Any,
    ) -> None:
        super().__init__(quic, **kwargs)
        self.loop = asyncio.get_running_loop()
        self.config = config
        self.core = RpcConnection(
            quic,
            is_client=is_client,
            max_frame_size=config.max_frame_size,
            max_header_size=config.max_header_size,
            receive_window=config.receive_window,
            # asyncio's own loops read time.monotonic(); uvloop's clock ticks in milliseconds,
            # too coarse for short pacing bursts (see `window_cap`).
            pacing_burst=BURST_DATAGRAMS if isinstance(self.loop, asyncio.BaseEventLoop) else None,
        )
        quicken_debug_log(quic)
        self._unsent = 0
        self._drain_waiters: list[asyncio.Future[None]] = []
        self._keepalive: asyncio.TimerHandle | None = None
        self.terminated = False

    # -- aioquic entry points -------------------------------------------------------------

    def quic_event_received(self, event: QuicEvent) -> None:
        for rpc_event in self.core.handle_event(event):
            self.rpc_event_received(rpc_event)

    def datagram_received(self, data: bytes | str, addr: NetworkAddress) -> None:
        # aioquic transmits right after each datagram; here the transmit waits for the end of
        # the loop iteration, so the replies and requests this datagram causes (handlers and
        # callers woken by it run first) leave in the same packets as its acknowledgement.
        self._quic.receive_datagram(data, addr, now=self.loop.time())  # type: ignore[arg-type]
        self._process_events()
        self.transmit_soon()
        close = self._quic._close_event
        if close is not None and not self.core.terminated:
            # The peer closed (or we did): aioquic reports it only after the draining period
            # (three PTOs); fail the calls now rather than then.
            self.quic_event_received(close)
        if self._drain_waiters:
            self._wake_drain_waiters()

    def rpc_event_received(self, event: RpcEvent) -> None:
        raise NotImplementedError

    # -- helpers for the client and server sides -----------------------------------------

    def transmit_soon(self) -> None:
        """Send pending datagrams once the current loop iteration is done (batching)."""
        if self._transmit_task is None:
            self._transmit_task = self.loop.call_soon(self.transmit)

    def call_written(self) -> None:
        """A call's request (client) or last reply (server) was written: transmit at the end
        of the loop iteration, or at once when `FLUSH_CALLS` calls are waiting.

        A peer works on a datagram only once it has all of it: 64 calls in one big (loopback)
        datagram leave it idle until the last is written, and then the sender idle while it
        answers all 64. Sent in groups, the first are answered while the rest are still being
        made, as they are with small datagrams (14,000 -> 21,000 calls/s at concurrency 64).
        """
        self._unsent += 1
        if self._unsent < FLUSH_CALLS:
            self.transmit_soon()
            return
        if self._transmit_task is not None:
            self._transmit_task.cancel()
        self.transmit()

    def transmit(self) -> None:
        self._unsent = 0
        super().transmit()

    def consumed(self, stream_id: int, size: int) -> None:
        if self.core.consume(stream_id, size):
            self.transmit_soon()

    def sending_stopped(self, stream_id: int) -> bool:
        """True when the peer asked us to stop sending on this stream (STOP_SENDING) and
        aioquic reset our direction, whether or not the core knew the call then: a
        STOP_SENDING can arrive in the same packet as, and before, the request it stops."""
        stream = self._quic._streams.get(stream_id)
        # aioquic names no public flag for "our direction was reset"; this one stays set.
        return stream is not None and stream.sender._reset_error_code is not None

    async def send_message(self, stream_id: int, message: Any, *, end_stream: bool = False) -> bool:
        """Send a message; waits while too much of this call is unacknowledged.

        Returns False when the call can no longer send (reset, finished, connection gone).
        """
        if self.sending_stopped(stream_id):
            self.core.cancel(stream_id)
            return False
        if not self.core.send_message(stream_id, message, end_stream=end_stream):
            return False
        self.transmit_soon()
        limit = self.config.send_buffer_limit
        while self.core.send_buffered(stream_id) > limit and not self.terminated:
            waiter = self.loop.create_future()
            self._drain_waiters.append(waiter)
            await waiter
        return stream_id in self.core.calls and not self.terminated

    def _wake_drain_waiters(self) -> None:
        waiters, self._drain_waiters = self._drain_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def start_keepalive(self, interval: float | None) -> None:
        if interval is not None:
            self._keepalive = self.loop.call_later(interval, self._send_keepalive, interval)

    def _send_keepalive(self, interval: float) -> None:
        if self.terminated:
            return
        self._quic.send_ping(0)
        self.transmit()
        self._keepalive = self.loop.call_later(interval, self._send_keepalive, interval)

    def connection_terminated(self) -> None:
        """Shared bookkeeping once the QUIC connection is over."""
        self.terminated = True
        if self._keepalive is not None:
            self._keepalive.cancel()
            self._keepalive = None
        self._wake_drain_waiters()
