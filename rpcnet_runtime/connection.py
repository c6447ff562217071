"""The sans-IO RPC core: calls over one aioquic `QuicConnection`, without asyncio.

Theory of operation
-------------------
Every call is one client-initiated bidirectional QUIC stream. `RpcConnection` keeps a call
table keyed by stream id; each entry holds where each direction stands and, once a chunk of the
stream ended inside a frame, its `FrameDecoder` (chunks of whole frames, such as a unary request
or reply arriving at once, are split without one). The asyncio shell feeds every aioquic event
to `handle_event` and acts on the returned `RpcEvent` list; it sends with `send_request`,
`send_message`, `end_input`, `send_trailer` and `cancel`, and then asks the `QuicConnection` for
datagrams as usual.

Rules the core enforces:

1. A request stream is ``HEADER MESSAGE* FIN``; a response stream is ``MESSAGE* TRAILER FIN``.
   Anything else is bad input on that call only: a server answers it with a trailer
   (INVALID_ARGUMENT, or RESOURCE_EXHAUSTED for a frame above the limit) and stops reading; a
   client resets the stream. Either way `CallFailed` is reported.
2. A stream a peer may not open (a server-initiated or unidirectional stream, on a server; any
   stream the client did not open, on a client), or a wrong ALPN, is a protocol violation: the
   whole connection is closed with `CLOSE_PROTOCOL_VIOLATION`. Other connections are untouched.
3. A server parks call events until `mark_ready()` (the shell calls it once the peer passed
   authentication), so no call is dispatched before then.
4. A peer's reset (or, on a server, STOP_SENDING) abandons the call: `CallReset` is reported and
   our side is reset too. Data for a call the core already forgot is dropped quietly.
5. Flow control: aioquic raises a stream's receive credit whenever the peer has sent half of it,
   however little the application has read. The core replaces that rule on its connection: a
   stream's credit is ``consumed + receive_window``, or just enough to finish the frame in
   progress, so a slow reader holds at most ``receive_window + max_frame_size`` unread bytes
   per call. The shell reports what the application took with `consume`.
6. Datagrams above 16 KB (loopback) work: `stream_frames.install_wide_frames` writes STREAM
   frame lengths as full varints (aioquic 1.7.2 cuts them to two bytes) and keeps frames in
   long-header packets under 16 KB; `window_cap.install_window_cap` keeps aioquic's pacer
   working on such connections (see there). On every connection the same frame writer marks a
   stream that has sent all it holds as done sending, so aioquic asks it for a frame once, not
   twice, per call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aioquic.quic import events as quic_events
from aioquic.quic.connection import (
    QuicConnection,
    stream_is_client_initiated,
    stream_is_unidirectional,
)

from .credit import install_credit_rule
from .events import (
    CallFailed,
    CallReset,
    ConnectionReady,
    ConnectionTerminated,
    InputEnded,
    MessageReceived,
    RequestReceived,
    RpcEvent,
    TrailerReceived,
)
from .frame_decoder import FrameDecoder, frame_kinds, split_frames
from .framing import (
    DEFAULT_MAX_FRAME_SIZE,
    DEFAULT_MAX_HEADER_SIZE,
    FrameError,
    FrameType,
    RequestHeader,
    Trailer,
    decode_header,
    decode_trailer,
    encode_header,
    encode_message,
    encode_trailer,
)
from .status import Status
from .stream_frames import install_wide_frames
from .window_cap import BURST_DATAGRAMS, install_window_cap

__all__ = [
    "ALPN",
    "CLOSE_NO_ERROR",
    "CLOSE_PROTOCOL_VIOLATION",
    "CLOSE_UNAUTHENTICATED",
    "DEFAULT_RECEIVE_WINDOW",
    "RpcConnection",
]

ALPN = "rpcnet/1"
CLOSE_NO_ERROR = 0x0
CLOSE_PROTOCOL_VIOLATION = 0x1
CLOSE_UNAUTHENTICATED = 0x2
DEFAULT_RECEIVE_WINDOW = 256 * 1024

_NO_MESSAGE: Any = object()


@dataclass(slots=True)
class _Call:
    decoder: FrameDecoder | None = None
    """Created by the first chunk of the stream that ends inside a frame: until then every
    chunk held whole frames only, and nothing is buffered."""
    header_seen: bool = False
    input_ended: bool = False
    """The peer's direction is over: FIN seen, trailer seen, or we stopped reading."""
    output_ended: bool = False
    """Our direction is over: FIN sent or stream reset."""
    received: int = 0
    """Stream offset up to which data reached the core."""
    consumed: int = 0
    """Bytes the application took (control frames count at once)."""


