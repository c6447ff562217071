"""The sans-IO core between two in-memory QUIC connections (no sockets, bounded pumps)."""

from __future__ import annotations

import struct
from dataclasses import replace
from typing import Any
from unittest.mock import ANY

from aioquic import tls
from aioquic._buffer import Buffer
from aioquic.quic.packet import QuicFrameType
from aioquic.quic.packet_builder import QuicDeliveryState
from quic_pair import make_pair

from rpcnet_runtime.certs import DevCerts
from rpcnet_runtime.codec import pack
from rpcnet_runtime.connection import CLOSE_PROTOCOL_VIOLATION, _Call
from rpcnet_runtime.events import (
    CallFailed,
    CallReset,
    ConnectionReady,
    ConnectionTerminated,
    InputEnded,
    MessageReceived,
    RequestReceived,
    TrailerReceived,
)
from rpcnet_runtime.framing import (
    FrameType,
    RequestHeader,
    Trailer,
    encode_frame,
    encode_header,
    encode_message,
    method_id,
)
from rpcnet_runtime.status import Status

HEADER = RequestHeader(path="p.S/M", timeout=2.0, metadata={"k": "v"})
# What the server decodes: the method travels as its id only.
RECEIVED = replace(HEADER, path="", method_id=method_id("p.S/M"))


def test_unary_round_trip_reports_each_step(dev_certs: DevCerts) -> None:
    pair = make_pair(dev_certs)
    assert [type(e) for e in pair.take_client()] == [ConnectionReady]
    assert [type(e) for e in pair.take_server()] == [ConnectionReady]

    sid = pair.client.send_request(HEADER, {1: "hi"}, end_stream=True)
    pair.pump()
    # The whole unary request arrived at once: one event carries header, message and end.
    assert pair.take_server() == [RequestReceived(sid, RECEIVED, pack({1: "hi"}), ended=True)]
    assert pair.server.send_trailer(sid, Trailer(Status.OK, metadata={"r": "1"}), {1: "ho"})
    pair.pump()
    assert pair.take_client() == [
        TrailerReceived(sid, Trailer(Status.OK, metadata={"r": "1"}), pack({1: "ho"})),
    ]
    assert pair.client.calls == {}
    assert pair.server.calls == {}


def test_unary_request_leaves_in_one_datagram(dev_certs: DevCerts) -> None:
    pair = make_pair(dev_certs)
    pair.client.send_request(HEADER, {1: "x" * 200}, end_stream=True)
    assert len(pair.client.quic.datagrams_to_send(now=pair.now)) == 1


def test_streaming_both_ways(dev_certs: DevCerts) -> None:
    pair = make_pair(dev_certs)
    pair.take_server()
    sid = pair.client.send_request(HEADER)
    for i in range(3):
        assert pair.client.send_message(sid, {1: i})
    pair.pump()
    events = pair.take_server()
    assert [type(e) for e in events] == [RequestReceived] + [MessageReceived] * 3
    for i in range(2):
        assert pair.server.send_message(sid, {1: i})
    pair.client.end_input(sid)
    pair.pump()
    assert [type(e) for e in pair.take_server()] == [InputEnded]
    pair.server.send_trailer(sid, Trailer(Status.OK))
    pair.pump()
    assert [type(e) for e in pair.take_client()] == [
        ConnectionReady,
        MessageReceived,
        MessageReceived,
        TrailerReceived,
    ]


def test_cancel_resets_and_server_reports_it(dev_certs: DevCerts) -> None:
    pair = make_pair(dev_certs)
    pair.take_server()
    sid = pair.client.send_request(HEADER)
    pair.pump()
    assert [type(e) for e in pair.take_server()] == [RequestReceived]
    pair.client.cancel(sid)
    pair.pump()
    resets = [e for e in pair.take_server() if isinstance(e, CallReset)]
    assert resets == [CallReset(sid, int(Status.CANCELLED))]
    assert pair.server.calls == {}
    # A late trailer from the server is refused quietly.
    assert not pair.server.send_trailer(sid, Trailer(Status.OK))


