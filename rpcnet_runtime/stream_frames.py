"""Datagrams above 16 KB on aioquic 1.7: STREAM frames whose length is not cut to 14 bits.

aioquic 1.7.2 writes the length of every STREAM and CRYPTO frame as a two-byte varint
(``push_uint16(len | 0x4000)``), and the length of every long-header packet the same way, so a
frame or a long-header packet above 16,383 bytes is corrupt and the peer fails on it. Loopback
carries UDP payloads up to 65,507 bytes, and aioquic's cost is per packet and per frame, so big
datagrams each holding one big frame per stream are the way to move bulk data faster.

`install_wide_frames` wraps two methods on one `QuicConnection` instance (the class is
untouched) whose datagrams may exceed 16,383 bytes. Each wrapper calls aioquic's own method with
a stand-in for the packet builder:

- ``_write_stream_frame`` (once per stream per packet), in a short-header packet with more room
  than a two-byte length can describe: the stand-in reports 2 bytes less room, and the buffer it
  hands out writes the frame's length as a varint of up to 4 bytes, taken from the data aioquic
  pushes next, in place of aioquic's two-byte length. So one frame per stream fills the packet
  (every receiver parses any varint length). Before the handshake is complete (0-RTT packets
  have long headers) the frame is kept under `LONG_HEADER_FRAME_CAP` instead.
- ``_write_crypto_frame`` (one CRYPTO frame per INITIAL or HANDSHAKE packet): the frame is kept
  under `LONG_HEADER_FRAME_CAP`, so the packet's two-byte length stays valid.

When a packet has no more room than a two-byte length can describe, aioquic's method runs
unchanged, unless the packet is full (less than `_FULL` bytes left): then no frame is asked for,
saving a call per waiting stream per packet. On connections whose datagrams are at most 16,383
bytes only the stream writer's settling (below) is installed, when asked for.

With ``settle_sent`` (rpcnet's own connections), a stream that has just written all it holds is
marked as having nothing more to send, which aioquic learns only by asking it for one more frame
in the next packet: one frame-writer call per stream per call instead of two.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from aioquic.quic.connection import QuicConnection
from aioquic.quic.stream import QuicStreamSender

__all__ = ["LONG_HEADER_FRAME_CAP", "MAX_FRAME_LENGTH", "install_wide_frames"]

MAX_FRAME_LENGTH = 16_383
"""The largest value of a two-byte varint: aioquic's own limit for one frame's length."""
LONG_HEADER_FRAME_CAP = 12_000
"""Room given to one frame in a long-header packet, leaving space for the packet's other
frames (ACK, limits) under its own 16,383-byte length."""
_EXTRA_LENGTH_BYTES = 2
"""A 4-byte varint length instead of aioquic's 2 bytes."""
_FULL = 32
_SMALL = MAX_FRAME_LENGTH - 64
"""Bytes a stream may hold for sending and still get aioquic's own frame writer (its frame
cannot be longer, and the frame's header is less than 64 bytes)."""
"""A packet with less room left than this is full: asking aioquic for a frame that would carry
at most a few bytes costs more than waiting for the next packet (which aioquic starts as long
as the current one is not empty)."""


class _LengthBuffer:
    """Forwards a frame's fields to the packet buffer, except that the two-byte length aioquic
    pushes is dropped and the length is written as a varint just before the data."""

    __slots__ = ("buffer",)

    def __init__(self) -> None:
        self.buffer: Any = None

    def push_uint_var(self, value: int) -> None:
        self.buffer.push_uint_var(value)

    def push_uint16(self, value: int) -> None:
        """aioquic's length field (``len | 0x4000``): written by `push_bytes` instead."""

    def push_bytes(self, value: bytes) -> None:
        self.buffer.push_uint_var(len(value))
        self.buffer.push_bytes(value)


