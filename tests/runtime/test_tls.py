"""ServerTLS / ClientTLS over real aioquic: in-memory QuicConnection pairs and loopback sockets."""

from __future__ import annotations

import asyncio
import datetime
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aioquic.asyncio.client import connect
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.asyncio.server import QuicServer, serve
from aioquic.quic import events
from aioquic.quic.connection import QuicConnection
from aioquic.tls import SessionTicket
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import Store

from rpcnet_runtime.certs import DevCerts, generate_ca, issue_certificate, write_dev_certs
from rpcnet_runtime.tls import (
    ClientTLS,
    PeerAuthenticationError,
    ServerTLS,
    TLSConfigError,
    verify_client_chain,
)

ALPN = ["rpcnet/1"]
CLIENT_ADDR = ("10.0.0.1", 50000)
SERVER_ADDR = ("10.0.0.2", 4433)
NOW = datetime.datetime.now(datetime.UTC)


# --------------------------------------------------------------------------------------------
# Fixtures and helpers


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> DevCerts:
    return write_dev_certs(tmp_path_factory.mktemp("dev"))


@pytest.fixture(scope="module")
def other(tmp_path_factory: pytest.TempPathFactory) -> DevCerts:
    """A second, unrelated development CA with its own certificates."""
    return write_dev_certs(tmp_path_factory.mktemp("other"))


