"""Forged and replayed Graph notifications at `/graph/notifications` are refused and counted.

Each forgery is a notification Graph would send (see world.py) that puts anna in a
Teams call, with one thing wrong. A refused one must leave her presence exactly as it
was, answer with the documented 4xx, and count in the hub's metrics.
"""

from __future__ import annotations

import base64
import copy
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from presencebridge.adapters.graph.notifications import NotificationKeys
from tests.hostile.tally import counting_client
from tests.hostile.world import NotifyWorld
from tests.sync.test_sync_notify import notifications
from tests.sync.test_sync_tables import on_teams_phone

Forge = Callable[[NotifyWorld], dict[str, Any]]
KIND = "webhook forgeries and replays"


def in_a_call(world: NotifyWorld) -> dict[str, Any]:
    return world.genuine("Busy", "InACall")


def with_item(**changes: Any) -> Forge:
    """The genuine notification with item fields changed (None removes one)."""

    def forge(world: NotifyWorld) -> dict[str, Any]:
        body = in_a_call(world)
        for key, value in changes.items():
            if value is None:
                body["value"][0].pop(key)
            else:
                body["value"][0][key] = value
        return body

    return forge


def with_content(change: Callable[[dict[str, str]], None]) -> Forge:
    def forge(world: NotifyWorld) -> dict[str, Any]:
        body = in_a_call(world)
        change(body["value"][0]["encryptedContent"])
        return body

    return forge


def with_tokens(make: Callable[[NotifyWorld], Any]) -> Forge:
    def forge(world: NotifyWorld) -> dict[str, Any]:
        body = in_a_call(world)
        body["validationTokens"] = make(world)
        return body

    return forge


def _zero_signature(content: dict[str, str]) -> None:
    content["dataSignature"] = base64.b64encode(bytes(32)).decode()


def _flip_a_bit(content: dict[str, str]) -> None:
    data = bytearray(base64.b64decode(content["data"]))
    data[-1] ^= 1
    content["data"] = base64.b64encode(bytes(data)).decode()


def _for_another_certificate(world: NotifyWorld) -> dict[str, Any]:
    body = in_a_call(world)
    other = NotificationKeys.generate().certificate
    content = world.content("Busy", "InACall", certificate=other)
    body["value"][0]["encryptedContent"] = content  # still names the hub's certificate id
    return body


def _signed_by_someone_else(world: NotifyWorld) -> list[str]:
    """A token signed by another key under the kid of Graph's key."""
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    claims = jwt.decode(world.token(), options={"verify_signature": False})
    return [jwt.encode(claims, other, algorithm="RS256", headers={"kid": world.signer.kid})]


def _expired(world: NotifyWorld) -> list[str]:
    then = datetime.now(UTC) - timedelta(hours=2)
    stamps = {"iat": then, "nbf": then, "exp": then + timedelta(hours=1)}
    return [world.token(**{k: int(v.timestamp()) for k, v in stamps.items()})]


def _unsigned(world: NotifyWorld) -> list[str]:
    claims = jwt.decode(world.token(), options={"verify_signature": False})
    return [jwt.encode(claims, "", algorithm="none")]


def _lifecycle_with_wrong_client_state(world: NotifyWorld) -> dict[str, Any]:
    item = {
        "subscriptionId": world.subscription["id"],
        "clientState": "guessed",
        "lifecycleEvent": "subscriptionRemoved",
    }
    return {"value": [item]}


def _forged_item_beside_a_genuine_one(world: NotifyWorld) -> dict[str, Any]:
    body = in_a_call(world)
    forged = copy.deepcopy(body["value"][0])
    forged["clientState"] = "guessed"
    body["value"].append(forged)
    return body


ANOTHER_APP = "99999999-8888-4777-8666-555555555555"

