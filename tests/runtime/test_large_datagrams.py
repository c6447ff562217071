"""Datagrams above 16 KB: the wide STREAM frame writer (sans-IO, and against a fake frame
writer), and real loopback QUIC+TLS calls moving multi-hundred-KB messages through them."""

from __future__ import annotations

import importlib
import random
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest
from aioquic._buffer import Buffer
from aioquic.buffer import size_uint_var
from aioquic.quic import events as quic_events
from aioquic.quic.connection import QuicConnection
from aioquic.quic.recovery import QuicPacketPacer
from aioquic.quic.stream import QuicStreamSender
from quic_pair import SERVER_ADDR, Pair

from rpcnet_runtime.certs import DevCerts
from rpcnet_runtime.config import LOOPBACK_DATAGRAM_SIZE, MAX_DATAGRAM_SIZE
from rpcnet_runtime.connection import ALPN, RpcConnection
from rpcnet_runtime.events import MessageReceived, RequestReceived, TrailerReceived
from rpcnet_runtime.framing import RequestHeader, Trailer
from rpcnet_runtime.protocol import RECEIVE_SIZE, tune_socket
from rpcnet_runtime.status import Status
from rpcnet_runtime.stream_frames import (
    LONG_HEADER_FRAME_CAP,
    MAX_FRAME_LENGTH,
    install_wide_frames,
)
from rpcnet_runtime.tls import ClientTLS, ServerTLS
from rpcnet_runtime.window_cap import BURST_DATAGRAMS, WINDOW_DATAGRAMS, install_window_cap

BIG = 64_000


def _configs(certs: DevCerts, datagram: int) -> tuple[Any, Any]:
    server = ServerTLS(certs.server_cert, certs.server_key).quic_configuration(
        alpn_protocols=[ALPN], idle_timeout=10
    )
    client = ClientTLS(ca=certs.ca).quic_configuration(
        alpn_protocols=[ALPN], idle_timeout=10, server_name="localhost"
    )
    for config in (server, client):
        config.max_datagram_size = datagram
    return client, server


def _big_pair(certs: DevCerts, datagram: int = BIG) -> tuple[Pair, list[int]]:
    """A handshaken RpcConnection pair with `datagram`-byte datagrams, and a list that
    collects the size of every datagram either side sends from then on."""
    client_config, server_config = _configs(certs, datagram)
    client_quic = QuicConnection(configuration=client_config)
    server_quic = QuicConnection(
        configuration=server_config,
        original_destination_connection_id=client_quic.original_destination_connection_id,
    )
    pair = Pair(
        client=RpcConnection(client_quic, is_client=True, max_frame_size=1 << 20),
        server=RpcConnection(server_quic, is_client=False, max_frame_size=1 << 20),
    )
    client_quic.connect(SERVER_ADDR, now=pair.now)
    pair.pump()
    pair.server_events.extend(pair.server.mark_ready())
    pair.take_client()
    pair.take_server()
    sizes: list[int] = []
    for quic in (client_quic, server_quic):
        _record_sizes(quic, sizes)
    return pair, sizes


def _record_sizes(quic: QuicConnection, sizes: list[int]) -> None:
    original = quic.datagrams_to_send

    def datagrams_to_send(now: float) -> list[tuple[bytes, Any]]:
        out = original(now=now)
        sizes.extend(len(data) for data, _ in out)
        return out

    quic.datagrams_to_send = datagrams_to_send  # type: ignore[method-assign]


def _count_stream_chunks(quic: QuicConnection) -> list[int]:
    """Sizes of the STREAM data chunks aioquic hands up (one per frame received in order)."""
    chunks: list[int] = []
    original = quic.next_event

    def next_event() -> quic_events.QuicEvent | None:
        event = original()
        if isinstance(event, quic_events.StreamDataReceived) and event.data:
            chunks.append(len(event.data))
        return event

    quic.next_event = next_event  # type: ignore[method-assign]
    return chunks


