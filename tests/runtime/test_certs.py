"""Development certificates: files, permissions, a chain that verifies, and safe overwriting."""

from __future__ import annotations

import datetime
import ipaddress
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import PolicyBuilder, Store

from rpcnet_runtime.certs import CertificateFilesExist, DevCerts, write_dev_certs
from rpcnet_runtime.tls import verify_client_chain

FIXED_NOW = datetime.datetime(2030, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
FILES = {"ca.pem", "ca.key", "server.pem", "server.key", "client.pem", "client.key"}


def _cert(path: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(Path(path).read_bytes())


def _key(path: str) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key


def _eku(cert: x509.Certificate) -> set[x509.ObjectIdentifier]:
    return set(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> DevCerts:
    return write_dev_certs(tmp_path_factory.mktemp("certs") / "nested" / "dir", now=FIXED_NOW)


def test_writes_the_six_files_and_nothing_else(written: DevCerts) -> None:
    directory = Path(written.directory)
    assert {p.name for p in directory.iterdir()} == FILES
    assert written.ca == written.ca_cert == str(directory / "ca.pem")
    assert written.server_key == str(directory / "server.key")


def test_keys_are_private_and_certificates_readable(written: DevCerts) -> None:
    for path in (written.ca_key, written.server_key, written.client_key):
        assert stat.S_IMODE(Path(path).stat().st_mode) == 0o600, path
    for path in (written.ca_cert, written.server_cert, written.client_cert):
        assert stat.S_IMODE(Path(path).stat().st_mode) == 0o644, path


def test_keys_match_certificates_and_are_p256(written: DevCerts) -> None:
    pairs = [
        (written.ca_cert, written.ca_key),
        (written.server_cert, written.server_key),
        (written.client_cert, written.client_key),
    ]
    for cert_path, key_path in pairs:
        key = _key(key_path)
        assert isinstance(key.curve, ec.SECP256R1)
        assert _cert(cert_path).public_key() == key.public_key()


def test_server_certificate_verifies_for_local_names(written: DevCerts) -> None:
    store = Store([_cert(written.ca_cert)])
    server = _cert(written.server_cert)
    when = FIXED_NOW + datetime.timedelta(days=1)
    subjects: list[x509.DNSName | x509.IPAddress] = [x509.DNSName("localhost")]
    subjects += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ("127.0.0.1", "::1")]
    for subject in subjects:
        verifier = PolicyBuilder().store(store).time(when).build_server_verifier(subject)
        chain = verifier.verify(server, [])
        assert chain[-1] == _cert(written.ca_cert)
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert set(san.get_values_for_type(x509.IPAddress)) == {
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    }
    assert _eku(server) == {ExtendedKeyUsageOID.SERVER_AUTH}


def test_client_certificate_verifies_for_client_auth(written: DevCerts) -> None:
    ca = _cert(written.ca_cert)
    client = _cert(written.client_cert)
    subject = verify_client_chain(client, [], trusted=[ca], store=Store([ca]), now=FIXED_NOW)
    assert subject == client.subject.rfc4514_string() == "CN=rpcnet-dev-client"
    assert _eku(client) == {ExtendedKeyUsageOID.CLIENT_AUTH}


def test_ca_is_a_constrained_ca(written: DevCerts) -> None:
    ca = _cert(written.ca_cert)
    constraints = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca and constraints.value.path_length == 0
    assert ca.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
    for leaf in (_cert(written.server_cert), _cert(written.client_cert)):
        assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        leaf.verify_directly_issued_by(ca)


def test_validity_follows_now_and_days(tmp_path: Path) -> None:
    certs = write_dev_certs(tmp_path, days=10, now=FIXED_NOW)
    for path in (certs.ca_cert, certs.server_cert, certs.client_cert):
        cert = _cert(path)
        assert cert.not_valid_before_utc <= FIXED_NOW
        assert FIXED_NOW - cert.not_valid_before_utc <= datetime.timedelta(minutes=10)
        assert cert.not_valid_after_utc == FIXED_NOW + datetime.timedelta(days=10)


def test_custom_hosts_and_client_name(tmp_path: Path) -> None:
    certs = write_dev_certs(tmp_path, hosts=["api.test", "10.1.2.3"], client_name="alice")
    server = _cert(certs.server_cert)
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["api.test"]
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("10.1.2.3")]
    assert server.subject.rfc4514_string() == "CN=api.test"
    assert _cert(certs.client_cert).subject.rfc4514_string() == "CN=alice"


def test_refuses_to_overwrite_without_overwrite(tmp_path: Path) -> None:
    first = write_dev_certs(tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(CertificateFilesExist, match="refusing to overwrite") as failure:
        write_dev_certs(tmp_path)
    assert isinstance(failure.value, FileExistsError)
    assert sorted(Path(p).name for p in failure.value.paths) == sorted(FILES)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    second = write_dev_certs(tmp_path, overwrite=True)
    assert Path(second.ca_cert).read_bytes() != before["ca.pem"]
    assert second == first  # same paths, new contents
    assert {p.name for p in tmp_path.iterdir()} == FILES  # no temporary files left behind


def test_a_single_existing_file_blocks_writing(tmp_path: Path) -> None:
    (tmp_path / "client.key").write_text("mine")
    with pytest.raises(CertificateFilesExist, match=r"client\.key"):
        write_dev_certs(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["client.key"]
    assert (tmp_path / "client.key").read_text() == "mine"


def test_two_dev_cas_have_different_names(tmp_path: Path) -> None:
    a = write_dev_certs(tmp_path / "a")
    b = write_dev_certs(tmp_path / "b")
    assert _cert(a.ca_cert).subject != _cert(b.ca_cert).subject


def test_directory_that_is_a_file(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(NotADirectoryError, match="not a directory"):
        write_dev_certs(target)
    with pytest.raises(OSError, match="cannot create directory"):
        write_dev_certs(target / "sub")


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"hosts": "localhost"}, TypeError, "sequence"),
        ({"hosts": ()}, ValueError, "at least one host"),
        ({"hosts": ("",)}, ValueError, "invalid host name"),
        ({"hosts": ("bad host",)}, ValueError, "invalid host name"),
        ({"hosts": ("münchen.de",)}, ValueError, "invalid host name"),
        ({"client_name": "x" * 65}, ValueError, "at most 64"),
        ({"client_name": ""}, ValueError, "client_name"),
        ({"days": 0}, ValueError, "days"),
    ],
)
def test_bad_arguments(
    tmp_path: Path, kwargs: dict[str, object], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        write_dev_certs(tmp_path, **kwargs)  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []
