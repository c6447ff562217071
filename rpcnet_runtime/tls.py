"""TLS 1.3 settings for rpcnet's QUIC endpoints, with mutual TLS that really verifies clients.

`ServerTLS` and `ClientTLS` name PEM files, check them when constructed (missing file, unreadable
PEM, key not matching its certificate) and build aioquic `QuicConfiguration` objects. There is no
insecure mode: a client always verifies the server's chain and name against `ca`.

Theory of operation for mutual TLS on aioquic 1.7 (server side). aioquic's TLS engine asks a
client for a certificate only when the private attribute ``Context._request_client_certificate``
is set (marked "for test purposes only"), accepts a client that answers with an empty Certificate
message, and checks the client's CertificateVerify signature but never the chain. So rpcnet:

1. `ServerTLS.prepare_connection` (called on each new server-side `QuicConnection`, before its
   first datagram) wraps the connection's ``_initialize`` so that, right after aioquic creates the
   TLS context, the context requests a client certificate and has its session-ticket callbacks
   removed: no tickets are issued and no PSK is accepted, so no resumed handshake (which would
   carry no certificate) and no 0-RTT data exist under mutual TLS.
2. `ServerTLS.authenticate_client`, called once on ``HandshakeCompleted``, refuses a resumed
   session or a missing certificate and verifies the chain the client sent against `client_ca`
   with ``cryptography.x509.verification`` (signatures, validity dates, CA constraints, and
   extended key usage clientAuth where present). aioquic has already checked that the client
   holds the leaf's private key (CertificateVerify) before the handshake completed.

The server dispatches nothing on a connection before `authenticate_client` succeeded and closes
the connection when it raises. Both steps fail closed: if step 1 did not run, step 2 reports that
the server never asked for a certificate.

The pieces live in `tls_pem` (reading files), `tls_aioquic` (the aioquic internals of step 1
and of reading the client's certificates) and `tls_verify` (the pure chain check of step 2).
"""

from __future__ import annotations

import datetime
import ssl
from dataclasses import dataclass, field

from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from cryptography import x509
from cryptography.x509.verification import Store

from .tls_aioquic import (
    aioquic_supports_client_auth,
    client_certificates,
    require_client_certificates,
)
from .tls_pem import PrivateKey, TLSConfigError, load_certificates, load_identity, pem
from .tls_verify import MAX_CLIENT_CHAIN, PeerAuthenticationError, verify_client_chain

__all__ = [
    "MAX_CLIENT_CHAIN",
    "ClientTLS",
    "PeerAuthenticationError",
    "ServerTLS",
    "TLSConfigError",
    "verify_client_chain",
]


def _check_common(alpn_protocols: list[str], idle_timeout: float) -> None:
    if not alpn_protocols or not all(alpn_protocols):
        raise ValueError("alpn_protocols must be a non-empty list of non-empty names")
    if not idle_timeout > 0:
        raise ValueError(f"idle_timeout must be positive, got {idle_timeout!r}")