# fmt: off
FORGERIES: list[tuple[str, Forge, int, str]] = [
    # what is wrong, how it is made, expected status, metric result
    ("wrong clientState", with_item(clientState="not-the-secret"), 403, "bad_client_state"),
    ("clientState missing", with_item(clientState=None), 403, "bad_client_state"),
    ("clientState a number", with_item(clientState=12345), 403, "bad_client_state"),
    ("unknown subscription", with_item(subscriptionId="00000000-0000-4000-8000-000000000000"), 403, "unknown_subscription"),
    ("forged item beside a genuine one", _forged_item_beside_a_genuine_one, 403, "bad_client_state"),
    ("lifecycle event with wrong clientState", _lifecycle_with_wrong_client_state, 403, "bad_client_state"),
    ("dataSignature forged", with_content(_zero_signature), 403, "bad_signature"),
    ("data tampered with", with_content(_flip_a_bit), 403, "bad_signature"),
    ("encrypted for another certificate", _for_another_certificate, 403, "bad_signature"),
    ("no validationTokens", with_tokens(lambda w: []), 401, "bad_token"),
    ("token signed by another key", with_tokens(_signed_by_someone_else), 401, "bad_token"),
    ("token expired", with_tokens(_expired), 401, "bad_token"),
    ("token for another audience", with_tokens(lambda w: [w.token(aud=ANOTHER_APP)]), 401, "bad_token"),
    ("token not from Graph's notification app", with_tokens(lambda w: [w.token(azp=ANOTHER_APP, appid=ANOTHER_APP)]), 401, "bad_token"),
    ("token without expiry", with_tokens(lambda w: [w.token(exp=None)]), 401, "bad_token"),
    ("unsigned token (alg none)", with_tokens(_unsigned), 401, "bad_token"),
    ("a good token beside a garbage one", with_tokens(lambda w: [w.token(), "garbage"]), 401, "bad_token"),
    ("validationTokens not a list", with_tokens(lambda w: 42), 400, "malformed"),
]
# fmt: on


@pytest.mark.parametrize(
    ("forge", "status", "result"),
    [case[1:] for case in FORGERIES],
    ids=[case[0] for case in FORGERIES],
)
def test_forged_notification_is_refused_counted_and_changes_nothing(
    world: NotifyWorld, forge: Forge, status: int, result: str
) -> None:
    before = world.presence()
    counted = notifications(world.server, result)
    with counting_client(world.server.url, KIND) as graph:
        response = graph.post("/graph/notifications", json=forge(world))
    assert response.status_code == status, response.text
    assert response.json()["code"] == result
    assert notifications(world.server, result) == counted + 1
    assert world.presence() == before
    assert not on_teams_phone(before)


def test_genuine_notification_is_accepted(world: NotifyWorld) -> None:
    """The control for the table above: the same notification, nothing wrong, is believed."""
    with counting_client(world.server.url, KIND) as graph:
        assert graph.post("/graph/notifications", json=in_a_call(world)).status_code == 202
        assert on_teams_phone(world.presence())
        ended = world.genuine("Available", "Available")
        assert graph.post("/graph/notifications", json=ended).status_code == 202
    assert not on_teams_phone(world.presence())


def test_replayed_notification_is_refused(world: NotifyWorld) -> None:
    """A delivered call notification sent again after the call ended must not bring it back."""
    call = in_a_call(world)
    ended = world.genuine("Available", "Available")
    replays = notifications(world.server, "replayed")
    with counting_client(world.server.url, KIND) as graph:
        assert graph.post("/graph/notifications", json=call).status_code == 202
        assert on_teams_phone(world.presence())
        assert graph.post("/graph/notifications", json=ended).status_code == 202
        after_call = world.presence()
        assert not on_teams_phone(after_call)

        again = graph.post("/graph/notifications", json=call)
        assert again.status_code == 409, again.text
        assert again.json()["code"] == "replayed"
        # The captured content under a fresh validation token is the same notification.
        refreshed = {"value": call["value"], "validationTokens": [world.token()]}
        assert graph.post("/graph/notifications", json=refreshed).status_code == 409
        assert graph.post("/graph/notifications", json=ended).status_code == 409
        # The same new notification twice in one batch: the second copy is a replay.
        twice = world.genuine("Busy", "InACall")
        twice["value"].append(twice["value"][0])
        assert graph.post("/graph/notifications", json=twice).status_code == 409
    assert world.presence() == after_call
    assert notifications(world.server, "replayed") == replays + 4


def test_webhook_needs_no_token_but_the_api_still_does(world: NotifyWorld) -> None:
    """Graph cannot send a bearer token: the webhook is open, its checks are its guard."""
    with counting_client(world.server.url, KIND, token=None) as anonymous:
        handshake = anonymous.post("/graph/notifications", params={"validationToken": "t 1"})
        assert handshake.status_code == 200
        assert handshake.text == "t 1"
        assert anonymous.get(f"/api/v1/users/{world.anna.id}/presence").status_code == 401