def _message(pair: Pair, events: list[Any]) -> bytes:
    parts: list[bytes | None] = [e.payload for e in events if isinstance(e, MessageReceived)]
    parts += [e.message for e in events if isinstance(e, RequestReceived | TrailerReceived)]
    found = [p for p in parts if p is not None]
    assert len(found) == 1, events
    body: bytes = found[0]
    return body


# -- sans-IO: whole connections ---------------------------------------------------------------


def test_a_request_and_reply_of_300_kb_cross_64_kb_datagrams_intact(
    dev_certs: DevCerts,
) -> None:
    pair, sizes = _big_pair(dev_certs)
    server_chunks = _count_stream_chunks(pair.server.quic)
    rng = random.Random(1)
    payload = rng.randbytes(300_000)
    stream_id = pair.client.send_request(RequestHeader("/t.S/M"), payload, end_stream=True)
    pair.pump(max_rounds=200)
    got = pair.take_server()
    assert _message(pair, got) == _packed(payload)
    assert 2 * MAX_FRAME_LENGTH < max(sizes) <= BIG
    assert max(server_chunks) > 2 * MAX_FRAME_LENGTH  # frames far above 16 KB arrive whole

    reply = rng.randbytes(400_000)
    pair.server.send_trailer(stream_id, Trailer(Status.OK), reply)
    pair.pump(max_rounds=200)
    assert _message(pair, pair.take_client()) == _packed(reply)
    assert not pair.client.quic._close_pending and not pair.server.quic._close_pending


def _packed(data: bytes) -> bytes:
    # A wire map is what send_request takes; a bytes value travels as msgpack bin.
    from rpcnet_runtime.codec import pack

    return pack(data)


def test_lost_64_kb_datagrams_are_resent_and_the_bytes_still_arrive_intact(
    dev_certs: DevCerts,
) -> None:
    pair, sizes = _big_pair(dev_certs)
    payload = random.Random(2).randbytes(500_000)
    pair.client.send_request(RequestHeader("/t.S/M"), payload, end_stream=True)
    pair.drop = True
    pair.step()  # the first flight is lost
    pair.drop = False
    assert pair.dropped >= 1
    for _ in range(100):  # retransmission after the probe timeout (bounded)
        pair.advance(0.05)
        pair.pump(max_rounds=200)
        if any(isinstance(e, MessageReceived) for e in pair.server_events):
            break
    assert _message(pair, pair.take_server()) == _packed(payload)
    assert max(sizes) <= BIG


def test_1200_byte_datagrams_are_unchanged(dev_certs: DevCerts) -> None:
    pair, sizes = _big_pair(dev_certs, datagram=1200)
    payload = random.Random(3).randbytes(50_000)
    pair.client.send_request(RequestHeader("/t.S/M"), payload, end_stream=True)
    pair.pump(max_rounds=300)
    assert _message(pair, pair.take_server()) == _packed(payload)
    assert max(sizes) <= 1200


@pytest.mark.parametrize("wide", [False, True])
def test_aioquic_alone_breaks_stream_frames_above_16_kb(dev_certs: DevCerts, wide: bool) -> None:
    """Why stream_frames exists: without it the stream's bytes never arrive whole (corrupt
    frame lengths). If the False case fails, aioquic no longer needs it."""
    client_config, server_config = _configs(dev_certs, 32_768)
    client = QuicConnection(configuration=client_config)
    server = QuicConnection(
        configuration=server_config,
        original_destination_connection_id=client.original_destination_connection_id,
    )
    if wide:
        install_wide_frames(client)
    now = 0.0
    client.connect(SERVER_ADDR, now=now)
    payload = random.Random(5).randbytes(100_000)
    client.send_stream_data(0, payload, end_stream=True)
    received = bytearray()
    for _ in range(40):
        now += 0.001
        for src, dst, addr in ((client, server, ("127.0.0.1", 1)), (server, client, SERVER_ADDR)):
            for data, _ in src.datagrams_to_send(now=now):
                dst.receive_datagram(data, addr, now=now)
        event = server.next_event()
        while event is not None:
            if isinstance(event, quic_events.StreamDataReceived):
                received += event.data
            event = server.next_event()
    intact = bytes(received) == payload and server._close_event is None
    assert intact is wide


