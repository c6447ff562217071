"""aioquic's per-connection debug log: cheap while off, complete once turned on."""

from __future__ import annotations

import logging

import pytest
from aioquic.quic.connection import QuicConnection

from rpcnet_runtime.certs import DevCerts
from rpcnet_runtime.connection import ALPN
from rpcnet_runtime.protocol import quicken_debug_log
from rpcnet_runtime.tls import ClientTLS


def _connection(dev_certs: DevCerts) -> QuicConnection:
    configuration = ClientTLS(ca=dev_certs.ca).quic_configuration(
        alpn_protocols=[ALPN], idle_timeout=5.0, server_name="localhost"
    )
    return QuicConnection(configuration=configuration)


def test_debug_messages_still_appear_when_debug_logging_is_turned_on_later(
    dev_certs: DevCerts, caplog: pytest.LogCaptureFixture
) -> None:
    quic = _connection(dev_certs)
    quicken_debug_log(quic)
    caplog.set_level(logging.INFO, logger="quic")
    quic._logger.debug("Stream %d discarded", 4)
    assert not caplog.records
    caplog.set_level(logging.DEBUG, logger="quic")
    quic._logger.debug("Stream %d discarded", 8)
    assert [r.getMessage() for r in caplog.records] == [f"[{_cid(quic)}] Stream 8 discarded"]


def _cid(quic: QuicConnection) -> str:
    extra = quic._logger.extra
    assert extra is not None
    return str(extra["id"])
