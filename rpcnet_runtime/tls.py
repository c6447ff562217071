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
"""

from __future__ import annotations

import datetime
import functools
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeAlias

from aioquic import tls as aioquic_tls
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    PolicyBuilder,
    Store,
    VerificationError,
)

__all__ = [
    "MAX_CLIENT_CHAIN",
    "ClientTLS",
    "PeerAuthenticationError",
    "ServerTLS",
    "TLSConfigError",
    "verify_client_chain",
]

PrivateKey: TypeAlias = (
    ec.EllipticCurvePrivateKey
    | rsa.RSAPrivateKey
    | ed25519.Ed25519PrivateKey
    | ed448.Ed448PrivateKey
)

#: Longest certificate chain (leaf + intermediates) a client may present.
MAX_CLIENT_CHAIN = 8
#: Largest PEM file rpcnet reads (certificates and keys are a few KiB).
_MAX_PEM_BYTES = 1 << 20


class PeerAuthenticationError(Exception):
    """The peer failed authentication: no certificate, wrong CA, expired, or similar."""


class TLSConfigError(ValueError):
    """A TLS setting is unusable: a missing or unreadable file, bad PEM, or a mismatched key."""


# --------------------------------------------------------------------------------------------
# Loading and checking PEM files


def _read_pem(path: str, what: str) -> bytes:
    p = Path(path)
    try:
        if not p.is_file():
            raise TLSConfigError(f"{what} file {path!r} does not exist or is not a file")
        if p.stat().st_size > _MAX_PEM_BYTES:
            raise TLSConfigError(f"{what} file {path!r} is too large to be a PEM file")
        return p.read_bytes()
    except OSError as exc:
        raise TLSConfigError(f"cannot read {what} file {path!r}: {exc.strerror or exc}") from exc


def _load_certificates(path: str, what: str) -> list[x509.Certificate]:
    data = _read_pem(path, what)
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise TLSConfigError(f"{what} file {path!r} holds no readable PEM certificate") from exc
    if not certs:
        raise TLSConfigError(f"{what} file {path!r} holds no PEM certificate")
    return certs


def _load_private_key(path: str, what: str) -> PrivateKey:
    data = _read_pem(path, what)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError as exc:
        raise TLSConfigError(
            f"{what} file {path!r} is encrypted; rpcnet needs an unencrypted PEM key"
        ) from exc
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise TLSConfigError(f"{what} file {path!r} holds no readable PEM private key") from exc
    if not isinstance(
        key,
        ec.EllipticCurvePrivateKey
        | rsa.RSAPrivateKey
        | ed25519.Ed25519PrivateKey
        | ed448.Ed448PrivateKey,
    ):
        raise TLSConfigError(
            f"{what} file {path!r} holds a {type(key).__name__}, which TLS 1.3 cannot use "
            "(use ECDSA, RSA or Ed25519)"
        )
    return key


def _spki(public_key: object) -> bytes:
    encode: Callable[..., bytes] = public_key.public_bytes  # type: ignore[attr-defined]
    return encode(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _load_identity(cert: str, key: str, role: str) -> tuple[list[x509.Certificate], PrivateKey]:
    chain = _load_certificates(cert, f"{role} certificate")
    private_key = _load_private_key(key, f"{role} key")
    if _spki(private_key.public_key()) != _spki(chain[0].public_key()):
        raise TLSConfigError(f"{role} key {key!r} does not match the first certificate in {cert!r}")
    return chain, private_key


def _pem(certs: list[x509.Certificate]) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def _check_common(alpn_protocols: list[str], idle_timeout: float) -> None:
    if not alpn_protocols or not all(alpn_protocols):
        raise ValueError("alpn_protocols must be a non-empty list of non-empty names")
    if not idle_timeout > 0:
        raise ValueError(f"idle_timeout must be positive, got {idle_timeout!r}")


# --------------------------------------------------------------------------------------------
# Reliance on aioquic internals (checked once, so an aioquic upgrade fails loudly, not open)


@functools.cache
def _aioquic_supports_client_auth() -> bool:
    probe = aioquic_tls.Context(is_client=False)
    return (
        "_request_client_certificate" in vars(probe)
        and "_peer_certificate" in vars(probe)
        and "_peer_certificate_chain" in vars(probe)
        and hasattr(QuicConnection, "_initialize")
    )


def _require_client_certificates(quic: QuicConnection) -> None:
    """Make `quic`'s TLS context (created lazily by aioquic) request a client certificate."""
    if "tls" in vars(quic):
        raise ValueError(
            "prepare_connection must be called before the connection receives its first datagram"
        )
    original: Callable[[bytes], None] = quic._initialize
    if getattr(original, "_rpcnet_mutual_tls", False):
        return  # already prepared

    def initialize(peer_cid: bytes) -> None:
        original(peer_cid)
        context = quic.tls
        context._request_client_certificate = True
        # No session tickets under mutual TLS: a PSK handshake skips the certificate exchange.
        context.get_session_ticket_cb = None
        context.new_session_ticket_cb = None

    initialize._rpcnet_mutual_tls = True  # type: ignore[attr-defined]
    quic._initialize = initialize  # type: ignore[method-assign]


