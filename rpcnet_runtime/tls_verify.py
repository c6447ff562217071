"""Verifying a client's certificate chain: pure (certificates, trust store and time in, the
client's subject or `PeerAuthenticationError` out)."""

from __future__ import annotations

import datetime
import functools

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    PolicyBuilder,
    Store,
    VerificationError,
)

__all__ = ["MAX_CLIENT_CHAIN", "PeerAuthenticationError", "verify_client_chain"]

#: Longest certificate chain (leaf + intermediates) a client may present.
MAX_CLIENT_CHAIN = 8


class PeerAuthenticationError(Exception):
    """The peer failed authentication: no certificate, wrong CA, expired, or similar."""


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
