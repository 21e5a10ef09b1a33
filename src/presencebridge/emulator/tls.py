"""Key material of the emulator: a private CA, a server certificate it issues, a JWT key.

msal accepts only https authorities, so the emulator serves TLS with a certificate
for 127.0.0.1 and localhost issued by a CA of its own; clients trust `ca.pem`
rather than switching verification off. Everything is kept in one folder and
reused while valid, so a client that trusted the CA once keeps working across
restarts, and tokens signed before a restart still verify after it.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_LIFETIME = timedelta(days=3650)
SERVER_LIFETIME = timedelta(days=397)
# Reissue well before expiry so a long-running emulator does not lapse mid-demo.
RENEW_MARGIN = timedelta(days=30)
DEFAULT_NAMES = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class TlsFiles:
    directory: Path
    ca_file: Path  # the CA certificate clients trust
    cert_file: Path  # the server certificate followed by the CA certificate
    key_file: Path  # the server's private key (0600)
    signing_key_file: Path  # RSA key that signs tokens (0600)


def _write(path: Path, data: bytes, private: bool) -> None:
    """Atomically replace `path`; private files are created 0600 from the start."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    try:
        os.write(fd, data)
        if private:
            os.fchmod(fd, 0o600)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


@contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """Serialise makers sharing one folder (several emulators starting at once)."""
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks; concurrent first starts are rare
        yield
        return
    with (directory / ".lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _key_pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _san_entries(names: Sequence[str]) -> list[x509.GeneralName]:
    entries: list[x509.GeneralName] = []
    for name in names:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            entries.append(x509.DNSName(name))
    return entries


def _make_ca(now: datetime) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "presencebridge"),
            x509.NameAttribute(NameOID.COMMON_NAME, "presencebridge Graph emulator CA"),
        ]
    )
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + CA_LIFETIME)
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
    return key, cert


def _make_server(
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    names: Sequence[str],
    now: datetime,
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_cert.subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + SERVER_LIFETIME)
        .add_extension(x509.SubjectAlternativeName(_san_entries(names)), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=True,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return key, cert


def _same_public_key(
    cert: x509.Certificate, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
) -> bool:
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    return cert.public_key().public_bytes(der, spki) == key.public_key().public_bytes(der, spki)


def _load_ca(files: TlsFiles, now: datetime) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """The existing CA if it is intact and valid for a while yet, else a new one."""
    ca_key_file = files.directory / "ca-key.pem"
    try:
        cert = x509.load_pem_x509_certificate(files.ca_file.read_bytes())
        key = serialization.load_pem_private_key(ca_key_file.read_bytes(), password=None)
        if (
            isinstance(key, ec.EllipticCurvePrivateKey)
            and _same_public_key(cert, key)
            and cert.not_valid_after_utc > now + RENEW_MARGIN
        ):
            return key, cert
    except (OSError, ValueError):
        pass
    key, cert = _make_ca(now)
    _write(ca_key_file, _key_pem(key), private=True)
    _write(files.ca_file, cert.public_bytes(serialization.Encoding.PEM), private=False)
    return key, cert


def _server_usable(
    files: TlsFiles, ca_cert: x509.Certificate, names: Sequence[str], now: datetime
) -> bool:
    try:
        cert = x509.load_pem_x509_certificate(files.cert_file.read_bytes())
        key = serialization.load_pem_private_key(files.key_file.read_bytes(), password=None)
        cert.verify_directly_issued_by(ca_cert)
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (OSError, ValueError, TypeError, InvalidSignature, x509.ExtensionNotFound):
        return False
    present = set(san.get_values_for_type(x509.DNSName)) | {
        str(ip) for ip in san.get_values_for_type(x509.IPAddress)
    }
    wanted = {str(e.value) for e in _san_entries(names)}
    return (
        isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey)
        and _same_public_key(cert, key)
        and wanted <= present
        and cert.not_valid_after_utc > now + RENEW_MARGIN
    )


def _load_signing_key(path: Path) -> rsa.RSAPrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if isinstance(key, rsa.RSAPrivateKey) and key.key_size >= 2048:
            return key
    except (OSError, ValueError):
        pass
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    _write(path, _key_pem(key), private=True)
    return key


def server_names(host: str) -> tuple[str, ...]:
    """The names the certificate must carry when listening on `host`."""
    if host in ("", "0.0.0.0", "::") or host in DEFAULT_NAMES:
        return DEFAULT_NAMES
    return (*DEFAULT_NAMES, host)


def ensure_tls(
    directory: Path, names: Sequence[str] = DEFAULT_NAMES, now: datetime | None = None
) -> TlsFiles:
    """Make (or reuse) the CA, the server certificate for `names` and the signing key."""
    now = now or datetime.now(UTC)
    if not directory.exists():
        # Private from the start; an existing folder (the admin's choice) is left as it is.
        directory.mkdir(parents=True, mode=0o700)
    files = TlsFiles(
        directory=directory,
        ca_file=directory / "ca.pem",
        cert_file=directory / "server.pem",
        key_file=directory / "server-key.pem",
        signing_key_file=directory / "signing-key.pem",
    )
    with _locked(directory):
        ca_key, ca_cert = _load_ca(files, now)
        if not _server_usable(files, ca_cert, names, now):
            key, cert = _make_server(ca_key, ca_cert, names, now)
            _write(files.key_file, _key_pem(key), private=True)
            chain = cert.public_bytes(serialization.Encoding.PEM) + ca_cert.public_bytes(
                serialization.Encoding.PEM
            )
            _write(files.cert_file, chain, private=False)
        _load_signing_key(files.signing_key_file)
    return files


def load_signing_key(files: TlsFiles) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(files.signing_key_file.read_bytes(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError(f"{files.signing_key_file} is not an RSA key")
    return key