def _client_certificates(
    quic: QuicConnection,
) -> tuple[x509.Certificate | None, list[x509.Certificate]]:
    context: aioquic_tls.Context | None = vars(quic).get("tls")
    if context is None:
        raise PeerAuthenticationError("the TLS handshake has not started")
    if not getattr(context, "_request_client_certificate", False):
        raise PeerAuthenticationError(
            "the server never asked this client for a certificate "
            "(ServerTLS.prepare_connection was not called on the connection)"
        )
    if context.state is not aioquic_tls.State.SERVER_POST_HANDSHAKE:
        raise PeerAuthenticationError("the TLS handshake has not completed")
    if context.session_resumed:
        raise PeerAuthenticationError("session resumption is not accepted under mutual TLS")
    leaf: x509.Certificate | None = context._peer_certificate
    chain: list[x509.Certificate] = list(context._peer_certificate_chain)
    return leaf, chain


# --------------------------------------------------------------------------------------------
# Chain verification (pure: certificates, trust store and time in, subject or error out)


@functools.cache
def _ee_policy() -> ExtensionPolicy:
    # The Web PKI profile, except that a client certificate need not carry subject alternative
    # names: rpcnet identifies clients by their subject. Extended key usage, when present, must
    # still include clientAuth (the client verifier checks it).
    return ExtensionPolicy.webpki_defaults_ee().may_be_present(
        x509.SubjectAlternativeName, Criticality.AGNOSTIC, None
    )


def verify_client_chain(
    leaf: x509.Certificate | None,
    intermediates: list[x509.Certificate],
    *,
    trusted: list[x509.Certificate],
    store: Store,
    now: datetime.datetime,
) -> str:
    """Verify a client's chain against `store` at time `now`; return the leaf's subject.

    Raises `PeerAuthenticationError` with a message naming the reason.
    """
    if leaf is None:
        raise PeerAuthenticationError("the client sent no certificate (mutual TLS is required)")
    subject = leaf.subject.rfc4514_string() or "<empty subject>"
    if len(intermediates) + 1 > MAX_CLIENT_CHAIN:
        raise PeerAuthenticationError(
            f"client certificate {subject}: chain longer than {MAX_CLIENT_CHAIN} certificates"
        )
    if now < leaf.not_valid_before_utc:
        raise PeerAuthenticationError(
            f"client certificate {subject} is not valid before {_utc(leaf.not_valid_before_utc)}"
        )
    if now > leaf.not_valid_after_utc:
        raise PeerAuthenticationError(
            f"client certificate {subject} expired on {_utc(leaf.not_valid_after_utc)}"
        )
    verifier = (
        PolicyBuilder()
        .store(store)
        .time(now)
        .max_chain_depth(MAX_CLIENT_CHAIN)
        .extension_policies(ca_policy=ExtensionPolicy.webpki_defaults_ca(), ee_policy=_ee_policy())
        .build_client_verifier()
    )
    try:
        verifier.verify(leaf, intermediates)
    except VerificationError as exc:
        if not _issued_by_any([leaf, *intermediates], trusted):
            raise PeerAuthenticationError(
                f"client certificate {subject} was not issued by a CA in client_ca "
                f"(its issuer: {leaf.issuer.rfc4514_string()})"
            ) from None
        raise PeerAuthenticationError(
            f"client certificate {subject} failed verification against client_ca: "
            f"{_name_oids(str(exc))}"
        ) from None
    try:
        usage = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return subject
    if not usage.digital_signature:
        raise PeerAuthenticationError(
            f"client certificate {subject}: its key usage does not allow digital signatures, "
            "which TLS client authentication needs"
        )
    return subject


_EXTENSION_NAMES = {
    "2.5.29.14": "subjectKeyIdentifier",
    "2.5.29.15": "keyUsage",
    "2.5.29.17": "subjectAltName",
    "2.5.29.19": "basicConstraints",
    "2.5.29.35": "authorityKeyIdentifier",
    "2.5.29.37": "extKeyUsage",
}


def _utc(moment: datetime.datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M:%S} UTC"


def _name_oids(message: str) -> str:
    """Spell out the extension OIDs cryptography's verifier mentions."""
    for oid, name in _EXTENSION_NAMES.items():
        message = message.replace(f"{oid}:", f"{oid} ({name}):")
    return message


def _issued_by_any(certs: list[x509.Certificate], trusted: list[x509.Certificate]) -> bool:
    """True when a trusted CA's key signed one of `certs` (used only to word an error)."""
    for cert in certs:
        for ca in trusted:
            try:
                cert.verify_directly_issued_by(ca)
            except (ValueError, TypeError, InvalidSignature):
                continue
            return True
    return False


# --------------------------------------------------------------------------------------------
# Public configuration objects


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
        chain, key = _load_identity(self.cert, self.key, "server")
        object.__setattr__(self, "_chain", chain)
        object.__setattr__(self, "_key", key)
        cas: list[x509.Certificate] = []
        store: Store | None = None
        if self.client_ca is not None:
            if not _aioquic_supports_client_auth():
                raise TLSConfigError(
                    "this aioquic version lacks the internals rpcnet uses for mutual TLS"
                )
            cas = _load_certificates(self.client_ca, "client CA")
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
        _require_client_certificates(quic)

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
        leaf, intermediates = _client_certificates(quic)
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
        object.__setattr__(self, "_ca_pem", _pem(_load_certificates(self.ca, "CA")))
        if (self.cert is None) != (self.key is None):
            raise TLSConfigError("ClientTLS needs both cert and key for mutual TLS, or neither")
        chain: list[x509.Certificate] = []
        key: PrivateKey | None = None
        if self.cert is not None and self.key is not None:
            chain, key = _load_identity(self.cert, self.key, "client")
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
