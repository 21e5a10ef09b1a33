"""presence.outOfOfficeSettings: read-only in Graph, set here the way Outlook's automatic
replies set it (the emulator's control API), seen in every read and in notifications."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from msgraph.generated.communications.get_presences_by_user_id.get_presences_by_user_id_post_request_body import (  # noqa: E501
    GetPresencesByUserIdPostRequestBody,
)
from msgraph.generated.models.subscription import Subscription

from tests.emulator.conformance.sdk import Tenant
from tests.emulator.support import Receiver
from tests.emulator.test_emulator_notifications import decrypt, key_and_certificate

pytestmark = pytest.mark.anyio


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    hook = Receiver()
    hook.start()
    yield hook
    hook.stop()


def out_of_office(tenant: Tenant, user: str, message: str) -> None:
    tenant.put(
        f"/_emulator/users/{user}/out-of-office", {"isOutOfOffice": True, "message": message}
    )


async def test_out_of_office_shows_in_a_read_and_ends(tenant: Tenant) -> None:
    user = tenant.new_user()
    presence = tenant.app_client().users.by_user_id(user).presence
    out_of_office(tenant, user, "Away until Monday")
    shown = await presence.get()
    assert shown is not None and shown.out_of_office_settings is not None
    assert shown.out_of_office_settings.is_out_of_office is True
    assert shown.out_of_office_settings.message == "Away until Monday"
    tenant.control.delete(f"/_emulator/users/{user}/out-of-office").raise_for_status()
    shown = await presence.get()
    assert shown is not None and shown.out_of_office_settings is not None
    assert shown.out_of_office_settings.is_out_of_office is False


async def test_out_of_office_shows_in_get_presences_by_user_id(tenant: Tenant) -> None:
    user, other = tenant.new_user(), tenant.new_user()
    out_of_office(tenant, user, "Parental leave")
    answer = await tenant.app_client().communications.get_presences_by_user_id.post(
        GetPresencesByUserIdPostRequestBody(ids=[user, other])
    )
    assert answer is not None and answer.value is not None
    settings = {p.id: p.out_of_office_settings for p in answer.value}
    assert settings[user] is not None and settings[user].is_out_of_office is True
    assert settings[user].message == "Parental leave"
    assert settings[other] is not None and settings[other].is_out_of_office is False


async def test_out_of_office_is_a_change_notified_with_resource_data(
    tenant: Tenant, receiver: Receiver
) -> None:
    watched, watcher = tenant.new_user(), tenant.new_user()
    key, certificate = key_and_certificate()
    graph = tenant.user_client(watcher, "Presence.Read.All")
    created = await graph.subscriptions.post(
        Subscription(
            change_type="updated",
            resource=f"/communications/presences/{watched}",
            notification_url=receiver.url(),
            expiration_date_time=tenant.now() + timedelta(minutes=30),
            client_state="conformance",
            include_resource_data=True,
            encryption_certificate=certificate,
            encryption_certificate_id="conformance-key",
        )
    )
    assert created is not None and created.id
    out_of_office(tenant, watched, "Conference in Oslo")
    _, notification = receiver.next(timeout=10)
    item = notification["value"][0]
    assert item["subscriptionId"] == created.id and item["clientState"] == "conformance"
    content = decrypt(item["encryptedContent"], key)
    assert content["outOfOfficeSettings"] == {
        "message": "Conference in Oslo",
        "isOutOfOffice": True,
    }
