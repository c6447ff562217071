"""Bad input from a raw aioquic client, limits, dead servers, reconnects and draining."""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import ModuleType
from typing import Any

import pytest
from aioquic.asyncio.client import connect as quic_connect
from aioquic.asyncio.protocol import QuicConnectionProtocol

from rpcnet_runtime import RpcError, Status
from rpcnet_runtime.certs import DevCerts
from rpcnet_runtime.client import connect
from rpcnet_runtime.codec import pack
from rpcnet_runtime.config import ClientConfig, ServerConfig
from rpcnet_runtime.connection import ALPN
from rpcnet_runtime.frame_decoder import FrameDecoder
from rpcnet_runtime.framing import (
    FrameType,
    RequestHeader,
    Trailer,
    decode_trailer,
    encode_frame,
    encode_header,
    encode_message,
)
from rpcnet_runtime.server import Server
from rpcnet_runtime.tls import ClientTLS, ServerTLS

pytestmark = pytest.mark.timeout(30)

UNARY = "rpcnet.interop.v1.TestService/UnaryCall"


@asynccontextmanager
async def raw_client(port: int, certs: DevCerts) -> AsyncIterator[QuicConnectionProtocol]:
    """A plain aioquic connection speaking whatever bytes the test writes."""
    configuration = ClientTLS(ca=certs.ca).quic_configuration(
        alpn_protocols=[ALPN], idle_timeout=5.0, server_name="localhost"
    )
    async with quic_connect("127.0.0.1", port, configuration=configuration) as protocol:
        yield protocol


async def read_trailer(reader: asyncio.StreamReader) -> Trailer | None:
    """Read a response stream up to its trailer (None if the stream ends without one)."""
    decoder = FrameDecoder()
    while chunk := await reader.read(65536):
        for kind, payload in decoder.feed(chunk):
            if kind is FrameType.TRAILER:
                return decode_trailer(payload)
    return None


async def raw_call(protocol: QuicConnectionProtocol, data: bytes) -> Trailer:
    """Write `data` as a whole request stream and return the trailer that comes back."""
    reader, writer = await protocol.create_stream()
    writer.write(data)
    writer.write_eof()
    decoder = FrameDecoder()
    while chunk := await reader.read(65536):
        for kind, payload in decoder.feed(chunk):
            if kind is FrameType.TRAILER:
                return decode_trailer(payload)
    raise AssertionError("no trailer")


async def test_garbage_and_malformed_frames_fail_only_their_call(
    server: Server, certs: DevCerts, interop: ModuleType, client: Any
) -> None:
    header = encode_header(RequestHeader(path=UNARY))
    async with raw_client(server.port, certs) as protocol:
        cases = {
            "garbage msgpack": header + encode_frame(FrameType.MESSAGE, b"\xc1\xc1"),
            "not a header": encode_message({1: 1}),
            "bad header": encode_frame(FrameType.HEADER, pack({1: 7})),
            "unknown frame type": header + b"\x7f\x00\x00\x00\x00",
            "truncated": header + encode_message({1: 1})[:-1],
            "wrong field type": header + encode_message({1: "many"}),
            "two requests": header + encode_message({}) + encode_message({}),
            "no request": header,
        }
        trailers = {name: await raw_call(protocol, data) for name, data in cases.items()}
        assert {t.status for t in trailers.values()} == {Status.INVALID_ARGUMENT}
        assert "not valid msgpack" in trailers["garbage msgpack"].message
        assert "SimpleRequest.response_size" in trailers["wrong field type"].message
        # The same connection still serves a good call.
        good = await raw_call(protocol, header + encode_message({1: 3}))
        assert good.status is Status.OK
    # And so does every other client.
    response = await client.unary_call(interop.SimpleRequest(response_size=3))
    assert response.payload.body == b"\0" * 3


async def test_oversized_frame_is_refused_before_it_is_buffered(
    server: Server, certs: DevCerts, interop: ModuleType, client: Any
) -> None:
    header = encode_header(RequestHeader(path=UNARY))
    async with raw_client(server.port, certs) as protocol:
        # Only the prefix of a 3 GiB frame is sent: the answer must not wait for the payload.
        prefix = struct.pack(">BI", FrameType.MESSAGE, 3 * 1024**3)
        reader, writer = await protocol.create_stream()
        writer.write(header + prefix)
        trailer = await read_trailer(reader)
        assert trailer is not None and trailer.status is Status.RESOURCE_EXHAUSTED
        with contextlib.suppress(RuntimeError):  # the server reset our direction
            writer.close()
    # A typed client sending a message above the server's limit (1 MiB here) gets the same.
    big = interop.SimpleRequest(payload=interop.Payload(body=bytes(1_100_000)))
    with pytest.raises(RpcError) as info:
        await client.unary_call(big)
    assert info.value.status is Status.RESOURCE_EXHAUSTED
    assert (await client.empty_call(interop.Empty())) == interop.Empty()


