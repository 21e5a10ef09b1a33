"""Presence subscriptions: limits, the handshake, rich notifications decrypted with our own key."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, padding, serialization
from cryptography.hazmat.primitives.asymmetric import padding as asym_padding
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.x509.oid import NameOID

from tests.emulator.support import (
    APP_ID,
    PUBLIC_APP_ID,
    TENANT,
    Receiver,
    app_token,
    bearer,
    eventually,
    make_users,
    ok,
    user_tokens,
)

NOTIFICATION_APP = "0bf30f3b-4a52-48df-9a82-234910c4a086"


def emulator_now(control: httpx.Client) -> datetime:
    return datetime.fromisoformat(ok(control.get("/_emulator/clock"))["now"][:26] + "+00:00")


def expiry(control: httpx.Client, minutes: float = 45) -> str:
    return (emulator_now(control) + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def filter_of(*ids: str) -> str:
    return "/communications/presences?$filter=id in (" + ",".join(f"'{i}'" for i in ids) + ")"


def subscribe(
    control: httpx.Client, token: str, receiver: Receiver, resource: str, **extra: Any
) -> httpx.Response:
    body = {
        "changeType": "updated",
        "resource": resource,
        "notificationUrl": receiver.url(),
        "lifecycleNotificationUrl": receiver.url("/lifecycle"),
        "expirationDateTime": expiry(control),
        "clientState": "secret-state",
        **extra,
    }
    return control.post("/v1.0/subscriptions", json=body, headers=bearer(token))


def key_and_certificate() -> tuple[rsa.RSAPrivateKey, str]:
    """What the product makes: an RSA key and a self-signed certificate, base64 DER."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "webhook encryption")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    der = certificate.public_bytes(serialization.Encoding.DER)
    return key, base64.b64encode(der).decode()


def decrypt(content: dict[str, str], key: rsa.RSAPrivateKey) -> dict[str, Any]:
    """Our own reading of a rich notification: unwrap, check the HMAC, then decrypt."""
    symmetric = key.decrypt(
        base64.b64decode(content["dataKey"]),
        asym_padding.OAEP(
            mgf=asym_padding.MGF1(algorithm=hashes.SHA1()),  # noqa: S303
            algorithm=hashes.SHA1(),  # noqa: S303
            label=None,
        ),
    )
    assert len(symmetric) == 32
    data = base64.b64decode(content["data"])
    expected = hmac.new(symmetric, data, hashlib.sha256).digest()
    assert hmac.compare_digest(expected, base64.b64decode(content["dataSignature"]))
    decryptor = Cipher(algorithms.AES(symmetric), modes.CBC(symmetric[:16])).decryptor()
    padded = decryptor.update(data) + decryptor.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    result: dict[str, Any] = json.loads(unpadder.update(padded) + unpadder.finalize())
    return result


def test_application_tokens_cannot_subscribe(control: httpx.Client, receiver: Receiver) -> None:
    make_users(control, "u1")
    response = subscribe(control, app_token(control), receiver, filter_of("u1"))
    assert response.status_code == 403
    assert "application" in response.json()["error"]["message"]
    assert receiver.handshakes == []


def test_subscription_limits(control: httpx.Client, receiver: Receiver) -> None:
    make_users(control, "watcher")
    token = user_tokens(control, "watcher")["access_token"]
    ids = [f"user-{n}" for n in range(651)]
    too_many = subscribe(control, token, receiver, filter_of(*ids))
    assert too_many.status_code == 400 and "650" in too_many.json()["error"]["message"]
    too_long = subscribe(
        control, token, receiver, filter_of("a"), expirationDateTime=expiry(control, 61)
    )
    assert too_long.status_code == 400 and "60 minutes" in too_long.json()["error"]["message"]
    past = subscribe(
        control, token, receiver, filter_of("a"), expirationDateTime=expiry(control, -1)
    )
    assert past.status_code == 400
    bad_resource = subscribe(control, token, receiver, "/users/a/presence")
    assert bad_resource.status_code == 400
    no_certificate = subscribe(control, token, receiver, filter_of("a"), includeResourceData=True)
    assert no_certificate.status_code == 400
    assert "encryptionCertificate" in no_certificate.json()["error"]["message"]
    _, certificate = key_and_certificate()
    no_id = subscribe(
        control,
        token,
        receiver,
        filter_of("a"),
        includeResourceData=True,
        encryptionCertificate=certificate,
    )
    assert no_id.status_code == 400
    assert receiver.handshakes == []  # refused before Graph calls the endpoint
    exactly_650 = subscribe(control, token, receiver, filter_of(*ids[:650]))
    assert exactly_650.status_code == 201, exactly_650.text


