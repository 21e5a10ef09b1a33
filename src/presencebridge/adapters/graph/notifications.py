"""Rich change notifications: the hub's encryption key, decryption, and their checks.

Graph encrypts presence data for us (GRAPH.md): RSA-OAEP (SHA-1) wraps a random
key, the data is AES-CBC/PKCS7 with IV = the key's first 16 bytes, and an
HMAC-SHA256 of the encrypted bytes under that key signs it. The signature is
checked before anything is decrypted.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import ssl
import time
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, padding, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.padding import MGF1, OAEP
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.x509.oid import NameOID

# The app Graph uses to sign validation tokens of change notifications.
GRAPH_NOTIFICATION_APP = "0bf30f3b-4a52-48df-9a82-234910c4a086"


class NotificationRejected(ValueError):
    """A notification that fails a check; the reason is safe to log and answer."""


@dataclass
class NotificationKeys:
    """A key pair and self-signed certificate made at start; the private key never leaves memory."""

    private_key: rsa.RSAPrivateKey
    certificate: x509.Certificate
    certificate_id: str = field(default_factory=lambda: uuid.uuid4().hex)

    @classmethod
    def generate(cls, now: datetime | None = None) -> NotificationKeys:
        now = now or datetime.now(UTC)
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "presencebridge notifications")])
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=365))
            .sign(key, hashes.SHA256())
        )
        return cls(key, certificate)

    def certificate_base64(self) -> str:
        der = self.certificate.public_bytes(serialization.Encoding.DER)
        return base64.b64encode(der).decode()


def decrypt(content: dict[str, Any], keys: NotificationKeys) -> dict[str, Any]:
    """The resource data of a rich notification; raises NotificationRejected."""
    try:
        data = base64.b64decode(content["data"], validate=True)
        signature = base64.b64decode(content["dataSignature"], validate=True)
        wrapped = base64.b64decode(content["dataKey"], validate=True)
    except (KeyError, TypeError, ValueError) as error:
        raise NotificationRejected(f"malformed encryptedContent: {error}") from None
    if content.get("encryptionCertificateId") not in (None, keys.certificate_id):
        raise NotificationRejected("encrypted for a certificate the hub does not hold")
    try:
        key = keys.private_key.decrypt(
            wrapped,
            OAEP(mgf=MGF1(algorithm=hashes.SHA1()), algorithm=hashes.SHA1(), label=None),  # noqa: S303
        )
    except ValueError:
        raise NotificationRejected("dataKey cannot be unwrapped with the hub's key") from None
    expected = hmac.new(key, data, hashlib.sha256).digest()
    if not hmac.compare_digest(expected, signature):
        raise NotificationRejected("dataSignature does not match")
    try:
        decryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).decryptor()
        padded = decryptor.update(data) + decryptor.finalize()
        unpadder = padding.PKCS7(128).unpadder()
        plain = unpadder.update(padded) + unpadder.finalize()
        result = json.loads(plain)
    except ValueError as error:
        raise NotificationRejected(f"encrypted data cannot be read: {error}") from None
    if not isinstance(result, dict):
        raise NotificationRejected("encrypted data is not a resource")
    return result


class ValidationTokenVerifier:
    """Checks the JWTs Graph attaches to notifications: signature, expiry, audience."""

    def __init__(self, jwks_uri: str, audience: str, ca_bundle: Path | None = None) -> None:
        context = ssl.create_default_context(cafile=str(ca_bundle) if ca_bundle else None)
        self._jwks = jwt.PyJWKClient(jwks_uri, cache_keys=True, ssl_context=context)
        self.audience = audience

    def verify(self, token: str) -> None:
        try:
            signing_key = self._jwks.get_signing_key_from_jwt(token)
            claims = jwt.decode(
                token,
                signing_key.key,
                algorithms=["RS256"],
                audience=self.audience,
                options={"require": ["exp", "aud", "iss"]},
            )
        except jwt.PyJWTError as error:
            raise NotificationRejected(f"validation token refused: {error}") from None
        if claims.get("azp", claims.get("appid")) != GRAPH_NOTIFICATION_APP:
            raise NotificationRejected("validation token was not issued for Graph notifications")


def content_digest(content: dict[str, Any]) -> bytes:
    """What identifies a rich notification: its encrypted data, fixed by the dataSignature.

    The data is encrypted under a fresh random key for every notification, so two
    deliveries with the same `data` are one notification sent twice. The unsigned parts
    around it (subscriptionId, resource) do not count: changing them makes no new
    notification.
    """
    return hashlib.sha256(str(content.get("data", "")).encode()).digest()


class ReplayGuard:
    """Remembers the rich notifications the hub accepted, so a second delivery is refused.

    Validation tokens prove only that Graph sent *some* notification lately; they are
    not bound to the content, so an old `encryptedContent` under a fresh token would
    pass every other check. Each accepted digest is therefore kept for `max_age`
    seconds (well past Graph's 4 h of retries); past `capacity` digests the oldest are
    forgotten first. Basic and lifecycle notifications carry nothing to replay: the
    former no data, the latter only make the hub renew or re-create a subscription.
    """

    def __init__(self, max_age: float = 24 * 3600, capacity: int = 200_000) -> None:
        self.max_age = max_age
        self.capacity = capacity
        self._seen: OrderedDict[bytes, float] = OrderedDict()  # digest -> when accepted

    def __len__(self) -> int:
        return len(self._seen)

    def claim(self, digests: Sequence[bytes], now: float | None = None) -> bool:
        """Remember `digests`; False (and nothing remembered) if any was seen before."""
        now = time.monotonic() if now is None else now
        while self._seen:
            oldest, accepted = next(iter(self._seen.items()))
            if now - accepted < self.max_age:
                break
            del self._seen[oldest]
        if len(set(digests)) != len(digests) or any(d in self._seen for d in digests):
            return False
        for digest in digests:
            self._seen[digest] = now
        while len(self._seen) > self.capacity:
            self._seen.popitem(last=False)
        return True

    def release(self, digests: Sequence[bytes]) -> None:
        """Forget `digests` again (the hub could not apply them; Graph will retry)."""
        for digest in digests:
            self._seen.pop(digest, None)
