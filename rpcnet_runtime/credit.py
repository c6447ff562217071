"""Per-call receive credit on one aioquic connection (rule 5 of `connection`).

aioquic raises a stream's credit (MAX_STREAM_DATA) whenever the peer has sent half of it,
however little the application has read, and it asks every open stream about it in every packet
it builds. `install_credit_rule` replaces both on one `QuicConnection` instance (the class is
untouched):

- A call's credit is what `RpcConnection.credit_limit` says: ``consumed + receive_window``, or
  just enough to finish the frame in progress. The core names the calls whose credit may have
  changed in its ``due`` set (data arrived, the application consumed some).
- The frames are written once per packet, after aioquic's connection-level limits, for the due
  calls only. aioquic's per-stream pass is skipped: it walks ``_streams.values()``, and the
  connection's stream table becomes a `_StreamTable`, a dict whose ``values()`` is empty (aioquic
  uses it nowhere else), so aioquic's per-stream writer is never called. A lost
  MAX_STREAM_DATA frame puts its stream back in ``due``, so it is sent again.
- Streams the core no longer knows (finished or abandoned calls) get no more credit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aioquic.quic.connection import MAX_STREAM_DATA_FRAME_CAPACITY, QuicConnection
from aioquic.quic.packet import QuicFrameType
from aioquic.quic.packet_builder import QuicDeliveryState
from aioquic.quic.stream import QuicStream

__all__ = ["install_credit_rule"]


def install_credit_rule(
    quic: QuicConnection,
    due: set[int],
    credit_limit: Callable[[int], int | None],
) -> None:
    """Write `quic`'s per-stream credit for the calls in `due`, once per packet.

    :param due: stream ids whose credit should be looked at in the next packet; the rule
        empties it as it writes.
    :param credit_limit: the credit a call should have; None for a stream that is not a
        call (any more), which gets no credit.
    """
    streams = quic._streams = _StreamTable(quic._streams)
    write_connection_limits = quic._write_connection_limits

    def on_delivery(delivery: QuicDeliveryState, stream: Any) -> None:
        if delivery != QuicDeliveryState.ACKED:
            stream.max_stream_data_local_sent = 0
            due.add(stream.stream_id)

    def write_limits(builder: Any, space: Any) -> None:
        write_connection_limits(builder=builder, space=space)
        while due:
            stream_id = next(iter(due))
            stream = streams.get(stream_id)
            limit = credit_limit(stream_id)
            if stream is None or limit is None or stream.receiver.is_finished:
                due.discard(stream_id)
                continue
            if limit > stream.max_stream_data_local:
                stream.max_stream_data_local = limit
            if stream.max_stream_data_local_sent != stream.max_stream_data_local:
                # Raises QuicPacketBuilderStop when the packet is full: the id stays due.
                buf = builder.start_frame(
                    QuicFrameType.MAX_STREAM_DATA,
                    capacity=MAX_STREAM_DATA_FRAME_CAPACITY,
                    handler=on_delivery,
                    handler_args=(stream,),
                )
                buf.push_uint_var(stream_id)
                buf.push_uint_var(stream.max_stream_data_local)
                stream.max_stream_data_local_sent = stream.max_stream_data_local
            due.discard(stream_id)

    quic._write_connection_limits = write_limits  # type: ignore[method-assign]


class _StreamTable(dict[int, QuicStream]):
    """aioquic's table of open streams, by id, whose ``values()`` is empty.

    aioquic 1.7.2 calls ``values()`` in one place only: its per-stream credit pass, over every
    open stream in every packet it builds, which `install_credit_rule` replaces. Lookups,
    insertions, removals, ``items()`` and iteration over the ids are those of a dict.
    """

    __slots__ = ()

    def values(self) -> tuple[QuicStream, ...]:  # type: ignore[override]
        return ()
