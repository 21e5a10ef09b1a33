"""A private CA and a server certificate it issues, for test servers such as nginx.

Made by the code the Graph emulator makes its own with (`presencebridge.emulator.tls`),
so the tests keep no second copy of it: an ECDSA P-256 CA and a server certificate
for `names`, the chain (server certificate, then CA) in one file, the key 0600.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from presencebridge.emulator.tls import ensure_tls


@dataclass(frozen=True)
class Certificate:
    ca_file: Path  # what clients trust
    chain_file: Path  # server certificate + CA, as in /etc/ssl/.../fullchain.pem
    key_file: Path


def make_certificate(
    folder: Path, names: tuple[str, ...] = ("127.0.0.1", "localhost")
) -> Certificate:
    """A private CA in `folder` and a server certificate it issues for `names`."""
    files = ensure_tls(folder, names)
    return Certificate(files.ca_file, files.cert_file, files.key_file)
