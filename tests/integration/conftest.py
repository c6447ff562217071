"""Integration fixtures: generated interop code, dev certificates, a loopback server."""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator
from types import ModuleType

import pytest

from rpcnet_runtime.certs import DevCerts, write_dev_certs
from rpcnet_runtime.client import ClientChannel, connect
from rpcnet_runtime.config import ClientConfig, ServerConfig
from rpcnet_runtime.server import Server
from rpcnet_runtime.tls import ClientTLS, ServerTLS


@pytest.fixture(scope="session")
def interop() -> ModuleType:
    """The code rpcnet-gen made from `interop.rpc`, checked in under ``gen/``.

    Regenerate it after changing the schema or the generator:
    ``rpcnet-gen tests/integration/interop.rpc -o tests/integration/gen``.
    """
    return importlib.import_module("gen.interop")


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> DevCerts:
    return write_dev_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture
def service(interop: ModuleType) -> object:
    from interop_service import make_service

    return make_service(interop)


@pytest.fixture
async def server(certs: DevCerts, service: object) -> AsyncIterator[Server]:
    server = Server(
        "127.0.0.1",
        0,
        tls=ServerTLS(certs.server_cert, certs.server_key),
        config=ServerConfig(max_frame_size=1024 * 1024),
    )
    server.add_service(service)
    await server.start()
    try:
        yield server
    finally:
        await server.stop(grace=0.5)


@pytest.fixture
async def channel(server: Server, certs: DevCerts) -> AsyncIterator[ClientChannel]:
    async with connect(
        f"127.0.0.1:{server.port}",
        tls=ClientTLS(ca=certs.ca),
        config=ClientConfig(max_frame_size=1024 * 1024),
    ) as channel:
        yield channel


@pytest.fixture
def client(interop: ModuleType, channel: ClientChannel) -> object:
    return interop.TestServiceClient(channel)
