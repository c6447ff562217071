"""Reading and checking the PEM files of rpcnet's TLS settings (certificates and keys)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeAlias

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

__all__ = [
    "PrivateKey",
    "TLSConfigError",
    "load_certificates",
    "load_identity",
    "load_private_key",
    "pem",
    "read_pem",
]

PrivateKey: TypeAlias = (
    ec.EllipticCurvePrivateKey
    | rsa.RSAPrivateKey
    | ed25519.Ed25519PrivateKey
    | ed448.Ed448PrivateKey
)


#: Largest PEM file rpcnet reads (certificates and keys are a few KiB).
_MAX_PEM_BYTES = 1 << 20


class TLSConfigError(ValueError):
    """A TLS setting is unusable: a missing or unreadable file, bad PEM, or a mismatched key."""


def read_pem(path: str, what: str) -> bytes:
    p = Path(path)
    try:
        if not p.is_file():
            raise TLSConfigError(f"{what} file {path!r} does not exist or is not a file")
        if p.stat().st_size > _MAX_PEM_BYTES:
            raise TLSConfigError(f"{what} file {path!r} is too large to be a PEM file")
        return p.read_bytes()
    except OSError as exc:
        raise TLSConfigError(f"cannot read {what} file {path!r}: {exc.strerror or exc}") from exc


def load_certificates(path: str, what: str) -> list[x509.Certificate]:
    data = read_pem(path, what)
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise TLSConfigError(f"{what} file {path!r} holds no readable PEM certificate") from exc
    if not certs:
        raise TLSConfigError(f"{what} file {path!r} holds no PEM certificate")
    return certs


def load_private_key(path: str, what: str) -> PrivateKey:
    data = read_pem(path, what)
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


def load_identity(cert: str, key: str, role: str) -> tuple[list[x509.Certificate], PrivateKey]:
    chain = load_certificates(cert, f"{role} certificate")
    private_key = load_private_key(key, f"{role} key")
    if _spki(private_key.public_key()) != _spki(chain[0].public_key()):
        raise TLSConfigError(f"{role} key {key!r} does not match the first certificate in {cert!r}")
    return chain, private_key


def pem(certs: list[x509.Certificate]) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)