async def test_protocol_violation_closes_only_that_connection(
    server: Server, certs: DevCerts, interop: ModuleType, client: Any
) -> None:
    async with raw_client(server.port, certs) as protocol:
        quic = protocol._quic
        stream_id = quic.get_next_available_stream_id(is_unidirectional=True)
        quic.send_stream_data(stream_id, b"not allowed", end_stream=True)
        protocol.transmit()
        await asyncio.wait_for(protocol.wait_closed(), 10)
        assert quic._close_event is not None
        assert "bidirectional" in quic._close_event.reason_phrase
    assert (await client.empty_call(interop.Empty())) == interop.Empty()


async def test_dead_server_becomes_unavailable_in_bounded_time(
    certs: DevCerts, service: Any, interop: ModuleType
) -> None:
    server = Server("127.0.0.1", 0, tls=ServerTLS(certs.server_cert, certs.server_key))
    server.add_service(service)
    await server.start()
    config = ClientConfig(idle_timeout=1.0, keepalive_interval=0.25, connect_timeout=0.5)
    channel = await connect(f"127.0.0.1:{server.port}", tls=ClientTLS(ca=certs.ca), config=config)
    client = interop.TestServiceClient(channel)
    try:
        call = asyncio.ensure_future(client.sleep_call(interop.Empty()))  # no deadline
        await asyncio.wait_for(service.started.wait(), 5)
        # The server vanishes without a word: its socket is closed, nothing is sent.
        assert server._quic_server is not None and server._quic_server._transport is not None
        server._quic_server._transport.abort()
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(RpcError) as info:
            await asyncio.wait_for(call, 5)
        assert info.value.status is Status.UNAVAILABLE
        assert loop.time() - started < 3.0  # idle timeout 1 s (at least 3 PTOs), plus slack
        # The next call tries to reconnect, fails, and says the request was never sent.
        with pytest.raises(RpcError) as info:
            await client.empty_call(interop.Empty())
        assert info.value.status is Status.UNAVAILABLE and info.value.not_processed
    finally:
        await channel.close()
        for task in list(server._tasks):
            task.cancel()


async def test_channel_reconnects_after_its_connection_died(
    certs: DevCerts, service: Any, interop: ModuleType
) -> None:
    tls = ServerTLS(certs.server_cert, certs.server_key)
    first = Server("127.0.0.1", 0, tls=tls)
    first.add_service(service)
    await first.start()
    port = first.port
    async with connect(f"127.0.0.1:{port}", tls=ClientTLS(ca=certs.ca)) as channel:
        client = interop.TestServiceClient(channel)
        assert await client.empty_call(interop.Empty()) == interop.Empty()
        old = channel._protocol
        await first.stop(grace=0)
        second = Server("127.0.0.1", port, tls=tls)
        second.add_service(service)
        await second.start()
        try:
            for _ in range(3):  # the first call may race the close notice
                try:
                    assert await client.empty_call(interop.Empty()) == interop.Empty()
                    break
                except RpcError as exc:
                    assert exc.status is Status.UNAVAILABLE
            assert channel._protocol is not old
        finally:
            await second.stop(grace=0)


async def test_stop_drains_calls_in_flight_and_refuses_new_ones(
    certs: DevCerts, service: Any, interop: ModuleType
) -> None:
    server = Server("127.0.0.1", 0, tls=ServerTLS(certs.server_cert, certs.server_key))
    server.add_service(service)
    await server.start()
    async with connect(f"127.0.0.1:{server.port}", tls=ClientTLS(ca=certs.ca)) as channel:
        client = interop.TestServiceClient(channel)
        in_flight = asyncio.ensure_future(client.sleep_call(interop.Empty(), timeout=10))
        await asyncio.wait_for(service.started.wait(), 5)
        stopping = asyncio.ensure_future(server.stop(grace=10))
        await asyncio.sleep(0)  # stop() has begun draining
        assert server._draining
        with pytest.raises(RpcError) as info:
            await client.empty_call(interop.Empty())
        assert info.value.status is Status.UNAVAILABLE and info.value.not_processed
        assert not stopping.done()
        service.release.set()  # the call in flight finishes normally
        assert await in_flight == interop.Empty()
        await asyncio.wait_for(stopping, 5)