def _write_pem(path: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
    path.with_suffix(".pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    path.with_suffix(".key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def _load_ca(dev: DevCerts) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    cert = x509.load_pem_x509_certificate(Path(dev.ca_cert).read_bytes())
    key = serialization.load_pem_private_key(Path(dev.ca_key).read_bytes(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return cert, key


def _client_cert(
    dev: DevCerts,
    tmp_path: Path,
    name: str,
    *,
    now: datetime.datetime,
    days: int = 30,
    client: bool = True,
    server: bool = False,
) -> ClientTLS:
    ca_cert, ca_key = _load_ca(dev)
    cert, key = issue_certificate(
        ca_cert, ca_key, common_name=name, now=now, days=days, client=client, server=server
    )
    _write_pem(tmp_path / name, cert, key)
    return ClientTLS(
        ca=dev.ca_cert, cert=str(tmp_path / f"{name}.pem"), key=str(tmp_path / f"{name}.key")
    )


class Pair:
    """A client and a server QuicConnection moving datagrams in memory (no sockets)."""

    def __init__(
        self,
        server_tls: ServerTLS,
        client_tls: ClientTLS,
        *,
        server_name: str = "localhost",
        ticket: SessionTicket | None = None,
        fetcher: Callable[[bytes], SessionTicket | None] | None = None,
        issued: list[SessionTicket] | None = None,
        prepare: Callable[[QuicConnection], None] | None = None,
    ) -> None:
        client_config = client_tls.quic_configuration(
            alpn_protocols=ALPN, idle_timeout=10.0, server_name=server_name
        )
        client_config.session_ticket = ticket
        self.client_tickets: list[SessionTicket] = []
        self.client = QuicConnection(
            configuration=client_config, session_ticket_handler=self.client_tickets.append
        )
        self.server = QuicConnection(
            configuration=server_tls.quic_configuration(alpn_protocols=ALPN, idle_timeout=10.0),
            original_destination_connection_id=self.client.original_destination_connection_id,
            session_ticket_fetcher=fetcher,
            session_ticket_handler=issued.append if issued is not None else None,
        )
        (prepare or server_tls.prepare_connection)(self.server)
        self.now = 1000.0
        self.client.connect(SERVER_ADDR, now=self.now)

    def pump(self, rounds: int = 40) -> None:
        """Move datagrams both ways until none are left; fail if it does not settle."""
        for _ in range(rounds):
            moved = False
            for data, _ in self.client.datagrams_to_send(now=self.now):
                self.server.receive_datagram(data, CLIENT_ADDR, now=self.now)
                moved = True
            for data, _ in self.server.datagrams_to_send(now=self.now):
                self.client.receive_datagram(data, SERVER_ADDR, now=self.now)
                moved = True
            if not moved:
                return
        raise AssertionError(f"datagrams still flowing after {rounds} rounds")

    def expire(self) -> None:
        """Fire both sides' timers once (time jumps forward), e.g. to end closing periods."""
        for quic in (self.client, self.server):
            timer = quic.get_timer()
            if timer is not None:
                self.now = max(self.now, timer)
                quic.handle_timer(now=self.now)
        self.pump()

    @staticmethod
    def drain(quic: QuicConnection) -> list[events.QuicEvent]:
        out: list[events.QuicEvent] = []
        while (event := quic.next_event()) is not None:
            out.append(event)
        return out


def _handshake(pair: Pair) -> tuple[list[events.QuicEvent], list[events.QuicEvent]]:
    pair.pump()
    server_events, client_events = Pair.drain(pair.server), Pair.drain(pair.client)
    assert any(isinstance(e, events.HandshakeCompleted) for e in server_events)
    return server_events, client_events


# --------------------------------------------------------------------------------------------
# Mutual TLS over in-memory aioquic connections


def test_good_client_certificate_yields_subject(dev: DevCerts) -> None:
    server_tls = ServerTLS(dev.server_cert, dev.server_key, client_ca=dev.ca_cert)
    pair = Pair(server_tls, ClientTLS(dev.ca_cert, dev.client_cert, dev.client_key))
    _handshake(pair)
    assert server_tls.authenticate_client(pair.server) == "CN=rpcnet-dev-client"


def test_without_client_ca_identity_is_none(dev: DevCerts) -> None:
    server_tls = ServerTLS(dev.server_cert, dev.server_key)
    pair = Pair(server_tls, ClientTLS(dev.ca_cert, dev.client_cert, dev.client_key))
    _handshake(pair)
    assert server_tls.authenticate_client(pair.server) is None


def test_client_without_certificate_is_refused(dev: DevCerts) -> None:
    server_tls = ServerTLS(dev.server_cert, dev.server_key, client_ca=dev.ca_cert)
    pair = Pair(server_tls, ClientTLS(dev.ca_cert))
    _handshake(pair)
    with pytest.raises(PeerAuthenticationError, match="sent no certificate"):
        server_tls.authenticate_client(pair.server)


def test_refused_client_sees_the_close_reason(dev: DevCerts) -> None:
    server_tls = ServerTLS(dev.server_cert, dev.server_key, client_ca=dev.ca_cert)
    pair = Pair(server_tls, ClientTLS(dev.ca_cert))
    _handshake(pair)
    with pytest.raises(PeerAuthenticationError) as failure:
        server_tls.authenticate_client(pair.server)
    pair.server.close(error_code=0x100, reason_phrase=f"unauthenticated: {failure.value}")
    pair.pump()
    pair.expire()  # the client drains, then reports the termination
    closed = [e for e in Pair.drain(pair.client) if isinstance(e, events.ConnectionTerminated)]
    assert closed and "sent no certificate" in closed[0].reason_phrase


def test_client_certificate_from_another_ca_is_refused(dev: DevCerts, other: DevCerts) -> None:
    server_tls = ServerTLS(dev.server_cert, dev.server_key, client_ca=dev.ca_cert)
    pair = Pair(server_tls, ClientTLS(dev.ca_cert, other.client_cert, other.client_key))
    _handshake(pair)
    with pytest.raises(PeerAuthenticationError, match="not issued by a CA in client_ca"):
        server_tls.authenticate_client(pair.server)


def test_same_named_foreign_ca_is_refused(dev: DevCerts, tmp_path: Path) -> None:
    """An impostor CA copying the real CA's name still fails on the signature."""
    real_ca = x509.load_pem_x509_certificate(Path(dev.ca_cert).read_bytes())
    name = real_ca.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert isinstance(name, str)
    fake_ca, fake_key = generate_ca(name, now=NOW)
    cert, key = issue_certificate(fake_ca, fake_key, common_name="mallory", client=True, now=NOW)
    _write_pem(tmp_path / "mallory", cert, key)
    server_tls = ServerTLS(dev.server_cert, dev.server_key, client_ca=dev.ca_cert)
    client_tls = ClientTLS(
        dev.ca_cert, str(tmp_path / "mallory.pem"), str(tmp_path / "mallory.key")
    )
    pair = Pair(server_tls, client_tls)
    _handshake(pair)
    with pytest.raises(PeerAuthenticationError, match="not issued by a CA in client_ca"):
        server_tls.authenticate_client(pair.server)


def test_expired_client_certificate_is_refused(dev: DevCerts, tmp_path: Path) -> None:
    long_ago = NOW - datetime.timedelta(days=400)
    client_tls = _client_cert(dev, tmp_path, "expired", now=long_ago, days=30)
    server_tls = ServerTLS(dev.server_cert, dev.server_key, client_ca=dev.ca_cert)
    pair = Pair(server_tls, client_tls)
    _handshake(pair)
    with pytest.raises(PeerAuthenticationError, match="CN=expired expired on"):
        server_tls.authenticate_client(pair.server)


def test_not_yet_valid_client_certificate_is_refused(dev: DevCerts, tmp_path: Path) -> None:
    client_tls = _client_cert(dev, tmp_path, "future", now=NOW + datetime.timedelta(days=2))
    server_tls = ServerTLS(dev.server_cert, dev.server_key, client_ca=dev.ca_cert)
    pair = Pair(server_tls, client_tls)
    _handshake(pair)
    with pytest.raises(PeerAuthenticationError, match="not valid before"):
        server_tls.authenticate_client(pair.server)


def test_server_only_certificate_cannot_authenticate_a_client(
    dev: DevCerts, tmp_path: Path
) -> None:
    """Extended key usage serverAuth without clientAuth is refused for a client."""
    client_tls = _client_cert(dev, tmp_path, "srv", now=NOW, client=False, server=True)
    server_tls = ServerTLS(dev.server_cert, dev.server_key, client_ca=dev.ca_cert)
    pair = Pair(server_tls, client_tls)
    _handshake(pair)
    with pytest.raises(PeerAuthenticationError, match="failed verification"):
        server_tls.authenticate_client(pair.server)


def test_client_chain_through_an_intermediate(tmp_path: Path) -> None:
    root, root_key = _ca("root", None, None, path_length=1)
    inter, inter_key = _ca("intermediate", root, root_key, path_length=0)
    leaf, leaf_key = issue_certificate(inter, inter_key, common_name="alice", client=True, now=NOW)
    server, server_key = issue_certificate(
        root, root_key, common_name="localhost", hosts=["localhost"], server=True, now=NOW
    )
    _write_pem(tmp_path / "root", root, root_key)
    _write_pem(tmp_path / "server", server, server_key)
    (tmp_path / "alice.pem").write_bytes(
        b"".join(c.public_bytes(serialization.Encoding.PEM) for c in (leaf, inter))
    )
    _write_pem(tmp_path / "alice-key", leaf, leaf_key)
    server_tls = ServerTLS(
        str(tmp_path / "server.pem"), str(tmp_path / "server.key"), str(tmp_path / "root.pem")
    )
    client_tls = ClientTLS(
        str(tmp_path / "root.pem"), str(tmp_path / "alice.pem"), str(tmp_path / "alice-key.key")
    )
    pair = Pair(server_tls, client_tls)
    _handshake(pair)
    assert server_tls.authenticate_client(pair.server) == "CN=alice"


def _ca(
    name: str,
    issuer: x509.Certificate | None,
    issuer_key: ec.EllipticCurvePrivateKey | None,
    *,
    path_length: int,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A CA certificate: self-signed when `issuer` is None, else an intermediate."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    usage = x509.KeyUsage(True, False, False, False, False, True, True, False, False)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.subject if issuer is not None else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - datetime.timedelta(hours=1))
        .not_valid_after(NOW + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
    )
    if issuer is not None and issuer_key is not None:
        ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        aki = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)
        return builder.add_extension(aki, False).sign(issuer_key, hashes.SHA256()), key
    return builder.sign(key, hashes.SHA256()), key


def test_authenticate_before_handshake_completes_is_refused(dev: DevCerts) -> None:
    server_tls = ServerTLS(dev.server_cert, dev.server_key, client_ca=dev.ca_cert)
    pair = Pair(server_tls, ClientTLS(dev.ca_cert, dev.client_cert, dev.client_key))
    for data, _ in pair.client.datagrams_to_send(now=pair.now):  # ClientHello only
        pair.server.receive_datagram(data, CLIENT_ADDR, now=pair.now)
    with pytest.raises(PeerAuthenticationError, match="not completed"):
        server_tls.authenticate_client(pair.server)


def test_unprepared_connection_fails_closed(dev: DevCerts) -> None:
    """Forgetting prepare_connection must not let clients in unverified."""
    server_tls = ServerTLS(dev.server_cert, dev.server_key, client_ca=dev.ca_cert)
    client_tls = ClientTLS(dev.ca_cert, dev.client_cert, dev.client_key)
    pair = Pair(server_tls, client_tls, prepare=lambda quic: None)
    _handshake(pair)
    with pytest.raises(PeerAuthenticationError, match="never asked"):
        server_tls.authenticate_client(pair.server)


def test_prepare_connection_timing(dev: DevCerts) -> None:
    server_tls = ServerTLS(dev.server_cert, dev.server_key, client_ca=dev.ca_cert)
    client_tls = ClientTLS(dev.ca_cert, dev.client_cert, dev.client_key)
    pair = Pair(server_tls, client_tls)
    with pytest.raises(PeerAuthenticationError, match="not started"):
        server_tls.authenticate_client(pair.server)
    server_tls.prepare_connection(pair.server)  # a second call is harmless
    _handshake(pair)
    assert server_tls.authenticate_client(pair.server) == "CN=rpcnet-dev-client"
    with pytest.raises(ValueError, match="before the connection receives its first datagram"):
        server_tls.prepare_connection(pair.server)


def test_prepare_connection_refuses_client_side(dev: DevCerts) -> None:
    server_tls = ServerTLS(dev.server_cert, dev.server_key, client_ca=dev.ca_cert)
    client_config = ClientTLS(dev.ca_cert).quic_configuration(
        alpn_protocols=ALPN, idle_timeout=5.0, server_name="localhost"
    )
    with pytest.raises(ValueError, match="server-side"):
        server_tls.prepare_connection(QuicConnection(configuration=client_config))


# --------------------------------------------------------------------------------------------
# Session resumption and 0-RTT cannot skip client verification


def _ticket_from_plain_server(dev: DevCerts, store: dict[bytes, SessionTicket]) -> SessionTicket:
    """Run a handshake against a server WITHOUT mutual TLS that issues tickets into `store`."""
    issued: list[SessionTicket] = []
    plain = ServerTLS(dev.server_cert, dev.server_key)
    pair = Pair(plain, ClientTLS(dev.ca_cert), issued=issued, fetcher=store.get)
    _handshake(pair)
    assert issued and pair.client_tickets, "the plain server should have issued a ticket"
    for ticket in issued:
        store[ticket.ticket] = ticket
    return pair.client_tickets[-1]


def test_mutual_tls_server_issues_no_session_tickets(dev: DevCerts) -> None:
    issued: list[SessionTicket] = []
    server_tls = ServerTLS(dev.server_cert, dev.server_key, client_ca=dev.ca_cert)
    client_tls = ClientTLS(dev.ca_cert, dev.client_cert, dev.client_key)
    pair = Pair(server_tls, client_tls, issued=issued, fetcher=lambda _: None)
    _handshake(pair)
    assert server_tls.authenticate_client(pair.server) == "CN=rpcnet-dev-client"
    assert issued == [] and pair.client_tickets == []


def test_resumption_ticket_cannot_bypass_client_verification(dev: DevCerts) -> None:
    store: dict[bytes, SessionTicket] = {}
    ticket = _ticket_from_plain_server(dev, store)
    server_tls = ServerTLS(dev.server_cert, dev.server_key, client_ca=dev.ca_cert)
    # The server shares the ticket store, yet the ticket is ignored: full handshake, refused.
    pair = Pair(server_tls, ClientTLS(dev.ca_cert), ticket=ticket, fetcher=store.get)
    stream_id = pair.client.get_next_available_stream_id()
    pair.client.send_stream_data(stream_id, b"early request", end_stream=True)  # 0-RTT attempt
    server_events, _ = _handshake(pair)
    assert not pair.server.tls.session_resumed
    assert not pair.server.tls.early_data_accepted
    done = next(i for i, e in enumerate(server_events) if isinstance(e, events.HandshakeCompleted))
    assert not any(isinstance(e, events.StreamDataReceived) for e in server_events[:done])
    with pytest.raises(PeerAuthenticationError, match="sent no certificate"):
        server_tls.authenticate_client(pair.server)


def test_control_plain_server_accepts_early_data(dev: DevCerts) -> None:
    """Control for the test above: without mutual TLS the same ticket does carry 0-RTT data."""
    store: dict[bytes, SessionTicket] = {}
    ticket = _ticket_from_plain_server(dev, store)
    plain = ServerTLS(dev.server_cert, dev.server_key)
    pair = Pair(plain, ClientTLS(dev.ca_cert), ticket=ticket, fetcher=store.get)
    pair.client.send_stream_data(0, b"early request", end_stream=True)
    server_events, _ = _handshake(pair)
    assert pair.server.tls.session_resumed and pair.server.tls.early_data_accepted
    done = next(i for i, e in enumerate(server_events) if isinstance(e, events.HandshakeCompleted))
    assert any(isinstance(e, events.StreamDataReceived) for e in server_events[:done])


def _resumption_pair(dev: DevCerts, prepare: Callable[[QuicConnection], None]) -> Pair:
    store: dict[bytes, SessionTicket] = {}
    ticket = _ticket_from_plain_server(dev, store)
    server_tls = ServerTLS(dev.server_cert, dev.server_key, client_ca=dev.ca_cert)
    client_tls = ClientTLS(dev.ca_cert, dev.client_cert, dev.client_key)
    return Pair(server_tls, client_tls, ticket=ticket, fetcher=store.get, prepare=prepare)


def test_resumption_with_certificate_request_never_completes(dev: DevCerts) -> None:
    """Were tickets left on, aioquic would expect a certificate a PSK client never sends."""

    def request_certificate_but_keep_tickets(quic: QuicConnection) -> None:
        original = quic._initialize

        def initialize(peer_cid: bytes) -> None:
            original(peer_cid)
            quic.tls._request_client_certificate = True

        quic._initialize = initialize  # type: ignore[method-assign]

    pair = _resumption_pair(dev, request_certificate_but_keep_tickets)
    pair.pump()
    pair.expire()
    server_events = Pair.drain(pair.server)
    assert not any(isinstance(e, events.HandshakeCompleted) for e in server_events)
    assert any(isinstance(e, events.ConnectionTerminated) for e in server_events)


def test_resumed_session_is_refused(dev: DevCerts) -> None:
    """Defence in depth: a resumed session (no certificate exchanged) is never accepted."""
    server_tls = ServerTLS(dev.server_cert, dev.server_key, client_ca=dev.ca_cert)
    pair = _resumption_pair(dev, lambda quic: None)
    _handshake(pair)
    assert pair.server.tls.session_resumed
    pair.server.tls._request_client_certificate = True  # as if prepared, to reach the check
    with pytest.raises(PeerAuthenticationError, match="session resumption"):
        server_tls.authenticate_client(pair.server)


# --------------------------------------------------------------------------------------------
# The client always verifies the server


def test_client_trusting_another_ca_cannot_connect(dev: DevCerts, other: DevCerts) -> None:
    pair = Pair(ServerTLS(dev.server_cert, dev.server_key), ClientTLS(other.ca_cert))
    pair.pump()
    pair.expire()
    client_events = Pair.drain(pair.client)
    assert not any(isinstance(e, events.HandshakeCompleted) for e in client_events)
    closed = [e for e in client_events if isinstance(e, events.ConnectionTerminated)]
    assert closed and "issuer" in closed[0].reason_phrase


def test_client_checks_the_server_name(dev: DevCerts) -> None:
    pair = Pair(
        ServerTLS(dev.server_cert, dev.server_key),
        ClientTLS(dev.ca_cert),
        server_name="example.com",
    )
    pair.pump()
    pair.expire()
    client_events = Pair.drain(pair.client)
    assert not any(isinstance(e, events.HandshakeCompleted) for e in client_events)
    closed = [e for e in client_events if isinstance(e, events.ConnectionTerminated)]
    assert closed and "example.com" in closed[0].reason_phrase


@pytest.mark.parametrize("dialled", ["127.0.0.1", "::1", "localhost"])
def test_dns_and_ip_server_names(dev: DevCerts, dialled: str) -> None:
    client_tls = ClientTLS(dev.ca_cert)
    pair = Pair(ServerTLS(dev.server_cert, dev.server_key), client_tls, server_name=dialled)
    _handshake(pair)


def test_server_name_override(dev: DevCerts) -> None:
    """Dialling an address the certificate does not name works only with the override."""
    server_tls = ServerTLS(dev.server_cert, dev.server_key)
    plain = Pair(server_tls, ClientTLS(dev.ca_cert), server_name="10.9.9.9")
    plain.pump()
    assert not any(isinstance(e, events.HandshakeCompleted) for e in Pair.drain(plain.client))
    overridden = ClientTLS(dev.ca_cert, server_name="localhost")
    _handshake(Pair(server_tls, overridden, server_name="10.9.9.9"))


def test_client_configuration_always_verifies(dev: DevCerts) -> None:
    config = ClientTLS(dev.ca_cert, server_name="localhost").quic_configuration(
        alpn_protocols=ALPN, idle_timeout=3.0, server_name="127.0.0.1"
    )
    assert config.verify_mode == ssl.CERT_REQUIRED
    assert config.server_name == "localhost"
    assert config.cadata and config.cafile is None and config.capath is None
    assert config.idle_timeout == 3.0 and config.alpn_protocols == ALPN


def test_server_configuration(dev: DevCerts) -> None:
    config = ServerTLS(dev.server_cert, dev.server_key).quic_configuration(
        alpn_protocols=ALPN, idle_timeout=7.5, max_datagram_frame_size=1200
    )
    assert not config.is_client and config.certificate is not None
    assert config.idle_timeout == 7.5 and config.max_datagram_frame_size == 1200


@pytest.mark.parametrize(
    ("alpn", "idle", "message"),
    [([], 5.0, "alpn"), ([""], 5.0, "alpn"), (ALPN, 0.0, "idle_timeout")],
)
def test_configuration_arguments_are_checked(
    dev: DevCerts, alpn: list[str], idle: float, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        ServerTLS(dev.server_cert, dev.server_key).quic_configuration(
            alpn_protocols=alpn, idle_timeout=idle
        )
    with pytest.raises(ValueError, match=message):
        ClientTLS(dev.ca_cert).quic_configuration(
            alpn_protocols=alpn, idle_timeout=idle, server_name="localhost"
        )


# --------------------------------------------------------------------------------------------
# Early, clear errors for bad files


def test_missing_files_are_reported(dev: DevCerts, tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.pem")
    with pytest.raises(TLSConfigError, match=r"server certificate file .*nope\.pem.* does not"):
        ServerTLS(missing, dev.server_key)
    with pytest.raises(TLSConfigError, match="server key file"):
        ServerTLS(dev.server_cert, missing)
    with pytest.raises(TLSConfigError, match="client CA file"):
        ServerTLS(dev.server_cert, dev.server_key, client_ca=missing)
    with pytest.raises(TLSConfigError, match="CA file"):
        ClientTLS(missing)
    with pytest.raises(TLSConfigError, match="does not exist or is not a file"):
        ClientTLS(str(tmp_path))


def test_garbage_pem_is_reported(dev: DevCerts, tmp_path: Path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    with pytest.raises(TLSConfigError, match=r"no .*PEM certificate"):
        ServerTLS(str(junk), dev.server_key)
    with pytest.raises(TLSConfigError, match="no readable PEM private key"):
        ServerTLS(dev.server_cert, str(junk))
    with pytest.raises(TLSConfigError, match=r"no .*PEM certificate"):
        ClientTLS(str(junk))
    # a key where a certificate belongs, and the other way round
    with pytest.raises(TLSConfigError, match="certificate"):
        ServerTLS(dev.server_key, dev.server_key)
    with pytest.raises(TLSConfigError, match="private key"):
        ServerTLS(dev.server_cert, dev.server_cert)


def test_key_not_matching_certificate(dev: DevCerts) -> None:
    with pytest.raises(TLSConfigError, match="does not match"):
        ServerTLS(dev.server_cert, dev.client_key)
    with pytest.raises(TLSConfigError, match="does not match"):
        ClientTLS(dev.ca_cert, dev.client_cert, dev.server_key)


def test_encrypted_key_is_reported(dev: DevCerts, tmp_path: Path) -> None:
    key = serialization.load_pem_private_key(Path(dev.server_key).read_bytes(), None)
    locked = tmp_path / "locked.key"
    locked.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    with pytest.raises(TLSConfigError, match="encrypted"):
        ServerTLS(dev.server_cert, str(locked))


def test_unusable_key_type_is_reported(dev: DevCerts, tmp_path: Path) -> None:
    dsa_key = dsa.generate_private_key(key_size=2048)
    path = tmp_path / "dsa.key"
    path.write_bytes(
        dsa_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    with pytest.raises(TLSConfigError, match=r"TLS 1\.3 cannot use"):
        ServerTLS(dev.server_cert, str(path))


def test_client_cert_and_key_go_together(dev: DevCerts) -> None:
    with pytest.raises(TLSConfigError, match="both cert and key"):
        ClientTLS(dev.ca_cert, cert=dev.client_cert)
    with pytest.raises(TLSConfigError, match="both cert and key"):
        ClientTLS(dev.ca_cert, key=dev.client_key)


# --------------------------------------------------------------------------------------------
# Chain verification as a pure function (time injected)


def test_verify_client_chain_uses_the_given_time(dev: DevCerts) -> None:
    leaf = x509.load_pem_x509_certificate(Path(dev.client_cert).read_bytes())
    ca = x509.load_pem_x509_certificate(Path(dev.ca_cert).read_bytes())
    store = Store([ca])
    assert verify_client_chain(leaf, [], trusted=[ca], store=store, now=NOW).startswith("CN=")
    later = leaf.not_valid_after_utc + datetime.timedelta(seconds=1)
    with pytest.raises(PeerAuthenticationError, match="expired"):
        verify_client_chain(leaf, [], trusted=[ca], store=store, now=later)
    with pytest.raises(PeerAuthenticationError, match="chain longer"):
        verify_client_chain(leaf, [ca] * 8, trusted=[ca], store=store, now=NOW)


def _usage(signature: bool, *, encipher: bool = False, cert_sign: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(signature, False, encipher, False, False, cert_sign, False, False, False)


_Extensions = list[tuple[x509.ExtensionType, bool]]
_LEAF_CASES: list[tuple[str, _Extensions, bool, str | None]] = [
    ("plain", [], True, None),
    ("digital signature", [(_usage(True), True)], True, None),
    ("encipherment only", [(_usage(False, encipher=True), True)], True, "digital signatures"),
    (
        "claims to be a CA",
        [(x509.BasicConstraints(True, None), True), (_usage(True, cert_sign=True), True)],
        True,
        "failed verification",
    ),
    (
        "anyExtendedKeyUsage",
        [(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE]), False)],
        True,
        "EKU",
    ),
    ("no authority key id", [], False, "authorityKeyIdentifier"),
]


@pytest.mark.parametrize(
    ("extensions", "with_aki", "refusal"),
    [case[1:] for case in _LEAF_CASES],
    ids=[case[0] for case in _LEAF_CASES],
)
def test_client_leaf_profile(extensions: _Extensions, with_aki: bool, refusal: str | None) -> None:
    ca, ca_key = generate_ca("profile CA", now=NOW)
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "leaf")]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - datetime.timedelta(hours=1))
        .not_valid_after(NOW + datetime.timedelta(days=1))
    )
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical)
    if with_aki:
        ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        aki = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)
        builder = builder.add_extension(aki, False)
    leaf = builder.sign(ca_key, hashes.SHA256())
    store = Store([ca])
    if refusal is None:
        assert verify_client_chain(leaf, [], trusted=[ca], store=store, now=NOW) == "CN=leaf"
    else:
        with pytest.raises(PeerAuthenticationError, match=refusal):
            verify_client_chain(leaf, [], trusted=[ca], store=store, now=NOW)


# --------------------------------------------------------------------------------------------
# Real sockets on loopback (aioquic.asyncio)


class _AuthProtocol(QuicConnectionProtocol):
    """A minimal server protocol doing what rpcnet's server does on HandshakeCompleted."""

    server_tls: ServerTLS
    results: asyncio.Queue[str | PeerAuthenticationError | None]

    def quic_event_received(self, event: events.QuicEvent) -> None:
        if isinstance(event, events.HandshakeCompleted):
            try:
                identity = self.server_tls.authenticate_client(self._quic)
            except PeerAuthenticationError as exc:
                self._quic.close(error_code=0x100, reason_phrase=f"unauthenticated: {exc}")
                self.transmit()
                self.results.put_nowait(exc)
            else:
                self.results.put_nowait(identity)


class _ClientProtocol(QuicConnectionProtocol):
    """Records how the connection ended."""

    terminated: events.ConnectionTerminated | None = None

    def quic_event_received(self, event: events.QuicEvent) -> None:
        if isinstance(event, events.ConnectionTerminated):
            self.terminated = event


Results = asyncio.Queue[str | None | PeerAuthenticationError]


@pytest.fixture
async def loopback_server() -> AsyncIterator[Callable[[ServerTLS], Awaitable[tuple[int, Results]]]]:
    servers: list[QuicServer] = []

    async def start(server_tls: ServerTLS) -> tuple[int, Results]:
        results: Results = asyncio.Queue()

        def create_protocol(quic: QuicConnection, **kwargs: Any) -> _AuthProtocol:
            server_tls.prepare_connection(quic)  # before the first datagram
            protocol = _AuthProtocol(quic, **kwargs)
            protocol.server_tls = server_tls
            protocol.results = results
            return protocol

        server = await serve(
            "127.0.0.1",
            0,
            configuration=server_tls.quic_configuration(alpn_protocols=ALPN, idle_timeout=5.0),
            create_protocol=create_protocol,
        )
        servers.append(server)
        assert server._transport is not None
        port: int = server._transport.get_extra_info("sockname")[1]
        return port, results

    yield start
    for server in servers:
        server.close()


async def test_loopback_mutual_tls(
    dev: DevCerts, loopback_server: Callable[[ServerTLS], Awaitable[tuple[int, Results]]]
) -> None:
    server_tls = ServerTLS(dev.server_cert, dev.server_key, client_ca=dev.ca_cert)
    port, results = await loopback_server(server_tls)
    good = ClientTLS(dev.ca_cert, dev.client_cert, dev.client_key)
    config = good.quic_configuration(alpn_protocols=ALPN, idle_timeout=5.0, server_name="127.0.0.1")
    async with connect("127.0.0.1", port, configuration=config) as client:
        await asyncio.wait_for(client.ping(), 5.0)
        assert await asyncio.wait_for(results.get(), 5.0) == "CN=rpcnet-dev-client"

    anonymous = ClientTLS(dev.ca_cert).quic_configuration(
        alpn_protocols=ALPN, idle_timeout=5.0, server_name="localhost"
    )
    async with connect(
        "127.0.0.1", port, configuration=anonymous, create_protocol=_ClientProtocol
    ) as refused_client:
        assert isinstance(refused_client, _ClientProtocol)
        refused = await asyncio.wait_for(results.get(), 5.0)
        assert isinstance(refused, PeerAuthenticationError)
        await asyncio.wait_for(refused_client.wait_closed(), 5.0)
        assert refused_client.terminated is not None
        assert "sent no certificate" in refused_client.terminated.reason_phrase


async def test_loopback_wrong_ca_fails_to_connect(
    dev: DevCerts,
    other: DevCerts,
    loopback_server: Callable[[ServerTLS], Awaitable[tuple[int, Results]]],
) -> None:
    port, _ = await loopback_server(ServerTLS(dev.server_cert, dev.server_key))
    config = ClientTLS(other.ca_cert).quic_configuration(
        alpn_protocols=ALPN, idle_timeout=5.0, server_name="localhost"
    )
    with pytest.raises(ConnectionError):
        async with connect("127.0.0.1", port, configuration=config):
            pass
