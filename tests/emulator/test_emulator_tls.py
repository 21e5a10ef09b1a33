"""The emulator's CA, server certificate and keys; the embedded server over real TLS."""

from __future__ import annotations

import asyncio
import ipaddress
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from presencebridge.emulator.server import EmbeddedEmulator
from presencebridge.emulator.tls import ensure_tls, server_names
from tests.emulator.support import trusting


def _certificates(path: Path) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(path.read_bytes())


def test_the_server_certificate_names_127_0_0_1_and_localhost(tmp_path: Path) -> None:
    files = ensure_tls(tmp_path / "tls")
    ca = x509.load_pem_x509_certificate(files.ca_file.read_bytes())
    server = _certificates(files.cert_file)[0]
    server.verify_directly_issued_by(ca)
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert ipaddress.ip_address("127.0.0.1") in san.get_values_for_type(x509.IPAddress)
    assert "localhost" in san.get_values_for_type(x509.DNSName)
    usage = server.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in usage
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_private_keys_are_0600(tmp_path: Path) -> None:
    files = ensure_tls(tmp_path / "tls")
    for key in (files.key_file, files.signing_key_file, files.directory / "ca-key.pem"):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key
    assert stat.S_IMODE(files.directory.stat().st_mode) == 0o700


def test_valid_material_is_reused(tmp_path: Path) -> None:
    first = ensure_tls(tmp_path / "tls")
    before = {p: p.read_bytes() for p in (first.ca_file, first.cert_file, first.signing_key_file)}
    second = ensure_tls(tmp_path / "tls")
    assert {p: p.read_bytes() for p in before} == before
    assert second == first


def test_a_missing_name_reissues_the_server_certificate_under_the_same_ca(tmp_path: Path) -> None:
    files = ensure_tls(tmp_path / "tls")
    ca_before = files.ca_file.read_bytes()
    ensure_tls(tmp_path / "tls", server_names("emulator.example.test"))
    assert files.ca_file.read_bytes() == ca_before
    server = _certificates(files.cert_file)[0]
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "emulator.example.test" in san.get_values_for_type(x509.DNSName)


def test_material_near_its_end_is_renewed(tmp_path: Path) -> None:
    files = ensure_tls(tmp_path / "tls")
    ca_before = files.ca_file.read_bytes()
    server_before = files.cert_file.read_bytes()
    # A year and a half on, the server certificate (397 days) is due; the CA (10 y) is not.
    ensure_tls(tmp_path / "tls", now=datetime.now(UTC) + timedelta(days=540))
    assert files.ca_file.read_bytes() == ca_before
    assert files.cert_file.read_bytes() != server_before
    # Eleven years on the CA itself is renewed.
    ensure_tls(tmp_path / "tls", now=datetime.now(UTC) + timedelta(days=4000))
    assert files.ca_file.read_bytes() != ca_before


def test_embedded_emulator_serves_https_inside_a_running_loop(tmp_path: Path) -> None:
    async def scenario() -> None:
        embedded = EmbeddedEmulator(tmp_path / "tls")
        await embedded.start()
        try:
            assert embedded.base_url == f"https://127.0.0.1:{embedded.port}"
            assert embedded.graph_url == embedded.base_url + "/v1.0"
            assert embedded.authority == embedded.base_url
            assert embedded.ca_file == tmp_path / "tls" / "ca.pem"
            async with httpx.AsyncClient(verify=trusting(embedded.ca_file)) as client:
                health = await client.get(embedded.base_url + "/_emulator/health")
                assert health.status_code == 200
                localhost = embedded.base_url.replace("127.0.0.1", "localhost")
                config = await client.get(localhost + "/t/v2.0/.well-known/openid-configuration")
                assert config.json()["token_endpoint"].startswith(localhost + "/t/")
                made = await client.post(
                    embedded.base_url + "/_emulator/users", json={"id": "embedded-user"}
                )
                assert made.status_code == 201
            # The same state is reachable in-process.
            assert embedded.emulator.find_user("embedded-user") is not None
        finally:
            await embedded.stop()
        async with httpx.AsyncClient(verify=trusting(embedded.ca_file)) as client:
            try:
                await client.get(embedded.base_url + "/_emulator/health", timeout=2)
            except (httpx.ConnectError, httpx.TimeoutException):
                return  # refused, or no answer at all: either way it no longer serves
        raise AssertionError("the embedded emulator still answers after stop()")

    asyncio.run(scenario())


def test_a_client_without_the_ca_is_refused(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with EmbeddedEmulator(tmp_path / "tls") as embedded:
            async with httpx.AsyncClient(verify=True) as client:
                try:
                    await client.get(embedded.base_url + "/_emulator/health")
                except httpx.ConnectError as error:
                    assert "CERTIFICATE_VERIFY_FAILED" in str(error)
                    return
            raise AssertionError("TLS verification passed without the emulator's CA")

    asyncio.run(scenario())