def test_oversized_frame_fails_only_that_call(dev_certs: DevCerts) -> None:
    pair = make_pair(dev_certs, max_frame_size=1000)
    pair.take_server()
    pair.take_client()
    bad = pair.client.send_request(HEADER)
    pair.client.quic.send_stream_data(bad, struct.pack(">BI", FrameType.MESSAGE, 5000))
    good = pair.client.send_request(HEADER, {1: 1}, end_stream=True)
    pair.pump()
    server_events = pair.take_server()
    failed = [e for e in server_events if isinstance(e, CallFailed)]
    assert [(e.stream_id, e.status) for e in failed] == [(bad, Status.RESOURCE_EXHAUSTED)]
    # The bad call failed while its first chunk was decoded: only the good one is a request.
    assert [e.stream_id for e in server_events if isinstance(e, RequestReceived)] == [good]
    trailers = [e for e in pair.take_client() if isinstance(e, TrailerReceived)]
    assert [t.stream_id for t in trailers] == [bad]
    assert trailers[0].trailer.status is Status.RESOURCE_EXHAUSTED
    assert "5000" in trailers[0].trailer.message


def test_malformed_header_gets_invalid_argument(dev_certs: DevCerts) -> None:
    pair = make_pair(dev_certs)
    pair.take_client()
    sid = pair.client.quic.get_next_available_stream_id()
    pair.client.quic.send_stream_data(sid, encode_frame(FrameType.HEADER, b"\xc1garbage"), True)
    # Let the client core expect the answer to this hand-written request.
    pair.client.calls[sid] = _Call(header_seen=True, output_ended=True)
    pair.pump()
    (trailer,) = [e for e in pair.take_client() if isinstance(e, TrailerReceived)]
    assert trailer.trailer.status is Status.INVALID_ARGUMENT
    assert "not msgpack" in trailer.trailer.message


def test_message_before_header_is_malformed(dev_certs: DevCerts) -> None:
    pair = make_pair(dev_certs)
    pair.take_server()
    sid = pair.client.quic.get_next_available_stream_id()
    pair.client.quic.send_stream_data(sid, encode_message({1: 1}), True)
    pair.pump()
    (failed,) = [e for e in pair.take_server() if isinstance(e, CallFailed)]
    assert failed.status is Status.INVALID_ARGUMENT
    assert "before the request header" in failed.message


def test_truncated_frame_at_fin(dev_certs: DevCerts) -> None:
    pair = make_pair(dev_certs)
    pair.take_server()
    sid = pair.client.quic.get_next_available_stream_id()
    data = encode_header(HEADER) + encode_message({1: "abc"})[:-2]
    pair.client.quic.send_stream_data(sid, data, True)
    pair.pump()
    events = pair.take_server()
    assert isinstance(events[0], RequestReceived)
    assert events[-1] == CallFailed(sid, Status.INVALID_ARGUMENT, "truncated frame at FIN")


def test_unidirectional_stream_closes_the_connection(dev_certs: DevCerts) -> None:
    pair = make_pair(dev_certs)
    sid = pair.client.quic.get_next_available_stream_id(is_unidirectional=True)
    pair.client.quic.send_stream_data(sid, b"hello", True)
    pair.pump()
    for _ in range(10):  # let the closing period run out
        pair.advance(1.0)
        pair.step()
    closed = [e for e in pair.take_client() if isinstance(e, ConnectionTerminated)]
    assert closed and closed[0].error_code == CLOSE_PROTOCOL_VIOLATION


def test_wrong_alpn_is_refused(dev_certs: DevCerts) -> None:
    pair = make_pair(dev_certs, server_alpn="h3", client_alpn="h3")
    assert pair.server.quic._close_event is not None or pair.server.terminated
    assert not any(isinstance(e, ConnectionReady) for e in pair.server_events)


