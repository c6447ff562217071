"""rpcnet's reliance on aioquic internals for mutual TLS (see `rpcnet_runtime.tls`): checked
once, so an aioquic upgrade fails loudly, not open."""

from __future__ import annotations

import functools
from collections.abc import Callable

from aioquic import tls as aioquic_tls
from aioquic.quic.connection import QuicConnection
from cryptography import x509

from .tls_verify import PeerAuthenticationError

__all__ = ["aioquic_supports_client_auth", "client_certificates", "require_client_certificates"]


@functools.cache
def aioquic_supports_client_auth() -> bool:
    probe = aioquic_tls.Context(is_client=False)
    return (
        "_request_client_certificate" in vars(probe)
        and "_peer_certificate" in vars(probe)
        and "_peer_certificate_chain" in vars(probe)
        and hasattr(QuicConnection, "_initialize")
    )


def require_client_certificates(quic: QuicConnection) -> None:
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


def client_certificates(
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
