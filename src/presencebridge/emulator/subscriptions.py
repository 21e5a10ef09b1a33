"""Presence change notifications: subscriptions, the handshake, encryption, delivery."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import os
import re
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, padding
from cryptography.hazmat.primitives.asymmetric import padding as asym_padding
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from presencebridge.emulator.model import Invalid, graph_time

log = logging.getLogger(__name__)

MAX_IDS = 650
MAX_LIFETIME = timedelta(minutes=60)
HANDSHAKE_TIMEOUT = 10.0
ACK_TIMEOUT = 3.0  # Graph wants a 2xx within 3 s
RETRY_DELAYS = (1.0, 4.0, 16.0)  # Graph retries for hours; enough to ride out a restart
MAX_BATCH = 100
_FILTER = re.compile(r"/?communications/presences\?\$filter=id\s+in\s+\((?P<ids>.*)\)\s*", re.I)
_SINGLE = re.compile(r"/?communications/presences(?:/(?P<a>[^/?()']+)|\('(?P<b>[^']+)'\))", re.I)
_QUOTED = re.compile(r"\s*'(?P<id>[^']*)'\s*")


def parse_resource(resource: Any) -> tuple[str, ...]:
    """The user ids a presence subscription's resource names (at most 650)."""
    if not isinstance(resource, str):
        raise Invalid("resource is required")
    single = _SINGLE.fullmatch(resource.strip())
    if single:
        return (single["a"] or single["b"],)
    match = _FILTER.fullmatch(resource.strip())
    if match is None:
        raise Invalid(
            f"resource {resource!r} is not /communications/presences/{{id}} or "
            "/communications/presences?$filter=id in ('id1','id2')"
        )
    ids: list[str] = []
    for part in match["ids"].split(","):
        quoted = _QUOTED.fullmatch(part)
        if quoted is None or not quoted["id"]:
            raise Invalid(f"resource: {part.strip()!r} is not a quoted id such as 'id1'")
        ids.append(quoted["id"])
    unique = tuple(dict.fromkeys(ids))
    if len(unique) > MAX_IDS:
        raise Invalid(f"resource names {len(unique)} ids; a subscription may watch at most 650")
    return unique


def load_certificate(encoded: Any) -> x509.Certificate:
    """`encryptionCertificate`: a base64 DER X.509 certificate with an RSA key."""
    if not isinstance(encoded, str) or not encoded.strip():
        raise Invalid("encryptionCertificate is required when includeResourceData is true")
    try:
        certificate = x509.load_der_x509_certificate(base64.b64decode(encoded, validate=True))
    except ValueError:
        raise Invalid("encryptionCertificate is not a base64 DER X.509 certificate") from None
    if not isinstance(certificate.public_key(), rsa.RSAPublicKey):
        raise Invalid("encryptionCertificate must carry an RSA public key")
    return certificate


def encrypt_content(payload: bytes, certificate: x509.Certificate, cert_id: str) -> dict[str, str]:
    """Rich-notification encryption exactly as Graph does it.

    A random 32-byte key, wrapped with RSA-OAEP (SHA-1) for `dataKey`; the payload
    AES-256-CBC with PKCS7 padding and IV = the key's first 16 bytes; HMAC-SHA256
    of the ciphertext with the key for `dataSignature`.
    """
    public = certificate.public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    key = os.urandom(32)
    wrapped = public.encrypt(
        key,
        asym_padding.OAEP(
            mgf=asym_padding.MGF1(algorithm=hashes.SHA1()),  # noqa: S303 - Graph's choice
            algorithm=hashes.SHA1(),  # noqa: S303
            label=None,
        ),
    )
    padder = padding.PKCS7(128).padder()
    padded = padder.update(payload) + padder.finalize()
    encryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    data = encryptor.update(padded) + encryptor.finalize()
    signature = hmac.new(key, data, hashlib.sha256).digest()
    return {
        "data": base64.b64encode(data).decode(),
        "dataSignature": base64.b64encode(signature).decode(),
        "dataKey": base64.b64encode(wrapped).decode(),
        "encryptionCertificateId": cert_id,
        "encryptionCertificateThumbprint": certificate.fingerprint(hashes.SHA1()).hex().upper(),  # noqa: S303
    }