def test_the_validation_handshake_must_echo_the_token(
    control: httpx.Client, receiver: Receiver
) -> None:
    make_users(control, "watcher")
    token = user_tokens(control, "watcher")["access_token"]
    wrong = subscribe(
        control, token, receiver, filter_of("a"), notificationUrl=receiver.url("/wrong")
    )
    assert wrong.status_code == 400
    assert wrong.json()["error"]["code"] == "ValidationError"
    unreachable = subscribe(
        control,
        token,
        receiver,
        filter_of("a"),
        notificationUrl="http://127.0.0.1:9/nothing-listens",
    )
    assert unreachable.status_code == 400
    created = ok(subscribe(control, token, receiver, filter_of("a")), 201)
    # /wrong, then both URLs of the subscription, with a token that needed URL-decoding.
    assert len(receiver.handshakes) == 3
    assert receiver.handshakes[-1].startswith("Validation: ")
    assert " " in receiver.handshakes[-1]
    assert created["clientState"] == "secret-state"
    stats = ok(control.get("/_emulator/stats"))["notifications"]
    assert stats["validations_passed"] == 2 and stats["validations_failed"] == 2


def test_rich_notification_round_trip(control: httpx.Client, receiver: Receiver) -> None:
    make_users(control, "watcher", "alice", "bob")
    signed_in = user_tokens(control, "watcher")
    key, certificate = key_and_certificate()
    created = ok(
        subscribe(
            control,
            signed_in["access_token"],
            receiver,
            filter_of("alice", "bob"),
            includeResourceData=True,
            encryptionCertificate=certificate,
            encryptionCertificateId="cert-1",
        ),
        201,
    )
    ok(
        control.post(
            "/_emulator/users/alice/client", json={"availability": "Busy", "activity": "InACall"}
        )
    )
    path, body = receiver.next()
    assert path == "/ok"
    [item] = body["value"]
    assert item["subscriptionId"] == created["id"]
    assert item["clientState"] == "secret-state"
    assert item["changeType"] == "updated"
    assert item["resource"] == "communications/presences('alice')"
    assert item["resourceData"]["id"] == "alice"
    assert item["resourceData"]["@odata.type"] == "#Microsoft.Graph.presence"
    assert item["subscriptionExpirationDateTime"] == created["expirationDateTime"]
    content = item["encryptedContent"]
    assert content["encryptionCertificateId"] == "cert-1"
    thumbprint = x509.load_der_x509_certificate(base64.b64decode(certificate)).fingerprint(
        hashes.SHA1()  # noqa: S303
    )
    assert content["encryptionCertificateThumbprint"] == thumbprint.hex().upper()
    presence = decrypt(content, key)
    assert (presence["id"], presence["availability"], presence["activity"]) == (
        "alice",
        "Busy",
        "InACall",
    )
    assert presence["sequenceNumber"]
    # The validation token: signed with the published key, for our app, by Graph's notifier.
    [validation] = body["validationTokens"]
    config = ok(control.get(f"/{TENANT}/v2.0/.well-known/openid-configuration"))
    keys = ok(control.get(f"/{TENANT}/discovery/v2.0/keys"))["keys"]
    header = jwt.get_unverified_header(validation)
    jwk = next(jwt.PyJWK(k) for k in keys if k["kid"] == header["kid"])
    claims = jwt.decode(
        validation, jwk.key, algorithms=["RS256"], audience=PUBLIC_APP_ID, issuer=config["issuer"]
    )
    assert claims["azp"] == NOTIFICATION_APP
    assert claims["exp"] - claims["iat"] == 3600
    assert item["tenantId"] == claims["tid"]
    with pytest.raises(jwt.InvalidAudienceError):
        jwt.decode(validation, jwk.key, algorithms=["RS256"], audience=APP_ID)
    # Bob is watched too; a change by the app shows up the same way.
    ok(
        control.post(
            "/v1.0/users/bob/presence/setPresence",
            json={"sessionId": APP_ID, "availability": "DoNotDisturb", "activity": "Presenting"},
            headers=bearer(app_token(control)),
        )
    )
    _, body = receiver.next()
    assert decrypt(body["value"][0]["encryptedContent"], key)["activity"] == "Presenting"
    eventually(
        lambda: ok(control.get("/_emulator/stats"))["notifications"]["sent"], lambda sent: sent == 2
    )


def test_basic_notifications_carry_no_presence_and_time_changes_notify(
    control: httpx.Client, receiver: Receiver
) -> None:
    make_users(control, "watcher", "carol")
    token = user_tokens(control, "watcher")["access_token"]
    ok(subscribe(control, token, receiver, "/communications/presences/carol"), 201)
    ok(control.post("/_emulator/users/carol/client", json={"availability": "Offline"}))
    _, first = receiver.next()
    assert "validationTokens" not in first
    assert "encryptedContent" not in first["value"][0]
    assert set(first["value"][0]["resourceData"]) == {"@odata.type", "@odata.id", "id"}
    ok(
        control.post(
            "/v1.0/users/carol/presence/setPresence",
            json={
                "sessionId": APP_ID,
                "availability": "Available",
                "activity": "Available",
                "expirationDuration": "PT1H",
            },
            headers=bearer(app_token(control)),
        )
    )
    receiver.next()
    # Only the clock moves: the session fades, and that is a change like any other.
    ok(control.post("/_emulator/clock", json={"advance_seconds": 300}))
    _, faded = receiver.next()
    assert faded["value"][0]["resource"] == "communications/presences('carol')"
    presence = ok(control.get("/v1.0/users/carol/presence", headers=bearer(token)))
    assert presence["activity"] == "AvailableInactive"


