"""Encrypted storage for msal token caches (service accounts, remembered sign-ins).

msal-extensions keeps a token cache in a persistence with file locking. Where the
platform offers a keyring (DPAPI, Keychain, libsecret) its encrypted persistence
is used; a server usually has none, so there the cache is encrypted with a key
derived from PRESENCEBRIDGE_SECRET_KEY. There is no plain-text fallback: without
either, storing is refused with a message that says what to configure.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from msal_extensions import PersistedTokenCache, build_encrypted_persistence
from msal_extensions.persistence import (
    BasePersistence,
    PersistenceDecryptionError,
    PersistenceNotFound,
)


class CredentialStoreUnavailable(RuntimeError):
    """No way to store a token cache encrypted on this machine."""


def _fernet(secret: str, purpose: str) -> Fernet:
    key = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=f"presencebridge:{purpose}".encode()
    ).derive(secret.encode())
    return Fernet(base64.urlsafe_b64encode(key))


class EncryptedFilePersistence(BasePersistence):  # type: ignore[misc]
    """A file whose content is Fernet-encrypted (AES-128-CBC + HMAC-SHA256)."""

    is_encrypted = True

    def __init__(self, location: Path, secret: str) -> None:
        self._location = location
        self._fernet = _fernet(secret, "token-cache")

    def save(self, content: str) -> None:
        self._location.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        data = self._fernet.encrypt(content.encode())
        temporary = self._location.with_suffix(".tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        temporary.replace(self._location)

    def load(self) -> str:
        try:
            data = self._location.read_bytes()
        except FileNotFoundError:
            raise PersistenceNotFound(location=str(self._location)) from None
        try:
            return self._fernet.decrypt(data).decode()
        except InvalidToken:
            raise PersistenceDecryptionError(
                err_no=0,
                message="the token cache cannot be decrypted with this secret key",
                location=str(self._location),
            ) from None

    def time_last_modified(self) -> float:
        try:
            return self._location.stat().st_mtime
        except FileNotFoundError:
            raise PersistenceNotFound(location=str(self._location)) from None

    def get_location(self) -> str:
        return str(self._location)


def token_cache(location: Path, secret: str | None) -> PersistedTokenCache:
    """An msal token cache stored encrypted at `location`; never in plain text."""
    if secret:
        persistence: BasePersistence = EncryptedFilePersistence(location, secret)
    else:
        try:
            persistence = build_encrypted_persistence(str(location))
        except Exception as error:  # each platform's keyring fails in its own way
            raise CredentialStoreUnavailable(
                "no keyring to encrypt the token cache with "
                f"({type(error).__name__}); set PRESENCEBRIDGE_SECRET_KEY"
            ) from None
    return PersistedTokenCache(persistence)
