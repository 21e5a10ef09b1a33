"""One hub in notify mode with the Graph emulator, as separate processes, for the hostile tests.

The hub runs with debug logging, a signed-in service account, a live subscription
(and so a clientState and an encryption certificate) and agent tokens: every kind
of secret the product holds exists, so the tests can look for each of them in the
log and the database.

`genuine()` builds a notification exactly as Graph (here: the emulator) would send
it: the emulator's own encryption function and its token-signing key from its TLS
folder. Forgeries are that notification with one thing wrong.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from presencebridge.emulator.identity import (
    NOTIFICATION_APP_ID,
    TokenSigner,
    issuer_for,
    tenant_id,
)
from presencebridge.emulator.subscriptions import encrypt_content, load_certificate
from tests.support.server import ServerProcess
from tests.support.teams import CLIENT_ID, CLIENT_SECRET, TENANT, EmulatorProcess
from tests.sync.test_sync_notify import (
    SECRET_KEY,
    notify_server,
    sign_in_service_account,
    subscribed,
)
from tests.sync.test_sync_tables import Colleague, group


@dataclass
class NotifyWorld:
    emulator: EmulatorProcess
    server: ServerProcess
    admin: httpx.Client
    subscription: dict[str, Any]  # as the emulator (Graph) holds it: clientState, certificate
    signer: TokenSigner
    anna: Colleague
    agent_tokens: dict[str, str] = field(default_factory=dict)

    @property
    def secrets(self) -> dict[str, str]:
        """Every secret this world's hub knows, by what it is."""
        known = {
            "client secret": CLIENT_SECRET,
            "secret key": SECRET_KEY,
            "subscription clientState": str(self.subscription["clientState"]),
        }
        known.update({f"agent token of {user}": t for user, t in self.agent_tokens.items()})
        return known

    def issue_agent_token(self, user: str) -> str:
        response = self.admin.post(f"/api/v1/users/{user}/agent-tokens")
        assert response.status_code == 201, response.text
        token = str(response.json()["token"])
        self.agent_tokens[f"{user} #{len(self.agent_tokens) + 1}"] = token
        return token

    def presence(self) -> dict[str, Any]:
        return self.anna.presence()

    def snapshot(self, *users: str) -> dict[str, Any]:
        """Everything the admin can read back: groups, users, and what `users` hold."""
        api = self.admin
        state: dict[str, Any] = {
            "groups": api.get("/api/v1/groups").json(),
            "users": api.get("/api/v1/users").json(),
            "service_accounts": api.get("/api/v1/admin/service-accounts").json(),
        }
        for user in users or (self.anna.id,):
            for part in ("profiles", "appointments", "settings", "history"):
                state[f"{user} {part}"] = api.get(f"/api/v1/users/{user}/{part}").json()
        return state

    # -- what Graph sends ---------------------------------------------------------------

    def token(self, **claims: Any) -> str:
        """A validation token as Graph signs it; `claims` override (None removes one)."""
        now = datetime.now(UTC)
        body: dict[str, Any] = {
            "aud": CLIENT_ID,
            "iss": issuer_for(self.emulator.base_url, tenant_id(TENANT)),
            "iat": int(now.timestamp()),
            "nbf": int(now.timestamp()),
            "exp": int((now + timedelta(hours=1)).timestamp()),
            "tid": tenant_id(TENANT),
            "azp": NOTIFICATION_APP_ID,
            "appid": NOTIFICATION_APP_ID,
        }
        body.update(claims)
        return self.signer.sign({k: v for k, v in body.items() if v is not None})

    def content(
        self, availability: str, activity: str, certificate: x509.Certificate | None = None
    ) -> dict[str, str]:
        """`encryptedContent` for anna's presence, encrypted for the hub's certificate."""
        presence = {
            "@odata.type": "#Microsoft.Graph.presence",
            "id": self.anna.teams_id,
            "availability": availability,
            "activity": activity,
            "sequenceNumber": uuid.uuid4().hex,
        }
        return encrypt_content(
            json.dumps(presence).encode(),
            certificate or load_certificate(self.subscription["encryptionCertificate"]),
            str(self.subscription["encryptionCertificateId"]),
        )

    def item(self, availability: str, activity: str) -> dict[str, Any]:
        resource = f"communications/presences('{self.anna.teams_id}')"
        return {
            "subscriptionId": self.subscription["id"],
            "clientState": self.subscription["clientState"],
            "changeType": "updated",
            "resource": resource,
            "resourceData": {"@odata.id": resource, "id": self.anna.teams_id},
            "tenantId": tenant_id(TENANT),
            "encryptedContent": self.content(availability, activity),
        }

    def genuine(self, availability: str, activity: str) -> dict[str, Any]:
        return {"value": [self.item(availability, activity)], "validationTokens": [self.token()]}


def start_world(tmp: Path) -> NotifyWorld:
    emulator = EmulatorProcess(tmp / "tls")
    emulator.start()
    server = notify_server(tmp / "server", emulator)
    server.env["PRESENCEBRIDGE_LOG_LEVEL"] = "debug"
    try:
        server.start()
        admin = server.client()
        anna = Colleague(admin, emulator, "anna", group(admin))
        sign_in_service_account(admin, emulator)
        [ours] = subscribed(admin, 1)
        with emulator.control() as control:
            held = control.get("/_emulator/subscriptions").json()["value"]
        [subscription] = [s for s in held if s["id"] == ours["id"]]
        pem = (emulator.tls_dir / "signing-key.pem").read_bytes()
        key = serialization.load_pem_private_key(pem, password=None)
        assert isinstance(key, rsa.RSAPrivateKey)
    except BaseException:
        server.stop()
        emulator.stop()
        raise
    return NotifyWorld(emulator, server, admin, subscription, TokenSigner(key), anna)


def stop_world(world: NotifyWorld) -> None:
    world.admin.close()
    world.server.stop()
    world.emulator.stop()