def test_one_subscription_per_user_and_app_and_its_management(
    control: httpx.Client, receiver: Receiver
) -> None:
    make_users(control, "watcher", "dave")
    token = user_tokens(control, "watcher")["access_token"]
    created = ok(subscribe(control, token, receiver, filter_of("dave")), 201)
    second = subscribe(control, token, receiver, filter_of("dave"))
    assert second.status_code == 409
    assert created["id"] in second.json()["error"]["message"]
    other_app = user_tokens(control, "watcher", client_id="another-public-app")["access_token"]
    ok(subscribe(control, other_app, receiver, filter_of("dave")), 201)
    listed = ok(control.get("/v1.0/subscriptions", headers=bearer(token)))["value"]
    assert [s["id"] for s in listed] == [created["id"]]
    sub_url = f"/v1.0/subscriptions/{created['id']}"
    too_far = control.patch(
        sub_url, json={"expirationDateTime": expiry(control, 90)}, headers=bearer(token)
    )
    assert too_far.status_code == 400
    renewed = ok(
        control.patch(
            sub_url, json={"expirationDateTime": expiry(control, 59)}, headers=bearer(token)
        )
    )
    assert renewed["expirationDateTime"] > created["expirationDateTime"]
    assert control.get(sub_url, headers=bearer(other_app)).status_code == 404
    assert control.delete(sub_url, headers=bearer(token)).status_code == 204
    assert control.get(sub_url, headers=bearer(token)).status_code == 404
    stats = ok(control.get("/_emulator/stats"))["subscriptions"]
    assert (stats["created"], stats["renewed"], stats["deleted"], stats["active"]) == (2, 1, 1, 1)


def test_lifecycle_events_and_silent_drop(control: httpx.Client, receiver: Receiver) -> None:
    make_users(control, "watcher", "erin")
    token = user_tokens(control, "watcher")["access_token"]
    created = ok(subscribe(control, token, receiver, filter_of("erin")), 201)
    sid = created["id"]
    ok(
        control.post(
            f"/_emulator/subscriptions/{sid}/lifecycle", json={"event": "reauthorizationRequired"}
        )
    )
    path, body = receiver.next()
    assert path == "/lifecycle"
    assert body["value"][0]["lifecycleEvent"] == "reauthorizationRequired"
    assert body["value"][0]["subscriptionId"] == sid
    assert body["value"][0]["clientState"] == "secret-state"
    bad = control.post(f"/_emulator/subscriptions/{sid}/lifecycle", json={"event": "nap"})
    assert bad.status_code == 422
    # Dropped: still listed and renewable, but nothing arrives any more.
    ok(control.post(f"/_emulator/subscriptions/{sid}/drop"))
    ok(
        control.post(
            "/_emulator/users/erin/client", json={"availability": "Away", "activity": "Away"}
        )
    )
    assert receiver.nothing_within(1.0)
    assert ok(control.get(f"/v1.0/subscriptions/{sid}", headers=bearer(token)))["id"] == sid
    assert ok(control.get("/_emulator/stats"))["notifications"]["suppressed"] == 1
    ok(
        control.post(
            f"/_emulator/subscriptions/{sid}/lifecycle", json={"event": "subscriptionRemoved"}
        )
    )
    _, removed = receiver.next()
    assert removed["value"][0]["lifecycleEvent"] == "subscriptionRemoved"
    assert control.get(f"/v1.0/subscriptions/{sid}", headers=bearer(token)).status_code == 404


def test_expired_subscriptions_stop_and_failures_are_counted(
    control: httpx.Client, receiver: Receiver
) -> None:
    make_users(control, "watcher", "frank", "gina")
    token = user_tokens(control, "watcher")["access_token"]
    ok(
        subscribe(
            control, token, receiver, filter_of("frank"), expirationDateTime=expiry(control, 10)
        ),
        201,
    )
    other = user_tokens(control, "watcher", client_id="failing-app")["access_token"]
    ok(
        subscribe(
            control, other, receiver, filter_of("gina"), notificationUrl=receiver.url("/fail")
        ),
        201,
    )
    ok(
        control.post(
            "/_emulator/users/gina/client", json={"availability": "Away", "activity": "Away"}
        )
    )
    ok(control.post("/_emulator/clock", json={"advance_seconds": 600}))
    ok(
        control.post(
            "/_emulator/users/frank/client", json={"availability": "Away", "activity": "Away"}
        )
    )
    assert receiver.nothing_within(1.0)
    stats = eventually(
        lambda: ok(control.get("/_emulator/stats")), lambda s: s["notifications"]["failed"] >= 1
    )
    assert stats["subscriptions"]["expired"] == 1
    assert stats["notifications"]["sent"] == 0
