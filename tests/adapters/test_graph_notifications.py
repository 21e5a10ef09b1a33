"""Rich-notification decryption against data encrypted here, the way GRAPH.md describes."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, padding
from cryptography.hazmat.primitives.asymmetric.padding import MGF1, OAEP
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from presencebridge.adapters.graph.notifications import (
    NotificationKeys,
    NotificationRejected,
    ReplayGuard,
    content_digest,
    decrypt,
)

PRESENCE = {"id": "u1", "availability": "Busy", "activity": "InACall", "sequenceNumber": "7"}


def encrypt_like_graph(payload: dict[str, Any], keys: NotificationKeys) -> dict[str, str]:
    key = os.urandom(32)
    padder = padding.PKCS7(128).padder()
    padded = padder.update(json.dumps(payload).encode()) + padder.finalize()
    encryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    data = encryptor.update(padded) + encryptor.finalize()
    wrapped = keys.certificate.public_key().encrypt(  # type: ignore[union-attr]
        key,
        OAEP(mgf=MGF1(algorithm=hashes.SHA1()), algorithm=hashes.SHA1(), label=None),  # noqa: S303 - Graph's scheme
    )
    signature = hmac.new(key, data, hashlib.sha256).digest()
    return {
        "data": base64.b64encode(data).decode(),
        "dataSignature": base64.b64encode(signature).decode(),
        "dataKey": base64.b64encode(wrapped).decode(),
        "encryptionCertificateId": keys.certificate_id,
    }


@pytest.fixture(scope="module")
def keys() -> NotificationKeys:
    return NotificationKeys.generate()


def test_round_trip(keys: NotificationKeys) -> None:
    assert decrypt(encrypt_like_graph(PRESENCE, keys), keys) == PRESENCE


def test_tampered_data_is_refused_before_decryption(keys: NotificationKeys) -> None:
    content = encrypt_like_graph(PRESENCE, keys)
    data = bytearray(base64.b64decode(content["data"]))
    data[0] ^= 1
    content["data"] = base64.b64encode(bytes(data)).decode()
    with pytest.raises(NotificationRejected, match="dataSignature"):
        decrypt(content, keys)


def test_forged_signature_is_refused(keys: NotificationKeys) -> None:
    content = encrypt_like_graph(PRESENCE, keys)
    content["dataSignature"] = base64.b64encode(b"\0" * 32).decode()
    with pytest.raises(NotificationRejected, match="dataSignature"):
        decrypt(content, keys)


def test_data_for_another_key_is_refused(keys: NotificationKeys) -> None:
    other = NotificationKeys.generate()
    content = encrypt_like_graph(PRESENCE, other)
    content["encryptionCertificateId"] = keys.certificate_id
    with pytest.raises(NotificationRejected, match="unwrapped"):
        decrypt(content, keys)
    with pytest.raises(NotificationRejected, match="certificate"):
        decrypt(encrypt_like_graph(PRESENCE, other), keys)


@pytest.mark.parametrize("broken", ["data", "dataKey", "dataSignature"])
def test_malformed_content_is_refused(keys: NotificationKeys, broken: str) -> None:
    content = encrypt_like_graph(PRESENCE, keys)
    content[broken] = "***not base64***"
    with pytest.raises(NotificationRejected, match="malformed"):
        decrypt(content, keys)


def test_replay_guard_refuses_a_second_delivery_until_it_forgets(keys: NotificationKeys) -> None:
    first = content_digest(encrypt_like_graph(PRESENCE, keys))
    second = content_digest(encrypt_like_graph(PRESENCE, keys))  # same presence, new sending
    assert first != second
    guard = ReplayGuard(max_age=60, capacity=2)
    assert guard.claim([first], now=0)
    assert not guard.claim([first], now=59)
    assert not guard.claim([second, second], now=59)  # twice in one batch
    assert guard.claim([second], now=59)
    assert guard.claim([first], now=60)  # older than max_age: forgotten, taken again
    third = content_digest(encrypt_like_graph(PRESENCE, keys))
    assert guard.claim([third], now=61)
    assert len(guard) == 2  # over capacity the oldest (second) went
    assert guard.claim([second], now=62)


def test_replay_guard_forgets_what_could_not_be_applied(keys: NotificationKeys) -> None:
    digest = content_digest(encrypt_like_graph(PRESENCE, keys))
    guard = ReplayGuard()
    assert guard.claim([digest])
    guard.release([digest])
    assert guard.claim([digest])  # Graph's retry of it is taken