async def test_stop_grace_runs_out(certs: DevCerts, service: Any, interop: ModuleType) -> None:
    server = Server("127.0.0.1", 0, tls=ServerTLS(certs.server_cert, certs.server_key))
    server.add_service(service)
    await server.start()
    async with connect(f"127.0.0.1:{server.port}", tls=ClientTLS(ca=certs.ca)) as channel:
        client = interop.TestServiceClient(channel)
        in_flight = asyncio.ensure_future(client.sleep_call(interop.Empty(), timeout=10))
        await asyncio.wait_for(service.started.wait(), 5)
        await server.stop(grace=0.05)
        with pytest.raises(RpcError) as info:
            await in_flight
        assert info.value.status is Status.UNAVAILABLE
        assert service.cancelled.is_set()


async def test_slow_reader_slows_the_writer(certs: DevCerts, interop: ModuleType) -> None:
    window = 64 * 1024
    produced = 0
    consumed = 0
    worst_gap = 0
    size = 16 * 1024
    count = 100

    class Streamer(interop.TestServiceBase):  # type: ignore[misc, name-defined]
        async def streaming_output_call(self, request: Any, ctx: Any) -> AsyncIterator[Any]:
            nonlocal produced, worst_gap
            for _ in range(count):
                produced += 1
                worst_gap = max(worst_gap, produced - consumed)
                yield interop.StreamingOutputCallResponse(payload=interop.Payload(body=bytes(size)))

    server = Server(
        "127.0.0.1",
        0,
        tls=ServerTLS(certs.server_cert, certs.server_key),
        config=ServerConfig(send_buffer_limit=window),
    )
    server.add_service(Streamer())
    await server.start()
    try:
        async with connect(
            f"127.0.0.1:{server.port}",
            tls=ClientTLS(ca=certs.ca),
            config=ClientConfig(receive_window=window),
        ) as channel:
            client = interop.TestServiceClient(channel)
            request = interop.StreamingOutputCallRequest(
                response_parameters=[interop.ResponseParameters(size=size)]
            )
            async for _ in client.streaming_output_call(request):
                consumed += 1
                for _ in range(30):  # a slow reader: give the writer many loop turns
                    await asyncio.sleep(0)
    finally:
        await server.stop(grace=0)
    assert consumed == count
    # In flight at most: the client's window, the server's send buffer, a frame or two.
    bound = (window + window + 2 * (size + 64)) // size + 2
    assert worst_gap <= bound, (worst_gap, bound)
    assert worst_gap < count // 2


async def test_unknown_paths_are_named_when_the_path_is_sent(
    server: Server, certs: DevCerts
) -> None:
    async with raw_client(server.port, certs) as protocol:
        cases = {
            "nope.v1.Svc/Call": "unknown service nope.v1.Svc",
            "rpcnet.interop.v1.TestService/Nope": "unknown method Nope of service",
            "rpcnet.interop.v1.TestService/UnimplementedCall": "is not implemented",
        }
        for path, needle in cases.items():
            header = encode_header(RequestHeader(path=path), send_path=True)
            trailer = await raw_call(protocol, header + encode_message({}))
            assert trailer.status is Status.UNIMPLEMENTED
            assert needle in trailer.message


async def test_a_header_that_never_completes_is_failed_in_bounded_time(
    certs: DevCerts, service: Any, interop: ModuleType
) -> None:
    timeout = 0.2
    server = Server(
        "127.0.0.1",
        0,
        tls=ServerTLS(certs.server_cert, certs.server_key),
        config=ServerConfig(header_timeout=timeout),
    )
    server.add_service(service)
    await server.start()
    try:
        async with raw_client(server.port, certs) as protocol:
            reader, writer = await protocol.create_stream()
            loop = asyncio.get_running_loop()
            sent = loop.time()
            writer.write(encode_header(RequestHeader(path=UNARY))[:3])  # never finished
            # Meanwhile the server serves everyone else.
            async with connect(f"127.0.0.1:{server.port}", tls=ClientTLS(ca=certs.ca)) as channel:
                client = interop.TestServiceClient(channel)
                assert (await client.empty_call(interop.Empty())) == interop.Empty()
            trailer = await read_trailer(reader)
            waited = loop.time() - sent
            with contextlib.suppress(RuntimeError):  # the server reset our direction
                writer.close()
        assert trailer is not None and trailer.status is Status.DEADLINE_EXCEEDED
        assert "header" in trailer.message
        assert timeout <= waited < 2 * timeout + 1.0
    finally:
        await server.stop(grace=0)
