"""rpcnet: `Server`/`connect` with the generated interop code; UnaryCall echoes the payload."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from rpcnet_runtime import (
    CallContext,
    ClientChannel,
    ClientConfig,
    ClientTLS,
    Server,
    ServerConfig,
    ServerTLS,
    connect,
)

from .common import Setup, set_socket_buffers

_GEN_ROOT = Path(__file__).resolve().parents[2] / "tests" / "integration"
_MAX_FRAME = 1024 * 1024


def interop() -> ModuleType:
    """The checked-in generated code of ``tests/integration/interop.rpc``."""
    if str(_GEN_ROOT) not in sys.path:
        sys.path.insert(0, str(_GEN_ROOT))
    return importlib.import_module("gen.interop")


def _echo_service(gen: ModuleType) -> Any:
    class EchoService(gen.TestServiceBase):  # type: ignore[misc, name-defined]
        async def unary_call(self, request: Any, ctx: CallContext) -> Any:
            return gen.SimpleResponse(payload=request.payload)

    return EchoService()


class RpcnetServer:
    """An rpcnet server serving the echo service."""

    def __init__(self, setup: Setup) -> None:
        self._setup = setup
        self._server: Server | None = None

    async def start(self) -> int:
        server = Server(
            "127.0.0.1",
            0,
            tls=ServerTLS(self._setup.server_cert, self._setup.server_key),
            config=ServerConfig(
                max_frame_size=_MAX_FRAME,
                max_datagram_size=self._setup.datagram_size,
                idle_timeout=30.0,
            ),
        )
        server.add_service(_echo_service(interop()))
        await server.start()
        if server._quic_server is not None:
            set_socket_buffers(server._quic_server._transport, self._setup.sockbuf)
        self._server = server
        return server.port

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop(grace=0.5)


class RpcnetClient:
    """The generated TestServiceClient over one rpcnet channel."""

    def __init__(self, gen: ModuleType, channel: ClientChannel) -> None:
        self._gen = gen
        self._channel = channel
        self._client = gen.TestServiceClient(channel)

    @classmethod
    async def open(cls, setup: Setup, port: int) -> RpcnetClient:
        gen = interop()
        channel = await connect(
            f"127.0.0.1:{port}",
            tls=ClientTLS(ca=setup.ca),
            config=ClientConfig(
                max_frame_size=_MAX_FRAME,
                max_datagram_size=setup.datagram_size,
                idle_timeout=30.0,
            ),
        )
        client = cls(gen, channel)
        await client.call(b"")  # dial now, so the first measured call is not a handshake
        protocol = getattr(channel, "_protocol", None)
        if protocol is not None:
            set_socket_buffers(getattr(protocol, "_transport", None), setup.sockbuf)
        return client

    async def call(self, payload: bytes) -> bytes:
        gen = self._gen
        reply = await self._client.unary_call(gen.SimpleRequest(payload=gen.Payload(body=payload)))
        body: bytes = reply.payload.body if reply.payload is not None else b""
        return body

    async def close(self) -> None:
        await self._channel.close()