def test_server_parks_calls_until_ready(dev_certs: DevCerts) -> None:
    pair = make_pair(dev_certs, ready=False)
    pair.take_server()
    sid = pair.client.send_request(HEADER, {1: 1}, end_stream=True)
    pair.pump()
    assert pair.take_server() == []
    released = pair.server.mark_ready()
    assert released == [RequestReceived(sid, RECEIVED, pack({1: 1}), ended=True)]


def test_slow_reader_bounds_unread_bytes(dev_certs: DevCerts) -> None:
    window = 64 * 1024
    pair = make_pair(dev_certs, receive_window=window)
    pair.take_server()
    sid = pair.client.send_request(HEADER)
    chunk = {1: b"z" * 4000}
    for _ in range(200):  # 800 kB offered, far above the window
        pair.client.send_message(sid, chunk)
    pair.pump(max_rounds=200)
    received = [e for e in pair.take_server() if isinstance(e, MessageReceived)]
    unread = sum(e.size for e in received)
    assert window <= unread + 5000 and unread <= window + 5000
    assert pair.client.send_buffered(sid) > 500_000
    # Consuming lets the writer go on, again only about a window further.
    pair.server.consume(sid, unread)
    pair.pump(max_rounds=200)
    more = sum(e.size for e in pair.take_server() if isinstance(e, MessageReceived))
    assert window // 2 <= more <= window + 5000


def test_big_frame_gets_credit_to_complete(dev_certs: DevCerts) -> None:
    window = 16 * 1024
    pair = make_pair(dev_certs, receive_window=window)
    pair.take_server()
    sid = pair.client.send_request(HEADER)
    pair.client.send_message(sid, {1: b"q" * 100_000}, end_stream=True)
    pair.pump(max_rounds=300)
    events = pair.take_server()
    assert [type(e) for e in events] == [RequestReceived, MessageReceived, InputEnded]


def test_late_reply_after_cancel_is_dropped_quietly(dev_certs: DevCerts) -> None:
    pair = make_pair(dev_certs)
    pair.take_client()
    sid = pair.client.send_request(HEADER, {1: 1}, end_stream=True)
    pair.pump()
    pair.client.cancel(sid, Status.DEADLINE_EXCEEDED)  # the caller gave up ...
    pair.server.send_trailer(sid, Trailer(Status.OK), {1: 2})  # ... as the answer left
    pair.pump()
    assert pair.take_client() == []
    assert not pair.client.terminated and not pair.server.terminated
    # The connection goes on serving calls.
    sid2 = pair.client.send_request(HEADER, {1: 1}, end_stream=True)
    pair.pump()
    pair.server.send_trailer(sid2, Trailer(Status.OK), {1: 3})
    pair.pump()
    assert [type(e) for e in pair.take_client()] == [TrailerReceived]


def test_client_reports_malformed_responses_as_internal(dev_certs: DevCerts) -> None:
    pair = make_pair(dev_certs)
    pair.take_client()
    sid = pair.client.send_request(HEADER, {1: 1}, end_stream=True)
    pair.pump()
    pair.server.quic.send_stream_data(sid, b"\x09\x00\x00\x00\x00", True)  # unknown type
    pair.pump()
    (failed,) = [e for e in pair.take_client() if isinstance(e, CallFailed)]
    assert failed.status is Status.INTERNAL
    assert sid not in pair.client.calls


def test_client_refuses_an_oversized_response_frame(dev_certs: DevCerts) -> None:
    pair = make_pair(dev_certs, max_frame_size=100)
    pair.take_client()
    sid = pair.client.send_request(HEADER, {1: 1}, end_stream=True)
    pair.pump()
    pair.server.send_trailer(sid, Trailer(Status.OK), {1: b"x" * 200})
    pair.pump()
    (failed,) = [e for e in pair.take_client() if isinstance(e, CallFailed)]
    assert failed.status is Status.RESOURCE_EXHAUSTED


def test_response_without_trailer_fails_the_call(dev_certs: DevCerts) -> None:
    pair = make_pair(dev_certs)
    pair.take_client()
    sid = pair.client.send_request(HEADER, {1: 1}, end_stream=True)
    pair.pump()
    pair.server.quic.send_stream_data(sid, encode_message({1: 2}), True)
    pair.pump()
    events = pair.take_client()
    assert [type(e) for e in events] == [MessageReceived, CallFailed]
    assert events[1] == CallFailed(sid, Status.INTERNAL, "response ended without a trailer")