class _BuilderView:
    """A `QuicPacketBuilder` stand-in for aioquic's frame writers: its free space is `cap` at
    most (and `reserve` bytes less than the builder's), and with `lengths` set the frames it
    starts write their length through a `_LengthBuffer`."""

    __slots__ = ("builder", "cap", "lengths", "reserve")

    def __init__(self, cap: int, reserve: int, lengths: _LengthBuffer | None) -> None:
        self.builder: Any = None
        self.cap = cap
        self.reserve = reserve
        self.lengths = lengths

    @property
    def remaining_flight_space(self) -> int:
        space: int = self.builder.remaining_flight_space - self.reserve
        return space if space < self.cap else self.cap

    @property
    def quic_logger_frames(self) -> Any:
        return self.builder.quic_logger_frames

    def start_frame(
        self,
        frame_type: int,
        capacity: int = 1,
        handler: Callable[..., None] | None = None,
        handler_args: Sequence[Any] = (),
    ) -> Any:
        buffer = self.builder.start_frame(frame_type, capacity, handler, handler_args)
        lengths = self.lengths
        if lengths is None:
            return buffer
        lengths.buffer = buffer
        return lengths


def install_wide_frames(quic: QuicConnection, *, settle_sent: bool = False) -> None:
    """Let `quic` send datagrams above 16 KB without corrupt frames (see the module text).

    With `settle_sent`, a stream that has just written all it holds is marked as having nothing
    more to send (`_settle`); without it, nothing is installed on a connection whose datagrams
    are at most 16,383 bytes. Install it before the connection sends its first packet.
    """
    wide = quic._max_datagram_size > MAX_FRAME_LENGTH
    if not wide and not settle_sent:
        return
    write_stream = quic._write_stream_frame
    if not wide:

        def write_narrow_frame(builder: Any, space: Any, stream: Any, max_offset: int) -> int:
            used = write_stream(builder, space, stream, max_offset)
            _settle(stream.sender)
            return used

        quic._write_stream_frame = write_narrow_frame  # type: ignore[method-assign]
        return
    write_crypto = quic._write_crypto_frame
    lengths = _LengthBuffer()
    long_view = _BuilderView(LONG_HEADER_FRAME_CAP, 0, None)
    wide_view = _BuilderView(1 << 62, _EXTRA_LENGTH_BYTES, lengths)

    def write_stream_frame(builder: Any, space: Any, stream: Any, max_offset: int) -> int:
        room = builder.remaining_flight_space
        if room <= MAX_FRAME_LENGTH:
            if room < _FULL:
                return 0  # a full packet: the stream waits for the next one, in its place
            used = write_stream(builder, space, stream, max_offset)
        elif len(stream.sender._buffer) < _SMALL and quic._handshake_complete:
            # All the stream has to send fits aioquic's two-byte length (most calls).
            used = write_stream(builder, space, stream, max_offset)
        else:
            view = wide_view if quic._handshake_complete else long_view
            view.builder = builder
            try:
                used = write_stream(view, space, stream, max_offset)  # type: ignore[arg-type]
            finally:
                view.builder = None
                lengths.buffer = None
        if settle_sent:
            _settle(stream.sender)
        return used

    def write_crypto_frame(builder: Any, space: Any, stream: Any) -> bool:
        if builder.remaining_flight_space <= LONG_HEADER_FRAME_CAP:
            return write_crypto(builder, space, stream)
        long_view.builder = builder
        try:
            return write_crypto(long_view, space, stream)  # type: ignore[arg-type]
        finally:
            long_view.builder = None

    quic._write_stream_frame = write_stream_frame  # type: ignore[method-assign]
    quic._write_crypto_frame = write_crypto_frame  # type: ignore[method-assign]


def _settle(sender: QuicStreamSender) -> None:
    """Mark `sender` as having nothing to send when no data and no FIN is pending.

    aioquic sets ``buffer_is_empty`` only when asked for a frame it cannot give, so a stream
    that has sent all it holds (a call's whole request or reply, with its FIN) is visited once
    more, in the next packet, for nothing: a second frame-writer call per stream per call.
    New data (``write``) and data or a FIN reported lost (``on_data_delivery``) clear the flag
    again, so sending and retransmission are unchanged.
    """
    if not sender._pending_eof and not len(sender._pending):
        sender.buffer_is_empty = True