@dataclass(frozen=True)
class ServerTLS:
    """A server's certificate and key, and `client_ca` to require client certificates."""

    cert: str
    """PEM file: the server certificate, optionally followed by intermediates."""
    key: str
    """PEM file: the unencrypted private key of `cert`."""
    client_ca: str | None = None
    """PEM file of CA certificates trusted for client certificates; set means mutual TLS."""

    _chain: list[x509.Certificate] = field(init=False, repr=False, compare=False)
    _key: PrivateKey = field(init=False, repr=False, compare=False)
    _client_cas: list[x509.Certificate] = field(init=False, repr=False, compare=False)
    _client_store: Store | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        chain, key = load_identity(self.cert, self.key, "server")
        object.__setattr__(self, "_chain", chain)
        object.__setattr__(self, "_key", key)
        cas: list[x509.Certificate] = []
        store: Store | None = None
        if self.client_ca is not None:
            if not aioquic_supports_client_auth():
                raise TLSConfigError(
                    "this aioquic version lacks the internals rpcnet uses for mutual TLS"
                )
            cas = load_certificates(self.client_ca, "client CA")
            store = Store(cas)
        object.__setattr__(self, "_client_cas", cas)
        object.__setattr__(self, "_client_store", store)

    @property
    def mutual(self) -> bool:
        """True when clients must present a certificate signed by `client_ca`."""
        return self.client_ca is not None

    def quic_configuration(
        self,
        *,
        alpn_protocols: list[str],
        idle_timeout: float,
        max_datagram_frame_size: int | None = None,
    ) -> QuicConfiguration:
        """A fresh server-side `QuicConfiguration` with this certificate and key."""
        _check_common(alpn_protocols, idle_timeout)
        configuration = QuicConfiguration(
            is_client=False,
            alpn_protocols=list(alpn_protocols),
            idle_timeout=idle_timeout,
            max_datagram_frame_size=max_datagram_frame_size,
        )
        configuration.certificate = self._chain[0]
        configuration.certificate_chain = list(self._chain[1:])
        configuration.private_key = self._key
        return configuration

    def prepare_connection(self, quic: QuicConnection) -> None:
        """Set up a new server-side connection before it receives its first datagram.

        Under mutual TLS this makes the handshake request a client certificate and disables
        session tickets (hence resumption and 0-RTT) for the connection; otherwise it does
        nothing. Call it from the protocol factory given to ``aioquic.asyncio.serve``.
        """
        if self.client_ca is None:
            return
        if quic.configuration.is_client:
            raise ValueError("prepare_connection is for server-side connections")
        require_client_certificates(quic)

    def authenticate_client(
        self, quic: QuicConnection, *, now: datetime.datetime | None = None
    ) -> str | None:
        """Check the client of a connection whose handshake completed.

        Returns the client certificate's subject (RFC 4514) under mutual TLS, None without
        `client_ca`. Raises `PeerAuthenticationError` when mutual TLS is on and the client sent
        no certificate, resumed a session, or its chain does not verify against `client_ca`.
        `now` (aware, UTC) defaults to the current time.
        """
        if self._client_store is None:
            return None
        leaf, intermediates = client_certificates(quic)
        when = now if now is not None else datetime.datetime.now(datetime.UTC)
        return verify_client_chain(
            leaf, intermediates, trusted=self._client_cas, store=self._client_store, now=when
        )


@dataclass(frozen=True)
class ClientTLS:
    """The CA a client trusts for servers, and optionally its own certificate for mutual TLS."""

    ca: str
    """PEM file of CA certificates trusted to sign servers' certificates."""
    cert: str | None = None
    """PEM file: the client certificate (mutual TLS), optionally followed by intermediates."""
    key: str | None = None
    """PEM file: the unencrypted private key of `cert`."""
    server_name: str | None = None
    """Name to verify in the server's certificate, instead of the host that was dialled."""

    _ca_pem: bytes = field(init=False, repr=False, compare=False)
    _chain: list[x509.Certificate] = field(init=False, repr=False, compare=False)
    _key: PrivateKey | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_ca_pem", pem(load_certificates(self.ca, "CA")))
        if (self.cert is None) != (self.key is None):
            raise TLSConfigError("ClientTLS needs both cert and key for mutual TLS, or neither")
        chain: list[x509.Certificate] = []
        key: PrivateKey | None = None
        if self.cert is not None and self.key is not None:
            chain, key = load_identity(self.cert, self.key, "client")
        object.__setattr__(self, "_chain", chain)
        object.__setattr__(self, "_key", key)
        if self.server_name is not None and not self.server_name:
            raise TLSConfigError("server_name must not be empty")

    def quic_configuration(
        self, *, alpn_protocols: list[str], idle_timeout: float, server_name: str
    ) -> QuicConfiguration:
        """A fresh client-side `QuicConfiguration`: the server is always verified.

        The server's certificate must chain to `ca` and name `self.server_name` if set, else
        `server_name` (the host dialled, a DNS name or an IP address).
        """
        _check_common(alpn_protocols, idle_timeout)
        name = self.server_name or server_name
        if not name:
            raise ValueError("a server name is needed to verify the server's certificate")
        configuration = QuicConfiguration(
            is_client=True,
            alpn_protocols=list(alpn_protocols),
            idle_timeout=idle_timeout,
            server_name=name,
            verify_mode=ssl.CERT_REQUIRED,
            cadata=self._ca_pem,
        )
        if self._key is not None:
            configuration.certificate = self._chain[0]
            configuration.certificate_chain = list(self._chain[1:])
            configuration.private_key = self._key
        return configuration