@dataclass
class Subscription:
    id: str
    resource: str
    user_ids: tuple[str, ...]
    notification_url: str
    lifecycle_url: str | None
    expires_at: datetime
    client_state: str | None
    include_resource_data: bool
    certificate: x509.Certificate | None
    certificate_b64: str | None
    certificate_id: str | None
    app_id: str
    creator_id: str
    tenant_id: str
    issuer: str
    created_at: datetime
    dropped: bool = False  # stops delivering silently (the field problem of GRAPH.md)
    reauthorization_required: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "resource": self.resource,
            "applicationId": self.app_id,
            "changeType": "updated",
            "clientState": self.client_state,
            "notificationUrl": self.notification_url,
            "lifecycleNotificationUrl": self.lifecycle_url,
            "expirationDateTime": graph_time(self.expires_at),
            "creatorId": self.creator_id,
            "includeResourceData": self.include_resource_data,
            "encryptionCertificate": self.certificate_b64,
            "encryptionCertificateId": self.certificate_id,
            "latestSupportedTlsVersion": "v1_2",
            "notificationQueryOptions": None,
            "notificationUrlAppId": None,
        }

    def change_item(self, presence: dict[str, Any]) -> dict[str, Any]:
        user_id = presence["id"]
        odata_id = f"communications/presences('{user_id}')"
        item: dict[str, Any] = {
            "subscriptionId": self.id,
            "clientState": self.client_state,
            "changeType": "updated",
            "resource": odata_id,
            "resourceData": {
                "@odata.type": "#Microsoft.Graph.presence",
                "@odata.id": odata_id,
                "id": user_id,
            },
            "subscriptionExpirationDateTime": graph_time(self.expires_at),
            "tenantId": self.tenant_id,
        }
        if self.include_resource_data and self.certificate is not None:
            content = {"@odata.type": "#Microsoft.Graph.presence", "@odata.id": odata_id}
            content.update(presence)
            payload = json.dumps(content, separators=(",", ":")).encode()
            item["encryptedContent"] = encrypt_content(
                payload, self.certificate, self.certificate_id or ""
            )
        return item

    def lifecycle_item(self, event: str) -> dict[str, Any]:
        return {
            "subscriptionId": self.id,
            "subscriptionExpirationDateTime": graph_time(self.expires_at),
            "tenantId": self.tenant_id,
            "clientState": self.client_state,
            "lifecycleEvent": event,
        }


def check_url(value: Any, name: str) -> str:
    """An absolute http(s) URL. Graph insists on https; the emulator also takes http,
    because the hub of a demo or test listens on plain HTTP on 127.0.0.1."""
    if not isinstance(value, str):
        raise Invalid(f"{name} is required")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Invalid(f"{name} {value!r} is not an absolute http(s) URL")
    return value