# -- the wrapper, against a fake frame writer shaped like aioquic's -----------------------------


class _FakeBuilder:
    """Only the builder surface aioquic's frame writers use, over a real aioquic `Buffer`."""

    def __init__(self, space: int) -> None:
        self.buffer = Buffer(capacity=space)
        self.space = space
        self.quic_logger_frames: list[Any] = []

    @property
    def remaining_flight_space(self) -> int:
        return self.space - self.buffer.tell()

    def start_frame(
        self, frame_type: int, capacity: int = 1, handler: Any = None, handler_args: Any = ()
    ) -> Buffer:
        assert self.remaining_flight_space >= capacity
        self.buffer.push_uint_var(frame_type)
        return self.buffer


class _FakeSender:
    def __init__(self, stream: _FakeStream) -> None:
        self._stream = stream

    @property
    def _buffer(self) -> bytes:
        return self._stream.data


class _FakeStream:
    stream_id = 4

    def __init__(self, pending: int) -> None:
        self.data = bytes(range(256)) * (pending // 256)
        self.sender = _FakeSender(self)


def _fake_writer(space_seen: list[int], builders_seen: list[Any]) -> Callable[..., int]:
    """Writes a frame the way aioquic 1.7.2 does, two-byte length included."""

    def write(builder: Any, space: Any, stream: Any, max_offset: int) -> int:
        room = builder.remaining_flight_space
        space_seen.append(room)
        builders_seen.append(builder)
        overhead = 3 + size_uint_var(stream.stream_id)
        data, stream.data = stream.data[: room - overhead], stream.data[room - overhead :]
        buf = builder.start_frame(0x0A, capacity=overhead)
        buf.push_uint_var(stream.stream_id)
        buf.push_uint16(len(data) | 0x4000)
        buf.push_bytes(data)
        return len(data)

    return write


def _installed(
    datagram: int = BIG, handshake_complete: bool = True
) -> tuple[Any, list[int], list[Any], list[int]]:
    quic = QuicConnection.__new__(QuicConnection)  # only the two wrapped methods are used
    space_seen: list[int] = []
    builders_seen: list[Any] = []
    crypto_seen: list[int] = []
    quic._write_stream_frame = _fake_writer(space_seen, builders_seen)  # type: ignore[method-assign]

    def crypto(builder: Any, space: Any, stream: Any) -> bool:
        crypto_seen.append(builder.remaining_flight_space)
        return True

    quic._write_crypto_frame = crypto  # type: ignore[method-assign]
    quic._max_datagram_size = datagram
    quic._handshake_complete = handshake_complete
    install_wide_frames(quic)
    return quic, space_seen, builders_seen, crypto_seen


def test_a_big_packet_gets_one_frame_with_a_varint_length_that_fits() -> None:
    quic, _, _, _ = _installed()
    builder = _FakeBuilder(60_000)
    stream = _FakeStream(100_000)
    original = stream.data
    used = quic._write_stream_frame(builder, None, stream, 1 << 30)
    assert builder.buffer.tell() <= 60_000
    written = Buffer(data=builder.buffer.data)
    assert written.pull_uint_var() == 0x0A
    assert written.pull_uint_var() == _FakeStream.stream_id
    length = written.pull_uint_var()
    assert length == used > MAX_FRAME_LENGTH
    assert written.pull_bytes(length) == original[:length]
    assert written.tell() == builder.buffer.tell() >= 60_000 - 2  # the packet is full


def test_small_packets_small_datagrams_and_long_headers_keep_aioquic_limits() -> None:
    quic, _, builders_seen, crypto_seen = _installed()
    small = _FakeBuilder(1_150)
    quic._write_stream_frame(small, None, _FakeStream(10_000), 1 << 30)
    assert builders_seen == [small]  # aioquic's writer, untouched
    quic._write_crypto_frame(_FakeBuilder(60_000), None, None)
    assert crypto_seen == [LONG_HEADER_FRAME_CAP]
    early, early_seen, _, _ = _installed(handshake_complete=False)
    early._write_stream_frame(_FakeBuilder(60_000), None, _FakeStream(100_000), 1 << 30)
    assert early_seen == [LONG_HEADER_FRAME_CAP]  # 0-RTT: a frame that fits a long header
    full = _FakeBuilder(20)
    assert quic._write_stream_frame(full, None, _FakeStream(10_000), 1 << 30) == 0
    assert builders_seen == [small] and full.buffer.tell() == 0  # a full packet: not asked
    plain, _, _, _ = _installed(datagram=1200)
    assert plain._write_stream_frame.__name__ == "write"  # nothing installed


def test_loopback_default_uses_big_datagrams() -> None:
    assert MAX_FRAME_LENGTH < LOOPBACK_DATAGRAM_SIZE <= MAX_DATAGRAM_SIZE <= 65_507


# -- real loopback QUIC + TLS ---------------------------------------------------------------------

_GEN_ROOT = Path(__file__).resolve().parents[1] / "integration"


@pytest.fixture(scope="module")
def interop() -> ModuleType:
    if str(_GEN_ROOT) not in sys.path:
        sys.path.insert(0, str(_GEN_ROOT))
    return importlib.import_module("gen.interop")


async def test_real_loopback_calls_move_hundreds_of_kb_through_big_datagrams(
    dev_certs: DevCerts, interop: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rpcnet_runtime import CallContext, ClientConfig, Server, ServerConfig, connect

    sizes: list[int] = []
    original = QuicConnection.datagrams_to_send

    def recording(self: QuicConnection, now: float) -> list[tuple[bytes, Any]]:
        out = original(self, now=now)
        sizes.extend(len(data) for data, _ in out)
        return out

    monkeypatch.setattr(QuicConnection, "datagrams_to_send", recording)

    class Echo(interop.TestServiceBase):  # type: ignore[misc, name-defined]
        async def unary_call(self, request: Any, ctx: CallContext) -> Any:
            return interop.SimpleResponse(payload=request.payload)

    server = Server(
        "127.0.0.1",
        0,
        tls=ServerTLS(dev_certs.server_cert, dev_certs.server_key),
        config=ServerConfig(max_frame_size=2 << 20),
    )
    server.add_service(Echo())
    await server.start()
    rng = random.Random(4)
    try:
        async with connect(
            f"127.0.0.1:{server.port}",
            tls=ClientTLS(ca=dev_certs.ca),
            config=ClientConfig(max_frame_size=2 << 20),
        ) as channel:
            client = interop.TestServiceClient(channel)
            for size in (300_000, 700_000, 65_536):
                body = rng.randbytes(size)
                reply = await client.unary_call(
                    interop.SimpleRequest(payload=interop.Payload(body=body))
                )
                assert reply.payload.body == body
            # Both sockets receive into 64 KiB, not asyncio's 256 KiB, and still get it all.
            protocol = channel._protocol
            assert protocol is not None
            assert protocol._transport.max_size == RECEIVE_SIZE
            assert protocol.core.pacing_burst == BURST_DATAGRAMS  # asyncio's fine clock
            assert server._quic_server._transport.max_size == RECEIVE_SIZE  # type: ignore[union-attr]
    finally:
        await server.stop(grace=0.5)
    assert max(sizes) > 2 * MAX_FRAME_LENGTH
    assert max(sizes) <= LOOPBACK_DATAGRAM_SIZE


# -- the congestion window's ceiling ---------------------------------------------------------------


class _FakeController:
    def __init__(self, window: int) -> None:
        self.congestion_window = window

    def on_packet_acked(self, *, now: float, packet: Any) -> None:
        self.congestion_window += packet  # slow start: grows by what was acknowledged


def _quic_with(datagram: int, window: int) -> Any:
    quic = QuicConnection.__new__(QuicConnection)
    quic._max_datagram_size = datagram
    quic._loss = SimpleNamespace(  # type: ignore[assignment]
        _cc=_FakeController(window), _pacer=QuicPacketPacer(max_datagram_size=datagram)
    )
    return quic


def test_the_window_is_held_at_its_ceiling_and_small_datagrams_are_left_alone() -> None:
    quic = _quic_with(BIG, 40 * BIG)
    install_window_cap(quic)
    controller = quic._loss._cc
    assert controller.congestion_window == WINDOW_DATAGRAMS * BIG  # lowered at once
    controller.congestion_window = 3 * BIG  # as after a loss
    controller.on_packet_acked(now=0.0, packet=BIG)
    assert controller.congestion_window == 4 * BIG  # grows below the ceiling
    controller.on_packet_acked(now=0.0, packet=100 * BIG)
    assert controller.congestion_window == WINDOW_DATAGRAMS * BIG
    plain = _quic_with(1200, 40 * 1200)
    install_window_cap(plain)
    plain._loss._cc.on_packet_acked(now=0.0, packet=100 * 1200)
    assert plain._loss._cc.congestion_window == 140 * 1200


@pytest.mark.parametrize("datagram", [BIG, 1200])
def test_the_pacer_lets_two_big_datagrams_leave_back_to_back(
    dev_certs: DevCerts, datagram: int
) -> None:
    client_config, _ = _configs(dev_certs, datagram)
    quic = QuicConnection(configuration=client_config)
    install_window_cap(quic)
    pacer = quic._loss._pacer
    pacer.update_rate(congestion_window=WINDOW_DATAGRAMS * datagram, smoothed_rtt=0.001)
    assert pacer.packet_time == pytest.approx(0.001 / WINDOW_DATAGRAMS)
    # aioquic's own burst is a quarter of the window (4 datagrams here); big ones get 2.
    bursts = BURST_DATAGRAMS if datagram == BIG else WINDOW_DATAGRAMS // 4
    assert pacer.bucket_max == pytest.approx(bursts * pacer.packet_time)
    now = 1.0
    sent = 0
    while pacer.next_send_time(now) is None and sent < 10:  # a full bucket, then paced
        pacer.update_after_send(now)
        sent += 1
    assert sent == bursts


def test_without_a_burst_the_pacer_keeps_aioquic_s_quarter_window(dev_certs: DevCerts) -> None:
    client_config, _ = _configs(dev_certs, BIG)
    quic = QuicConnection(configuration=client_config)
    install_window_cap(quic, burst=None)
    pacer = quic._loss._pacer
    pacer.update_rate(congestion_window=WINDOW_DATAGRAMS * BIG, smoothed_rtt=0.001)
    assert pacer.bucket_max == pytest.approx(WINDOW_DATAGRAMS // 4 * pacer.packet_time)
    assert quic._loss._cc.congestion_window <= WINDOW_DATAGRAMS * BIG  # the ceiling still holds


def test_a_bulk_transfer_reaches_the_ceiling_and_no_further(dev_certs: DevCerts) -> None:
    pair, _ = _big_pair(dev_certs)
    rng = random.Random(6)
    for _ in range(4):
        payload = rng.randbytes(900_000)
        stream_id = pair.client.send_request(RequestHeader("/t.S/M"), payload, end_stream=True)
        pair.pump(max_rounds=400)
        assert _message(pair, pair.take_server()) == _packed(payload)
        pair.server.send_trailer(stream_id, Trailer(Status.OK), payload)
        pair.pump(max_rounds=400)
        assert _message(pair, pair.take_client()) == _packed(payload)
    for rpc in (pair.client, pair.server):
        assert rpc.quic._loss.congestion_window == WINDOW_DATAGRAMS * BIG


def test_a_small_stream_in_a_big_packet_gets_aioquic_s_own_writer() -> None:
    quic, _, builders_seen, _ = _installed()
    builder = _FakeBuilder(60_000)
    assert quic._write_stream_frame(builder, None, _FakeStream(2_048), 1 << 30) == 2_048
    assert builders_seen == [builder]  # no stand-in: the frame fits a two-byte length
    written = Buffer(data=builder.buffer.data)
    assert written.pull_uint_var() == 0x0A and written.pull_uint_var() == _FakeStream.stream_id
    assert written.pull_uint16() == 2_048 | 0x4000


# -- settled streams: one frame-writer visit per stream that sent all it holds ----------------


def _count_frames_asked(monkeypatch: pytest.MonkeyPatch) -> dict[int | None, int]:
    """How often aioquic asks each stream for a frame to send (by stream id)."""
    asked: dict[int | None, int] = {}
    get_frame = QuicStreamSender.get_frame

    def counting(self: QuicStreamSender, *args: Any, **kwargs: Any) -> Any:
        asked[self._stream_id] = asked.get(self._stream_id, 0) + 1
        return get_frame(self, *args, **kwargs)

    monkeypatch.setattr(QuicStreamSender, "get_frame", counting)
    return asked


def _unary_exchanges(pair: Pair, count: int) -> list[int]:
    """`count` unary calls answered by the server; returns the client's stream ids."""
    ids = [
        pair.client.send_request(RequestHeader("/t.S/M"), {1: n}, end_stream=True)
        for n in range(count)
    ]
    pair.pump()
    requests = [e for e in pair.take_server() if isinstance(e, RequestReceived)]
    assert [e.stream_id for e in requests] == ids
    for event in requests:
        pair.server.send_trailer(event.stream_id, Trailer(Status.OK), {1: "ok"})
    pair.pump()
    return ids


@pytest.mark.parametrize("datagram", [1200, BIG])
def test_a_stream_that_sent_all_it_holds_is_not_asked_again(
    dev_certs: DevCerts, monkeypatch: pytest.MonkeyPatch, datagram: int
) -> None:
    pair, _ = _big_pair(dev_certs, datagram)
    asked = _count_frames_asked(monkeypatch)
    ids = _unary_exchanges(pair, 20)
    replies = [e for e in pair.take_client() if isinstance(e, TrailerReceived)]
    assert [e.stream_id for e in replies] == ids
    # Each request and each reply left in one frame with its FIN; aioquic alone asks each
    # stream once more, in the next packet, to learn that it has nothing left.
    assert {asked[stream_id] for stream_id in ids} == {2}  # once by the client, once the server
    for rpc in (pair.client, pair.server):
        assert rpc.quic._streams == {}  # every stream finished and was discarded


@pytest.mark.parametrize("lose", ["requests", "replies"])
def test_settled_streams_still_resend_what_was_lost(dev_certs: DevCerts, lose: str) -> None:
    pair, _ = _big_pair(dev_certs)
    ids = [
        pair.client.send_request(RequestHeader("/t.S/M"), {1: n}, end_stream=True) for n in range(8)
    ]
    if lose == "requests":
        pair.drop = True
    pair.step()
    pair.drop = False
    if lose == "replies":
        requests = [e for e in pair.take_server() if isinstance(e, RequestReceived)]
        for event in requests:
            pair.server.send_trailer(event.stream_id, Trailer(Status.OK), {1: "ok"})
        pair.drop = True
        pair.step()
        pair.drop = False
    assert pair.dropped >= 1
    answered: set[int] = set()
    for _ in range(100):  # the probe timeout resends what was lost (bounded)
        pair.advance(0.05)
        pair.pump(max_rounds=200)
        for event in pair.take_server():
            if isinstance(event, RequestReceived):
                pair.server.send_trailer(event.stream_id, Trailer(Status.OK), {1: "ok"})
        answered |= {e.stream_id for e in pair.take_client() if isinstance(e, TrailerReceived)}
        if answered == set(ids):
            break
    assert answered == set(ids)


def test_receives_ask_for_64_kb_where_asyncio_would_ask_256() -> None:
    selector_like = SimpleNamespace(max_size=256 * 1024, get_extra_info=lambda name: None)
    tune_socket(selector_like, None)  # type: ignore[arg-type]
    assert selector_like.max_size == RECEIVE_SIZE > 65_527  # the largest UDP payload
    without = SimpleNamespace(get_extra_info=lambda name: None)  # uvloop: no such setting
    tune_socket(without, None)  # type: ignore[arg-type]
    assert not hasattr(without, "max_size")