def test_server_opening_a_stream_is_a_protocol_violation(dev_certs: DevCerts) -> None:
    pair = make_pair(dev_certs)
    sid = pair.server.quic.get_next_available_stream_id()
    pair.server.quic.send_stream_data(sid, b"x", True)
    pair.pump()
    assert pair.client.quic._close_event is not None
    assert pair.client.quic._close_event.error_code == CLOSE_PROTOCOL_VIOLATION


def test_streams_arriving_out_of_order_are_all_served(dev_certs: DevCerts) -> None:
    pair = make_pair(dev_certs)
    pair.take_server()
    first = pair.client.send_request(HEADER, {1: 1}, end_stream=True)
    pair.now += 0.5  # past any pacing delay
    assert pair.client.quic.datagrams_to_send(now=pair.now)  # the first call's packet is lost
    second = pair.client.send_request(HEADER, {1: 2}, end_stream=True)
    pair.pump(max_rounds=500)  # the second call arrives, then the first one's retransmission
    served = [e.stream_id for e in pair.take_server() if isinstance(e, RequestReceived)]
    assert served == [second, first]


def test_a_request_split_across_chunks_is_reported_step_by_step(dev_certs: DevCerts) -> None:
    pair = make_pair(dev_certs)
    pair.take_server()
    pair.take_client()
    sid = pair.client.send_request(HEADER)
    pair.pump()
    pair.client.send_message(sid, {1: "a"}, end_stream=True)
    pair.pump()
    assert pair.take_server() == [
        RequestReceived(sid, RECEIVED),
        MessageReceived(sid, pack({1: "a"}), len(pack({1: "a"})) + 5),
        InputEnded(sid),
    ]
    pair.server.send_message(sid, {1: "b"})
    pair.pump()
    pair.server.send_trailer(sid, Trailer(Status.OK))
    pair.pump()
    assert pair.take_client() == [
        MessageReceived(sid, pack({1: "b"}), len(pack({1: "b"})) + 5),
        TrailerReceived(sid, Trailer(Status.OK)),
    ]


class _NoFrames:
    """A packet builder that fails the test if a frame is started."""

    def start_frame(self, *args: object, **kwargs: object) -> None:
        raise AssertionError("a frame was written")


def test_no_credit_frames_for_a_fully_received_stream(dev_certs: DevCerts) -> None:
    pair = make_pair(dev_certs)
    pair.take_client()
    sid = pair.client.send_request(HEADER, {1: "x"}, end_stream=True)
    pair.pump()
    pair.server.send_trailer(sid, Trailer(Status.OK), {1: "y"})
    stream = pair.server.quic._streams[sid]  # still there until its data is acknowledged
    assert sid not in pair.server.calls and stream.receiver.is_finished
    pair.server._credit_due.add(sid)  # as if its credit were due again
    space = pair.server.quic._spaces[tls.Epoch.ONE_RTT]
    pair.server.quic._write_connection_limits(builder=_NoFrames(), space=space)  # type: ignore[arg-type]
    assert sid not in pair.server._credit_due
    pair.pump()
    assert [type(e) for e in pair.take_client()] == [TrailerReceived]


class _FrameRecorder:
    """A packet builder that records the frames started (type, delivery handler, arguments)."""

    def __init__(self) -> None:
        self.frames: list[tuple[int, Any, Any]] = []

    def start_frame(
        self, frame_type: int, capacity: int = 1, handler: Any = None, handler_args: Any = ()
    ) -> Buffer:
        self.frames.append((frame_type, handler, handler_args))
        return Buffer(capacity=capacity)


