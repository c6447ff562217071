"""The server under mutual TLS: identity in the context, refused clients, no call dispatched."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from rpcnet_runtime import ClientTLS, RpcError, Server, ServerTLS, Status, connect
from rpcnet_runtime.certs import DevCerts, write_dev_certs
from rpcnet_runtime.config import ClientConfig

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
async def mtls_server(certs: DevCerts, service: Any) -> AsyncIterator[Server]:
    server = Server(
        "127.0.0.1",
        0,
        tls=ServerTLS(certs.server_cert, certs.server_key, client_ca=certs.ca),
    )
    server.add_service(service)
    await server.start()
    try:
        yield server
    finally:
        await server.stop(grace=0)


async def test_client_identity_reaches_the_handler(
    mtls_server: Server, certs: DevCerts, interop: ModuleType
) -> None:
    tls = ClientTLS(ca=certs.ca, cert=certs.client_cert, key=certs.client_key)
    async with connect(f"127.0.0.1:{mtls_server.port}", tls=tls) as channel:
        response = await interop.TestServiceClient(channel).unary_call(interop.SimpleRequest())
    assert "rpcnet-dev-client" in response.peer_identity


@pytest.mark.parametrize("who", ["no certificate", "another CA"])
async def test_unauthenticated_clients_are_refused_before_any_call(
    mtls_server: Server,
    certs: DevCerts,
    service: Any,
    interop: ModuleType,
    tmp_path: Path,
    who: str,
) -> None:
    if who == "no certificate":
        tls = ClientTLS(ca=certs.ca)
    else:
        other = write_dev_certs(tmp_path / "other")
        tls = ClientTLS(ca=certs.ca, cert=other.client_cert, key=other.client_key)
    config = ClientConfig(connect_timeout=2.0)
    channel = connect(f"127.0.0.1:{mtls_server.port}", tls=tls, config=config)
    try:
        with pytest.raises(RpcError) as info:
            await channel  # the handshake may finish before the server's verdict arrives
            await interop.TestServiceClient(channel).unary_call(interop.SimpleRequest())
        assert info.value.status is Status.UNAUTHENTICATED
        assert "client authentication failed" in info.value.message
    finally:
        await channel.close()
    assert service.contexts == []  # no handler ever ran
