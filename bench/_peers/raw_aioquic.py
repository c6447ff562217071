"""The floor: raw aioquic, one msgpack frame per bidirectional stream each way, a task per request.

The message is a msgpack map ``{1: body}`` (the shape of an rpcnet message) behind a 4-byte
length prefix; the server decodes it, and echoes it back re-encoded on the same stream. Sends
made by application code schedule one `transmit` for the end of the loop iteration (as rpcnet
does), so concurrent calls share packets; ``batch=False`` transmits after every send instead.
Datagrams above 16,383 bytes use rpcnet's frame writer, without which aioquic 1.7.2 cannot
send them.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import msgpack
from aioquic.asyncio.client import connect
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.asyncio.server import QuicServer, serve
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import QuicEvent, StreamDataReceived, StreamReset

from rpcnet_runtime.stream_frames import MAX_FRAME_LENGTH, install_wide_frames

from .common import Setup, frame, parse_frame, set_socket_buffers

ALPN = "bench-raw"


class _Batching(QuicConnectionProtocol):
    """Coalesces the transmits asked for during one loop iteration into one."""

    batch = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._flush_scheduled = False
        if self._quic._max_datagram_size > MAX_FRAME_LENGTH:
            install_wide_frames(self._quic)  # aioquic 1.7.2 alone breaks above 16 KB

    def send_soon(self) -> None:
        if not self.batch:
            self.transmit()
        elif not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        self.transmit()


class _ServerProtocol(_Batching):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._buffers: dict[int, bytearray] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def quic_event_received(self, event: QuicEvent) -> None:
        if isinstance(event, StreamDataReceived):
            if event.end_stream:
                held = self._buffers.pop(event.stream_id, None)
                data = event.data if held is None else bytes(held + event.data)
                task = asyncio.ensure_future(self._handle(event.stream_id, data))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            else:
                self._buffers.setdefault(event.stream_id, bytearray()).extend(event.data)
        elif isinstance(event, StreamReset):
            self._buffers.pop(event.stream_id, None)

    async def _handle(self, stream_id: int, data: bytes) -> None:
        message = msgpack.unpackb(parse_frame(data), strict_map_key=False)
        reply = frame(msgpack.packb({1: message[1]}))
        self._quic.send_stream_data(stream_id, reply, end_stream=True)
        self.send_soon()


class _ClientProtocol(_Batching):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._buffers: dict[int, bytearray] = {}
        self._waiters: dict[int, asyncio.Future[bytes]] = {}

    async def call(self, payload: bytes) -> bytes:
        stream_id = self._quic.get_next_available_stream_id()
        waiter: asyncio.Future[bytes] = self._loop.create_future()
        self._waiters[stream_id] = waiter
        self._quic.send_stream_data(stream_id, frame(msgpack.packb({1: payload})), end_stream=True)
        self.send_soon()
        data = await waiter
        body: bytes = msgpack.unpackb(parse_frame(data), strict_map_key=False)[1]
        return body

    def quic_event_received(self, event: QuicEvent) -> None:
        if isinstance(event, StreamDataReceived):
            if event.end_stream:
                held = self._buffers.pop(event.stream_id, None)
                data = event.data if held is None else bytes(held + event.data)
                waiter = self._waiters.pop(event.stream_id, None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(data)
            else:
                self._buffers.setdefault(event.stream_id, bytearray()).extend(event.data)
        elif isinstance(event, StreamReset):
            waiter = self._waiters.pop(event.stream_id, None)
            if waiter is not None and not waiter.done():
                waiter.set_exception(ConnectionError("stream reset"))


def _configuration(setup: Setup, *, is_client: bool) -> QuicConfiguration:
    configuration = QuicConfiguration(
        is_client=is_client,
        alpn_protocols=[ALPN],
        idle_timeout=30.0,
        max_datagram_size=setup.datagram_size or 1200,
        server_name="localhost" if is_client else None,
    )
    if is_client:
        configuration.load_verify_locations(setup.ca)
    else:
        configuration.load_cert_chain(setup.server_cert, setup.server_key)
    return configuration


class RawServer:
    """The raw aioquic echo server."""

    def __init__(self, setup: Setup) -> None:
        self._setup = setup
        self._server: QuicServer | None = None

    async def start(self) -> int:
        self._server = await serve(
            "127.0.0.1",
            0,
            configuration=_configuration(self._setup, is_client=False),
            create_protocol=_ServerProtocol,
        )
        set_socket_buffers(self._server._transport, self._setup.sockbuf)
        assert self._server._transport is not None
        port: int = self._server._transport.get_extra_info("sockname")[1]
        return port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()


class RawClient:
    """A raw aioquic client on one connection."""

    def __init__(self, stack: contextlib.AsyncExitStack, protocol: _ClientProtocol) -> None:
        self._stack = stack
        self._protocol = protocol

    @classmethod
    async def open(cls, setup: Setup, port: int) -> RawClient:
        stack = contextlib.AsyncExitStack()
        protocol = await stack.enter_async_context(
            connect(
                "127.0.0.1",
                port,
                configuration=_configuration(setup, is_client=True),
                create_protocol=_ClientProtocol,
            )
        )
        set_socket_buffers(protocol._transport, setup.sockbuf)
        assert isinstance(protocol, _ClientProtocol)
        return cls(stack, protocol)

    async def call(self, payload: bytes) -> bytes:
        return await self._protocol.call(payload)

    async def close(self) -> None:
        await self._stack.aclose()