def test_lost_credit_frame_is_sent_again(dev_certs: DevCerts) -> None:
    pair = make_pair(dev_certs, receive_window=16 * 1024)
    pair.take_server()
    sid = pair.client.send_request(HEADER)
    for _ in range(20):  # 80 kB offered, five windows
        pair.client.send_message(sid, {1: b"z" * 4000})
    pair.pump(max_rounds=100)
    unread = sum(e.size for e in pair.take_server() if isinstance(e, MessageReceived))
    assert pair.server.consume(sid, unread)
    recorder = _FrameRecorder()
    space = pair.server.quic._spaces[tls.Epoch.ONE_RTT]
    pair.server.quic._write_connection_limits(builder=recorder, space=space)  # type: ignore[arg-type]
    credit = [f for f in recorder.frames if f[0] == QuicFrameType.MAX_STREAM_DATA]
    assert len(credit) == 1 and sid not in pair.server._credit_due
    pair.pump(max_rounds=100)  # the frame never left: the client stays blocked
    assert not [e for e in pair.take_server() if isinstance(e, MessageReceived)]
    _, on_delivery, args = credit[0]
    on_delivery(QuicDeliveryState.LOST, *args)
    pair.pump(max_rounds=100)
    assert [e for e in pair.take_server() if isinstance(e, MessageReceived)]


def test_aioquic_s_per_stream_credit_pass_finds_no_stream(dev_certs: DevCerts) -> None:
    """Its per-stream pass (every open stream, every packet) is the credit rule's to skip:
    the stream table shows aioquic no values, and the table still answers lookups."""
    pair = make_pair(dev_certs, receive_window=16 * 1024)
    pair.take_client()
    passes: list[int] = []
    for rpc in (pair.client, pair.server):
        rpc.quic._write_stream_limits = lambda **kwargs: passes.append(1)  # type: ignore[method-assign]
    ids = [pair.client.send_request(HEADER) for _ in range(5)]
    pair.pump()
    assert len(pair.server.quic._streams) == 5 and set(pair.server.quic._streams) == set(ids)
    assert pair.server.quic._streams.values() == ()
    assert [s.stream_id for _, s in pair.server.quic._streams.items()] == ids
    for sid in ids:
        pair.client.send_message(sid, {1: b"z" * 100_000}, end_stream=True)
    pair.pump(max_rounds=200)
    assert passes == []
    ended = [e for e in pair.take_server() if isinstance(e, InputEnded)]
    assert sorted(e.stream_id for e in ended) == ids  # 500 kB crossed: credit was given


def test_a_call_whose_header_never_completes_is_failed_at_the_second_sweep(
    dev_certs: DevCerts,
) -> None:
    pair = make_pair(dev_certs)
    pair.take_server()
    stalled = pair.client.quic.get_next_available_stream_id()
    pair.client.calls[stalled] = _Call(header_seen=True)
    pair.client.quic.send_stream_data(stalled, encode_header(HEADER)[:3])  # 3 bytes of 5+
    late = pair.client.quic.get_next_available_stream_id()
    pair.client.calls[late] = _Call(header_seen=True)
    pair.client.quic.send_stream_data(late, encode_header(HEADER)[:3])
    served = pair.client.send_request(HEADER, {1: 1}, end_stream=True)
    pair.pump()
    assert [type(e) for e in pair.take_server()] == [RequestReceived]
    assert pair.server.expire_headerless() == []  # first sweep: only marked
    pair.client.quic.send_stream_data(late, encode_header(HEADER)[3:])  # completes in time
    pair.pump()
    assert [type(e) for e in pair.take_server()] == [RequestReceived]
    failed = pair.server.expire_headerless()
    assert failed == [CallFailed(stalled, Status.DEADLINE_EXCEEDED, ANY)]
    pair.server.send_trailer(served, Trailer(Status.OK), {1: 2})
    pair.pump()
    trailers = {
        e.stream_id: e.trailer.status for e in pair.take_client() if isinstance(e, TrailerReceived)
    }
    assert trailers == {stalled: Status.DEADLINE_EXCEEDED, served: Status.OK}
    assert stalled not in pair.server.calls and late in pair.server.calls
    assert pair.server.expire_headerless() == []
