"""Development certificates: a private CA with a server and a client certificate.

`write_dev_certs` backs ``rpcnet certs DIR``: it writes a fresh ECDSA P-256 CA plus a server
certificate for the local host names and a client certificate for mutual TLS, so that a
quickstart needs nothing but rpcnet. The pure builders (`generate_ca`, `issue_certificate`) take
the current time as an argument and are what tests use to make expired or foreign certificates.

Keys are written with mode 0600 and certificates with 0644; nothing is overwritten unless asked.
These certificates are for development: anyone holding ``ca.key`` can mint identities that a
server trusting ``ca.pem`` accepts.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = [
    "CertificateFilesExist",
    "DevCerts",
    "generate_ca",
    "issue_certificate",
    "write_dev_certs",
]

#: Certificates start this long before "now", to tolerate clock skew between machines.
_BACKDATE = datetime.timedelta(minutes=5)

_FILE_NAMES = {
    "ca_cert": "ca.pem",
    "ca_key": "ca.key",
    "server_cert": "server.pem",
    "server_key": "server.key",
    "client_cert": "client.pem",
    "client_key": "client.key",
}


class CertificateFilesExist(FileExistsError):
    """`write_dev_certs` found files it would overwrite; `paths` lists them."""

    def __init__(self, paths: list[str]) -> None:
        super().__init__(
            f"refusing to overwrite existing files: {', '.join(paths)} "
            "(pass overwrite=True to replace them)"
        )
        self.paths = paths


@dataclass(frozen=True)
class DevCerts:
    """Paths (as str) of the files `write_dev_certs` wrote."""

    directory: str
    ca_cert: str
    """The CA certificate: give it to `ClientTLS(ca=...)` and `ServerTLS(client_ca=...)`."""
    ca_key: str
    """The CA's private key (keep it private; it can mint any identity)."""
    server_cert: str
    server_key: str
    client_cert: str
    client_key: str

    @property
    def ca(self) -> str:
        """Alias of `ca_cert`."""
        return self.ca_cert


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


_DNS_NAME = re.compile(
    r"(\*\.)?([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*"
    r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.?"
)
#: X.509 caps a common name at 64 characters (RFC 5280 ub-common-name).
_MAX_COMMON_NAME = 64


def _general_names(hosts: Iterable[str]) -> list[x509.GeneralName]:
    """Subject alternative names for `hosts`: IP addresses, else ASCII DNS names."""
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
            continue
        except ValueError:
            pass
        if len(host) > 253 or not _DNS_NAME.fullmatch(host):
            raise ValueError(
                f"invalid host name {host!r}: use an IP address or an ASCII DNS name "
                "(punycode for international names)"
            )
        names.append(x509.DNSName(host))
    return names


def _check_common_name(name: str, what: str) -> None:
    if not name or len(name) > _MAX_COMMON_NAME:
        raise ValueError(f"{what} must be 1 to at most {_MAX_COMMON_NAME} characters: {name!r}")


