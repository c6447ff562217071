"""The asyncio shell transmits once per loop iteration, not after every datagram."""

from __future__ import annotations

import asyncio
from typing import Any

from aioquic.quic.connection import QuicConnection

from rpcnet_runtime.certs import DevCerts
from rpcnet_runtime.client_protocol import ClientProtocol
from rpcnet_runtime.config import ClientConfig
from rpcnet_runtime.connection import ALPN
from rpcnet_runtime.protocol import FLUSH_CALLS
from rpcnet_runtime.tls import ClientTLS

SERVER = ("127.0.0.1", 4433)


class _Transport(asyncio.DatagramTransport):
    def __init__(self) -> None:
        super().__init__()
        self.sent: list[bytes] = []

    def sendto(self, data: Any, addr: Any = None) -> None:
        self.sent.append(bytes(data))

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


def _connecting_client(dev_certs: DevCerts) -> tuple[ClientProtocol, _Transport]:
    """A client protocol on a recording transport, its Initial packet waiting to be sent."""
    configuration = ClientTLS(ca=dev_certs.ca).quic_configuration(
        alpn_protocols=[ALPN], idle_timeout=5.0, server_name="localhost"
    )
    quic = QuicConnection(configuration=configuration)
    protocol = ClientProtocol(quic, config=ClientConfig())
    transport = _Transport()
    protocol.connection_made(transport)
    quic.connect(SERVER, now=asyncio.get_running_loop().time())
    return protocol, transport


async def test_a_datagram_is_answered_at_the_end_of_the_loop_iteration(
    dev_certs: DevCerts,
) -> None:
    protocol, transport = _connecting_client(dev_certs)
    loop = asyncio.get_running_loop()

    protocol.datagram_received(b"\x00" * 40, SERVER)  # not a QUIC packet: ignored
    assert transport.sent == []  # aioquic alone would have sent the Initial already
    done = loop.create_future()
    loop.call_soon(done.set_result, None)
    await done
    assert len(transport.sent) >= 1 and transport.sent[0][0] & 0x80  # a long-header packet
    protocol.shutdown()


async def test_a_group_of_calls_is_transmitted_at_once(dev_certs: DevCerts) -> None:
    protocol, transport = _connecting_client(dev_certs)
    for _ in range(FLUSH_CALLS - 1):
        protocol.call_written()
    assert transport.sent == []  # fewer than a group: sent at the end of the iteration
    protocol.call_written()
    assert len(transport.sent) >= 1  # a full group leaves at once
    assert protocol._transmit_task is None  # and the end-of-iteration transmit is dropped
    protocol.shutdown()