def _at_boundary(call: _Call) -> bool:
    """No partial frame is held for `call` (a FIN here ends its stream cleanly)."""
    return call.decoder is None or call.decoder.at_boundary()


class RpcConnection:
    """RPC calls over one QUIC connection, in the client or the server role."""

    def __init__(
        self,
        quic: QuicConnection,
        *,
        is_client: bool,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
        max_header_size: int = DEFAULT_MAX_HEADER_SIZE,
        receive_window: int = DEFAULT_RECEIVE_WINDOW,
        pacing_burst: int | None = BURST_DATAGRAMS,
    ) -> None:
        """:param pacing_burst: datagrams aioquic's pacer lets leave back to back on
        big-datagram connections (`window_cap.install_window_cap`); None keeps aioquic's."""
        self.quic = quic
        self.pacing_burst = pacing_burst
        self.is_client = is_client
        self.max_frame_size = max_frame_size
        self.max_header_size = max_header_size
        self._kinds = frame_kinds(max_frame_size, min(max_header_size, max_frame_size))
        self.receive_window = receive_window
        self.calls: dict[int, _Call] = {}
        self.terminated = False
        self._ready = is_client
        self._parked: list[RpcEvent] = []
        self._highest_stream_id = -4
        self._headerless: set[int] = set()
        """Server calls still without their header at the last `expire_headerless` sweep."""
        self._skipped: set[int] = set()
        """Client stream ids below the highest seen whose first bytes have not arrived."""
        self._credit_due: set[int] = set()
        """Calls whose receive credit should be recomputed at the next packet."""
        install_credit_rule(quic, self._credit_due, self.credit_limit)
        install_wide_frames(quic, settle_sent=True)
        install_window_cap(quic, burst=pacing_burst)

    # -- inputs from aioquic -------------------------------------------------------------

    def handle_event(self, event: quic_events.QuicEvent) -> list[RpcEvent]:
        """Digest one aioquic event; returns what happened to calls and the connection."""
        out: list[RpcEvent] = []
        if isinstance(event, quic_events.StreamDataReceived):
            self._on_data(event.stream_id, event.data, event.end_stream, out)
        elif isinstance(event, quic_events.StreamReset):
            self._on_reset(event.stream_id, event.error_code, out)
        elif isinstance(event, quic_events.StopSendingReceived):
            self._on_stop_sending(event.stream_id, event.error_code, out)
        elif isinstance(event, quic_events.HandshakeCompleted):
            if event.alpn_protocol != ALPN:
                self.close(CLOSE_PROTOCOL_VIOLATION, f"ALPN {ALPN} required")
            else:
                return [ConnectionReady(event.alpn_protocol)]
        elif isinstance(event, quic_events.ConnectionTerminated):
            if not self.terminated:
                self.terminated = True
                ids = tuple(self.calls)
                self.calls.clear()
                self._parked.clear()
                return [ConnectionTerminated(event.error_code, event.reason_phrase, ids)]
            return []
        if not self._ready and out:
            self._parked.extend(out)
            return []
        return out

    def mark_ready(self) -> list[RpcEvent]:
        """Server: the peer is authenticated; returns the call events parked until now."""
        self._ready = True
        parked, self._parked = self._parked, []
        return parked

    # -- inputs from the application -----------------------------------------------------

    def send_request(
        self,
        header: RequestHeader | bytes,
        message: Any = _NO_MESSAGE,
        *,
        end_stream: bool = False,
    ) -> int:
        """Client: open a call; a unary request passes its message and ``end_stream=True`` so
        header, message and FIN leave in one write (one packet when it fits). The header may
        come encoded (a HEADER frame from `encode_header`)."""
        stream_id = self.quic.get_next_available_stream_id()
        data = header if type(header) is bytes else encode_header(header)  # type: ignore[arg-type]
        if message is not _NO_MESSAGE:
            data = encode_message(message, head=data)
        call = _Call(header_seen=True, output_ended=end_stream)
        self.calls[stream_id] = call
        self.quic.send_stream_data(stream_id, data, end_stream)
        return stream_id

    def send_message(self, stream_id: int, message: Any, *, end_stream: bool = False) -> bool:
        """Send one message (a wire map); False when the call can no longer send."""
        call = self.calls.get(stream_id)
        if call is None or call.output_ended or self.terminated:
            return False
        self.quic.send_stream_data(stream_id, encode_message(message), end_stream)
        if end_stream:
            call.output_ended = True
            self._forget_if_done(stream_id, call)
        return True

    def end_input(self, stream_id: int) -> None:
        """Client: the request stream is complete (FIN)."""
        call = self.calls.get(stream_id)
        if call is None or call.output_ended or self.terminated:
            return
        call.output_ended = True
        self.quic.send_stream_data(stream_id, b"", True)
        self._forget_if_done(stream_id, call)

    def send_trailer(self, stream_id: int, trailer: Trailer, message: Any = _NO_MESSAGE) -> bool:
        """Server: end the call with `trailer`, after one last `message` in the same write.

        If the caller has not finished sending, the core stops reading its stream.
        """
        call = self.calls.get(stream_id)
        if call is None or call.output_ended or self.terminated:
            return False
        data = encode_trailer(trailer)
        if message is not _NO_MESSAGE:
            data = encode_message(message, tail=data)
        self.quic.send_stream_data(stream_id, data, True)
        call.output_ended = True
        if not call.input_ended:
            call.input_ended = True
            self._stop_reading(stream_id, Status.CANCELLED)
        self._forget_if_done(stream_id, call)
        return True

    def cancel(self, stream_id: int, status: Status = Status.CANCELLED) -> None:
        """Abandon a call: reset our direction and stop reading; its code is `status`."""
        call = self.calls.pop(stream_id, None)
        if call is None or self.terminated:
            return
        if not call.output_ended:
            self.quic.reset_stream(stream_id, int(status))
        if not call.input_ended:
            self._stop_reading(stream_id, status)

    def consume(self, stream_id: int, size: int) -> bool:
        """The application took `size` bytes of messages from this call.

        Returns True when this frees enough credit that the shell should transmit soon.
        """
        call = self.calls.get(stream_id)
        if call is None:
            return False
        call.consumed += size
        stream = self.quic._streams.get(stream_id)
        if stream is None:
            return False
        granted: int = stream.max_stream_data_local
        if call.consumed + self.receive_window - granted >= self.receive_window // 4:
            self._credit_due.add(stream_id)
            return True
        return False

    def send_buffered(self, stream_id: int) -> int:
        """Bytes written on this call that the peer has not acknowledged yet (0 once the
        call is gone or finished sending)."""
        call = self.calls.get(stream_id)
        if call is None or call.output_ended:
            return 0
        stream = self.quic._streams.get(stream_id)
        if stream is None:
            return 0
        return len(stream.sender._buffer)

    def expire_headerless(self) -> list[RpcEvent]:
        """Server: fail the calls whose request header was still missing at the previous
        sweep too (DEADLINE_EXCEEDED); the shell sweeps every header timeout."""
        out: list[RpcEvent] = []
        waiting = {sid for sid, call in self.calls.items() if not call.header_seen}
        for stream_id in waiting & self._headerless:
            call = self.calls[stream_id]
            self._fail(
                stream_id,
                call,
                Status.DEADLINE_EXCEEDED,
                "request header not received in time",
                out,
            )
            waiting.discard(stream_id)
        self._headerless = waiting
        return out

    def close(self, error_code: int = CLOSE_NO_ERROR, reason: str = "") -> None:
        """Close the whole connection (the shell then transmits)."""
        self.quic.close(error_code=error_code, reason_phrase=reason)

    # -- credit ---------------------------------------------------------------------------

    def credit_limit(self, stream_id: int) -> int | None:
        """The receive credit this call should have, or None for streams not ours."""
        call = self.calls.get(stream_id)
        if call is None:
            return None
        decoder = call.decoder
        finish_frame = call.received + (0 if decoder is None else decoder.pending_frame_remaining)
        return max(call.consumed + self.receive_window, finish_frame)

    # -- internals ------------------------------------------------------------------------

    def _on_data(self, stream_id: int, data: bytes, fin: bool, out: list[RpcEvent]) -> None:
        call = self.calls.get(stream_id)
        if call is None:
            call = self._open_remote(stream_id)
            if call is None:
                return
        if call.input_ended:
            return  # after a trailer, a failure or stop-reading: nothing more to say
        call.received += len(data)
        decoder = call.decoder
        try:
            if decoder is not None:
                frames = decoder.feed(data)
            else:
                frames, used = split_frames(data, self._kinds)
                if used < len(data):
                    decoder = call.decoder = FrameDecoder(self.max_frame_size, self.max_header_size)
                    decoder.feed(data, used)
        except FrameError as exc:
            self._fail(stream_id, call, exc.status, exc.message, out)
            return
        if decoder is not None and decoder.buffered:
            # A frame is incomplete: make sure the peer may send all of it.
            stream = self.quic._streams.get(stream_id)
            granted = stream.max_stream_data_local if stream is not None else 0
            if call.received + decoder.pending_frame_remaining > granted:
                self._credit_due.add(stream_id)
        if len(frames) == 2 and self._whole_exchange(stream_id, call, frames, fin, out):
            return
        for kind, payload in frames:
            if self.is_client:
                done = self._client_frame(stream_id, call, kind, payload, out)
            else:
                done = self._server_frame(stream_id, call, kind, payload, out)
            if done:
                return
        if fin:
            self._on_fin(stream_id, call, out)

    def _whole_exchange(
        self,
        stream_id: int,
        call: _Call,
        frames: list[tuple[FrameType, bytes]],
        fin: bool,
        out: list[RpcEvent],
    ) -> bool:
        """Fast path for a unary exchange arriving in one chunk: one event instead of three.

        Returns False (nothing done) unless the frames are a server's ``HEADER MESSAGE FIN``
        or a client's ``MESSAGE TRAILER``.
        """
        (first, first_payload), (second, second_payload) = frames
        if self.is_client:
            if first is not FrameType.MESSAGE or second is not FrameType.TRAILER:
                return False
            self._on_trailer(stream_id, call, second_payload, out, message=first_payload)
            return True
        if (
            not fin
            or call.header_seen
            or first is not FrameType.HEADER
            or second is not FrameType.MESSAGE
            or not _at_boundary(call)
        ):
            return False
        self._on_header(stream_id, call, first_payload, out, message=second_payload)
        return True

    def _on_header(
        self,
        stream_id: int,
        call: _Call,
        payload: bytes,
        out: list[RpcEvent],
        message: bytes | None = None,
    ) -> bool:
        """Server: the call's HEADER frame; with `message`, the whole unary request (header,
        its one message and FIN) arrived at once. False when the header failed the call."""
        call.consumed += len(payload) + 5
        try:
            header = decode_header(payload)
        except FrameError as exc:
            self._fail(stream_id, call, exc.status, exc.message, out)
            return False
        call.header_seen = True
        if message is None:
            out.append(RequestReceived(stream_id, header))
        else:
            call.input_ended = True
            out.append(RequestReceived(stream_id, header, message, ended=True))
            self._forget_if_done(stream_id, call)
        return True

    def _on_trailer(
        self,
        stream_id: int,
        call: _Call,
        payload: bytes,
        out: list[RpcEvent],
        message: bytes | None = None,
    ) -> None:
        """Client: the response's TRAILER frame, with the response's one message when both
        arrived at once."""
        call.consumed += len(payload) + 5
        try:
            trailer = decode_trailer(payload)
        except FrameError as exc:
            self._fail(stream_id, call, Status.INTERNAL, exc.message, out)
            return
        call.input_ended = True
        out.append(TrailerReceived(stream_id, trailer, message))
        self._forget_if_done(stream_id, call)

    def _open_remote(self, stream_id: int) -> _Call | None:
        if self.is_client:
            if not stream_is_client_initiated(stream_id):
                self.close(CLOSE_PROTOCOL_VIOLATION, "server opened a stream")
            return None  # else: a call we already forgot
        if stream_is_unidirectional(stream_id) or not stream_is_client_initiated(stream_id):
            self.close(CLOSE_PROTOCOL_VIOLATION, "only client bidirectional streams are allowed")
            return None
        if stream_id <= self._highest_stream_id:
            if stream_id not in self._skipped:
                return None  # a call already finished; late bytes are dropped
            self._skipped.discard(stream_id)
        else:
            # Streams arrive out of order (loss, scheduling): the ids jumped over are opened
            # but not seen yet. The peer's stream limit bounds this set.
            self._skipped.update(range(self._highest_stream_id + 4, stream_id, 4))
            self._highest_stream_id = stream_id
        call = _Call()
        self.calls[stream_id] = call
        return call

    def _server_frame(
        self, stream_id: int, call: _Call, kind: FrameType, payload: bytes, out: list[RpcEvent]
    ) -> bool:
        if kind is FrameType.MESSAGE and call.header_seen:
            out.append(MessageReceived(stream_id, payload, len(payload) + 5))
            return False
        if kind is FrameType.HEADER and not call.header_seen:
            return not self._on_header(stream_id, call, payload, out)
        problem = "a second request header" if kind is FrameType.HEADER else f"a {kind.name}"
        if not call.header_seen:
            problem = f"a {kind.name} before the request header"
        self._fail(stream_id, call, Status.INVALID_ARGUMENT, f"malformed call: {problem}", out)
        return True

    def _client_frame(
        self, stream_id: int, call: _Call, kind: FrameType, payload: bytes, out: list[RpcEvent]
    ) -> bool:
        if kind is FrameType.MESSAGE:
            out.append(MessageReceived(stream_id, payload, len(payload) + 5))
            return False
        if kind is FrameType.TRAILER:
            self._on_trailer(stream_id, call, payload, out)
            return True
        self._fail(stream_id, call, Status.INTERNAL, "malformed response: a request header", out)
        return True

    def _on_fin(self, stream_id: int, call: _Call, out: list[RpcEvent]) -> None:
        if not _at_boundary(call):
            self._fail(stream_id, call, Status.INVALID_ARGUMENT, "truncated frame at FIN", out)
        elif self.is_client:
            self._fail(stream_id, call, Status.INTERNAL, "response ended without a trailer", out)
        elif not call.header_seen:
            self._fail(stream_id, call, Status.INVALID_ARGUMENT, "request without a header", out)
        else:
            call.input_ended = True
            out.append(InputEnded(stream_id))
            self._forget_if_done(stream_id, call)

    def _fail(
        self, stream_id: int, call: _Call, status: Status, message: str, out: list[RpcEvent]
    ) -> None:
        if self.is_client:
            # Whatever the server got wrong is INTERNAL to the caller, except the size limit.
            if status is not Status.RESOURCE_EXHAUSTED:
                status = Status.INTERNAL
            self.cancel(stream_id, status)
        else:
            self.send_trailer(stream_id, Trailer(status, message))
            if not call.input_ended:
                call.input_ended = True
                self._stop_reading(stream_id, status)
            self.calls.pop(stream_id, None)
        out.append(CallFailed(stream_id, status, message))

    def _on_reset(self, stream_id: int, error_code: int, out: list[RpcEvent]) -> None:
        call = self.calls.pop(stream_id, None)
        if call is None:
            return
        if not call.output_ended:
            self.quic.reset_stream(stream_id, int(Status.CANCELLED))
        out.append(CallReset(stream_id, error_code))

    def _on_stop_sending(self, stream_id: int, error_code: int, out: list[RpcEvent]) -> None:
        call = self.calls.get(stream_id)
        if call is None:
            return
        call.output_ended = True  # aioquic already reset our direction
        if self.is_client:
            # The server stopped reading; its trailer (if any) is still on the way.
            self._forget_if_done(stream_id, call)
            return
        self.calls.pop(stream_id, None)
        if not call.input_ended:
            self._stop_reading(stream_id, Status.CANCELLED)
        out.append(CallReset(stream_id, error_code))

    def _stop_reading(self, stream_id: int, status: Status) -> None:
        stream = self.quic._streams.get(stream_id)
        if stream is not None and not stream.receiver.is_finished:
            self.quic.stop_stream(stream_id, int(status))

    def _forget_if_done(self, stream_id: int, call: _Call) -> None:
        if call.input_ended and call.output_ended:
            self.calls.pop(stream_id, None)
