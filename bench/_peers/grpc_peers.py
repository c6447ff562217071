"""gRPC peers: grpc.aio with TLS and grpclib with TLS, over a .proto compiled at run time.

`compile_proto` writes ``bench_echo.proto`` into the run's temp directory and runs
grpc_tools.protoc there (``bench_echo_pb2``/``bench_echo_pb2_grpc``, never committed).
grpc.aio uses the generated servicer and stub; grpclib serves the same message through its
``__mapping__`` handler table (no grpclib plugin needed).
"""

from __future__ import annotations

import importlib
import ssl
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from .common import Setup

PROTO = """syntax = "proto3";
package rpcnet.bench.v1;
message Blob { bytes body = 1; }
service Echo { rpc Echo(Blob) returns (Blob); }
"""
METHOD = "/rpcnet.bench.v1.Echo/Echo"
_MAX_MESSAGE = 1024 * 1024


def compile_proto(workdir: str) -> None:
    """Generate the protobuf and grpc modules into `workdir` with grpc_tools.protoc."""
    from grpc_tools import protoc  # type: ignore[import-untyped]

    Path(workdir, "bench_echo.proto").write_text(PROTO, encoding="utf-8")
    args = ["protoc", f"-I{workdir}", f"--python_out={workdir}", f"--grpc_python_out={workdir}"]
    if protoc.main([*args, str(Path(workdir, "bench_echo.proto"))]) != 0:
        raise RuntimeError("grpc_tools.protoc failed")


def _modules(workdir: str) -> tuple[ModuleType, ModuleType]:
    if workdir not in sys.path:
        sys.path.insert(0, workdir)
    return importlib.import_module("bench_echo_pb2"), importlib.import_module("bench_echo_pb2_grpc")


def _read(path: str) -> bytes:
    return Path(path).read_bytes()


# -- grpc.aio -----------------------------------------------------------------------------------


class GrpcAioServer:
    """grpc.aio echo server on a TLS port (the dev certificates)."""

    def __init__(self, setup: Setup) -> None:
        self._setup = setup
        self._server: Any = None

    async def start(self) -> int:
        import grpc  # type: ignore[import-untyped, unused-ignore]

        pb2, pb2_grpc = _modules(self._setup.workdir)

        class Echo(pb2_grpc.EchoServicer):  # type: ignore[misc, name-defined]
            async def Echo(self, request: Any, context: Any) -> Any:
                return pb2.Blob(body=request.body)

        options = [
            ("grpc.max_receive_message_length", _MAX_MESSAGE),
            ("grpc.max_send_message_length", _MAX_MESSAGE),
        ]
        self._server = grpc.aio.server(options=options)
        pb2_grpc.add_EchoServicer_to_server(Echo(), self._server)
        credentials = grpc.ssl_server_credentials(
            [(_read(self._setup.server_key), _read(self._setup.server_cert))]
        )
        port: int = self._server.add_secure_port("127.0.0.1:0", credentials)
        await self._server.start()
        return port

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop(0.5)


class GrpcAioClient:
    """A grpc.aio stub over one secure channel (server name checked as ``localhost``)."""

    def __init__(self, channel: Any, stub: Any, pb2: ModuleType) -> None:
        self._channel = channel
        self._stub = stub
        self._pb2 = pb2

    @classmethod
    async def open(cls, setup: Setup, port: int) -> GrpcAioClient:
        import grpc  # type: ignore[import-untyped, unused-ignore]

        pb2, pb2_grpc = _modules(setup.workdir)
        credentials = grpc.ssl_channel_credentials(root_certificates=_read(setup.ca))
        channel = grpc.aio.secure_channel(
            f"127.0.0.1:{port}",
            credentials,
            options=[
                ("grpc.ssl_target_name_override", "localhost"),
                ("grpc.max_receive_message_length", _MAX_MESSAGE),
                ("grpc.max_send_message_length", _MAX_MESSAGE),
            ],
        )
        await channel.channel_ready()
        client = cls(channel, pb2_grpc.EchoStub(channel), pb2)
        await client.call(b"")
        return client

    async def call(self, payload: bytes) -> bytes:
        reply = await self._stub.Echo(self._pb2.Blob(body=payload))
        body: bytes = reply.body
        return body

    async def close(self) -> None:
        await self._channel.close()


# -- grpclib ------------------------------------------------------------------------------------


class GrpclibServer:
    """grpclib echo server with TLS (ALPN h2)."""

    def __init__(self, setup: Setup) -> None:
        self._setup = setup
        self._server: Any = None

    async def start(self) -> int:
        from grpclib.const import Cardinality, Handler
        from grpclib.server import Server, Stream

        pb2, _ = _modules(self._setup.workdir)

        class Echo:
            async def echo(self, stream: Stream[Any, Any]) -> None:
                request = await stream.recv_message()
                assert request is not None
                await stream.send_message(pb2.Blob(body=request.body))

            def __mapping__(self) -> dict[str, Handler]:
                return {METHOD: Handler(self.echo, Cardinality.UNARY_UNARY, pb2.Blob, pb2.Blob)}

        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self._setup.server_cert, self._setup.server_key)
        context.set_alpn_protocols(["h2"])
        self._server = Server([Echo()])
        await self._server.start("127.0.0.1", 0, ssl=context)
        port: int = self._server._server.sockets[0].getsockname()[1]
        return port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


class GrpclibClient:
    """A grpclib unary method over one TLS channel."""

    def __init__(self, channel: Any, method: Any, pb2: ModuleType) -> None:
        self._channel = channel
        self._method = method
        self._pb2 = pb2

    @classmethod
    async def open(cls, setup: Setup, port: int) -> GrpclibClient:
        from grpclib.client import Channel, UnaryUnaryMethod

        pb2, _ = _modules(setup.workdir)
        context = ssl.create_default_context(cafile=setup.ca)
        context.set_alpn_protocols(["h2"])
        channel = Channel("127.0.0.1", port, ssl=context)
        method = UnaryUnaryMethod(channel, METHOD, pb2.Blob, pb2.Blob)
        client = cls(channel, method, pb2)
        await client.call(b"")
        return client

    async def call(self, payload: bytes) -> bytes:
        reply = await self._method(self._pb2.Blob(body=payload))
        body: bytes = reply.body
        return body

    async def close(self) -> None:
        self._channel.close()