def generate_ca(
    common_name: str | None = None,
    *,
    now: datetime.datetime,
    days: int = 365,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """Return a self-signed CA certificate and its key, valid from `now` for `days` days.

    Without `common_name` the CA is named ``rpcnet development CA <8 hex digits>``, so that two
    development CAs never share a name.
    """
    if days < 1:
        raise ValueError(f"days must be at least 1, got {days}")
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key()
    if common_name is None:
        tag = x509.SubjectKeyIdentifier.from_public_key(public).digest[:4].hex()
        common_name = f"rpcnet development CA {tag}"
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def issue_certificate(
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    *,
    common_name: str,
    hosts: Sequence[str] = (),
    server: bool = False,
    client: bool = False,
    now: datetime.datetime,
    days: int = 365,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """Issue an end-entity certificate signed by `ca_cert`/`ca_key`.

    `hosts` become subject alternative names (IP addresses or DNS names); `server` and `client`
    select the extended key usages (serverAuth, clientAuth). Validity starts at `now` (minus a
    small allowance for clock skew) and lasts `days` days.
    """
    if days < 1:
        raise ValueError(f"days must be at least 1, got {days}")
    if not (server or client):
        raise ValueError("a certificate must be issued for server or client use (or both)")
    _check_common_name(common_name, "common_name")
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key()
    usages = [ExtendedKeyUsageOID.SERVER_AUTH] if server else []
    if client:
        usages.append(ExtendedKeyUsageOID.CLIENT_AUTH)
    ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca_cert.subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
    )
    names = _general_names(hosts)
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(ca_key, hashes.SHA256()), key


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write_file(path: Path, data: bytes, mode: int) -> None:
    """Write `data` to `path` atomically with permissions `mode` from the start."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, mode)  # the umask may have narrowed it; never widened beyond `mode`
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _prepare_directory(directory: Path) -> None:
    if directory.exists() and not directory.is_dir():
        raise NotADirectoryError(f"{directory} exists and is not a directory")
    try:
        directory.mkdir(mode=0o755, parents=True, exist_ok=True)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise type(exc)(f"cannot create directory {directory}: {reason}") from None
    if not os.access(directory, os.W_OK | os.X_OK):
        raise PermissionError(f"directory {directory} is not writable")


def write_dev_certs(
    directory: str | Path,
    *,
    hosts: Sequence[str] = ("localhost", "127.0.0.1", "::1"),
    client_name: str = "rpcnet-dev-client",
    days: int = 365,
    overwrite: bool = False,
    now: datetime.datetime | None = None,
) -> DevCerts:
    """Write a development CA, a server and a client certificate (PEM) into `directory`.

    Files: ``ca.pem``/``ca.key``, ``server.pem``/``server.key`` (serverAuth, with `hosts` as
    subject alternative names) and ``client.pem``/``client.key`` (clientAuth, subject
    ``CN=<client_name>``). Keys get mode 0600. The directory is created if missing. Raises
    `CertificateFilesExist` (a `FileExistsError`) when any of the files exists and `overwrite`
    is false, and an `OSError` with a clear message when the directory cannot be used.
    """
    if isinstance(hosts, str):
        raise TypeError("hosts must be a sequence of host names, not a single string")
    if not hosts:
        raise ValueError("at least one host name is needed for the server certificate")
    _general_names(hosts)  # checks every host before anything is written
    _check_common_name(client_name, "client_name")
    if days < 1:
        raise ValueError(f"days must be at least 1, got {days}")
    root = Path(directory)
    paths = {field: root / name for field, name in _FILE_NAMES.items()}
    _prepare_directory(root)
    existing = sorted(str(p) for p in paths.values() if p.exists() or p.is_symlink())
    if existing and not overwrite:
        raise CertificateFilesExist(existing)

    when = now if now is not None else datetime.datetime.now(datetime.UTC)
    ca_cert, ca_key = generate_ca(now=when, days=days)
    server_cert, server_key = issue_certificate(
        ca_cert,
        ca_key,
        common_name=hosts[0][:_MAX_COMMON_NAME],
        hosts=hosts,
        server=True,
        now=when,
        days=days,
    )
    client_cert, client_key = issue_certificate(
        ca_cert, ca_key, common_name=client_name, client=True, now=when, days=days
    )

    # Keys first, so a failure never leaves a certificate without its key.
    _write_file(paths["ca_key"], _key_pem(ca_key), 0o600)
    _write_file(paths["server_key"], _key_pem(server_key), 0o600)
    _write_file(paths["client_key"], _key_pem(client_key), 0o600)
    _write_file(paths["ca_cert"], _cert_pem(ca_cert), 0o644)
    _write_file(paths["server_cert"], _cert_pem(server_cert), 0o644)
    _write_file(paths["client_cert"], _cert_pem(client_cert), 0o644)
    return DevCerts(directory=str(root), **{k: str(v) for k, v in paths.items()})