@dataclass
class DeliveryCounts:
    sent: int = 0  # notifications acknowledged with 2xx
    failed: int = 0  # notifications in POSTs that failed (each attempt)
    given_up: int = 0  # notifications abandoned after the retries
    suppressed: int = 0  # swallowed by a dropped subscription
    lifecycle_sent: int = 0
    lifecycle_failed: int = 0
    posts: int = 0
    validations_passed: int = 0
    validations_failed: int = 0

    def to_json(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass
class _Lane:
    subscription: Subscription
    lifecycle: bool
    items: deque[dict[str, Any]] = field(default_factory=deque)
    task: asyncio.Task[None] | None = None


class Delivery:
    """Posts notifications without holding up the request that caused them.

    One lane per subscription (and one for its lifecycle events) keeps each
    subscription's notifications in order and batches whatever piled up while a
    POST was in flight; a failed POST is retried a few times, then given up.
    """

    def __init__(
        self,
        validation_tokens: Callable[[Subscription], list[str]],
        delivering: Callable[[Subscription], bool],
    ) -> None:
        self._validation_tokens = validation_tokens
        self._delivering = delivering
        self._lanes: dict[tuple[str, bool], _Lane] = {}
        self._client: httpx.AsyncClient | None = None
        self.counts = DeliveryCounts()

    async def start(self) -> None:
        # No proxies from the environment: notification URLs are usually local.
        self._client = httpx.AsyncClient(trust_env=False, timeout=ACK_TIMEOUT)

    async def stop(self) -> None:
        tasks = [lane.task for lane in self._lanes.values() if lane.task is not None]
        self.cancel_all()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def cancel_all(self) -> None:
        for lane in self._lanes.values():
            if lane.task is not None:
                lane.task.cancel()
        self._lanes.clear()

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            raise RuntimeError("delivery is not started")
        return self._client

    def post(self, subscription: Subscription, item: dict[str, Any], lifecycle: bool) -> None:
        key = (subscription.id, lifecycle)
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._lanes[key] = _Lane(subscription, lifecycle)
        lane.subscription = subscription
        lane.items.append(item)
        if lane.task is None or lane.task.done():
            lane.task = asyncio.create_task(self._run(key, lane))

    async def _run(self, key: tuple[str, bool], lane: _Lane) -> None:
        while lane.items:
            subscription = lane.subscription
            if not lane.lifecycle and not self._delivering(subscription):
                self.counts.suppressed += len(lane.items)
                lane.items.clear()
                break
            batch = [lane.items.popleft() for _ in range(min(len(lane.items), MAX_BATCH))]
            body: dict[str, Any] = {"value": batch}
            if subscription.include_resource_data:
                body["validationTokens"] = self._validation_tokens(subscription)
            url = subscription.lifecycle_url if lane.lifecycle else subscription.notification_url
            assert url is not None
            await self._send(url, body, len(batch), lane.lifecycle)
        if self._lanes.get(key) is lane:
            del self._lanes[key]

    async def _send(self, url: str, body: dict[str, Any], count: int, lifecycle: bool) -> None:
        for delay in (0.0, *RETRY_DELAYS):
            if delay:
                await asyncio.sleep(delay)
            self.counts.posts += 1
            try:
                response = await self.client.post(url, json=body)
                ok = 200 <= response.status_code < 300
            except httpx.HTTPError as error:
                log.info("notification to %s failed: %s", url, error)
                ok = False
            if ok:
                if lifecycle:
                    self.counts.lifecycle_sent += count
                else:
                    self.counts.sent += count
                return
            if lifecycle:
                self.counts.lifecycle_failed += count
            else:
                self.counts.failed += count
        self.counts.given_up += count

    async def handshake(self, url: str) -> str | None:
        """Graph's validation request; None if the endpoint answered correctly, else why not."""
        token = (
            "Validation: Testing client application reachability for subscription "
            f"Request-Id: {uuid.uuid4()}"
        )
        target = url + ("&" if "?" in url else "?") + "validationToken=" + quote(token, safe="")
        started = time.monotonic()
        try:
            response = await self.client.post(
                target,
                content=b"",
                headers={"Content-Type": "text/plain; charset=utf-8"},
                timeout=HANDSHAKE_TIMEOUT,
            )
        except httpx.TimeoutException:
            problem: str | None = f"{url} did not answer the validation request within 10 s"
        except httpx.HTTPError as error:
            problem = f"{url} could not be reached for validation: {error}"
        else:
            content_type = response.headers.get("content-type", "")
            if response.status_code != 200:
                problem = f"{url} answered the validation request with {response.status_code}"
            elif not content_type.lower().startswith("text/plain"):
                problem = f"{url} answered the validation request as {content_type!r}"
            elif response.text != token:
                problem = f"{url} did not echo the validation token"
            elif time.monotonic() - started > HANDSHAKE_TIMEOUT:
                problem = f"{url} took longer than 10 s to answer the validation request"
            else:
                problem = None
        if problem is None:
            self.counts.validations_passed += 1
        else:
            self.counts.validations_failed += 1
        return problem
