"""setUserPreferredPresence, clearUserPreferredPresence and setStatusMessage."""

from __future__ import annotations

import pytest
from msgraph.generated.communications.get_presences_by_user_id.get_presences_by_user_id_post_request_body import (  # noqa: E501
    GetPresencesByUserIdPostRequestBody,
)
from msgraph.generated.models.body_type import BodyType
from msgraph.generated.models.date_time_time_zone import DateTimeTimeZone
from msgraph.generated.models.item_body import ItemBody
from msgraph.generated.models.presence_status_message import PresenceStatusMessage
from msgraph.generated.users.item.presence.set_presence.set_presence_post_request_body import (
    SetPresencePostRequestBody,
)
from msgraph.generated.users.item.presence.set_status_message.set_status_message_post_request_body import (  # noqa: E501
    SetStatusMessagePostRequestBody,
)
from msgraph.generated.users.item.presence.set_user_preferred_presence.set_user_preferred_presence_post_request_body import (  # noqa: E501
    SetUserPreferredPresencePostRequestBody,
)

from tests.emulator.conformance.sdk import Tenant, in_minutes, refused

pytestmark = pytest.mark.anyio


def status_message(
    text: str, date_time: str | None = None, zone: str | None = None
) -> SetStatusMessagePostRequestBody:
    expiry = None
    if date_time is not None:
        expiry = DateTimeTimeZone(date_time=date_time, time_zone=zone)
    return SetStatusMessagePostRequestBody(
        status_message=PresenceStatusMessage(
            message=ItemBody(content=text, content_type=BodyType.Text), expiry_date_time=expiry
        )
    )


async def test_a_preferred_presence_beats_the_sessions_and_clears_without_a_body(
    tenant: Tenant,
) -> None:
    user = tenant.new_user()
    presence = tenant.app_client().users.by_user_id(user).presence
    preferred = SetUserPreferredPresencePostRequestBody(
        availability="DoNotDisturb", activity="DoNotDisturb"
    )
    await presence.set_user_preferred_presence.post(preferred)
    shown = await presence.get()
    assert shown is not None and shown.availability == "DoNotDisturb"
    # The SDK sends clearUserPreferredPresence with no body at all, as Microsoft's
    # example does.
    await presence.clear_user_preferred_presence.post()
    shown = await presence.get()
    assert shown is not None and (shown.availability, shown.activity) == ("Available", "Available")


async def test_a_preferred_presence_shows_only_while_a_session_exists(tenant: Tenant) -> None:
    user = tenant.new_user()
    tenant.post(f"/_emulator/users/{user}/client", {"availability": "Offline"})
    app = tenant.new_app()
    presence = tenant.app_client(app).users.by_user_id(user).presence
    await presence.set_user_preferred_presence.post(
        SetUserPreferredPresencePostRequestBody(availability="BeRightBack", activity="BeRightBack")
    )
    shown = await presence.get()
    assert shown is not None and shown.availability == "Offline"
    await presence.set_presence.post(
        SetPresencePostRequestBody(
            session_id=app.client_id, availability="Available", activity="Available"
        )
    )
    shown = await presence.get()
    assert shown is not None and (shown.availability, shown.activity) == (
        "BeRightBack",
        "BeRightBack",
    )


async def test_set_user_preferred_presence_refuses_a_session_pair(tenant: Tenant) -> None:
    user = tenant.new_user()
    presence = tenant.app_client().users.by_user_id(user).presence
    body = SetUserPreferredPresencePostRequestBody(availability="Busy", activity="InACall")
    status, _ = await refused(presence.set_user_preferred_presence.post(body))
    assert status == 400


async def test_a_status_message_with_a_windows_time_zone_is_accepted(tenant: Tenant) -> None:
    # Microsoft's setStatusMessage example: timeZone "Pacific Standard Time".
    user = tenant.new_user()
    graph = tenant.app_client()
    presence = graph.users.by_user_id(user).presence
    await presence.set_status_message.post(
        status_message("In a meeting", "2099-10-18T17:05:33.2079781", "Pacific Standard Time")
    )
    # The user themself sees the expiry as set, and when it was published.
    own = await tenant.user_client(user).me.presence.get()
    assert own is not None and own.status_message is not None
    assert own.status_message.message.content == "In a meeting"
    assert own.status_message.expiry_date_time.time_zone == "Pacific Standard Time"
    assert own.status_message.published_date_time is not None


async def test_a_status_message_with_an_iana_time_zone_expires_on_time(tenant: Tenant) -> None:
    user = tenant.new_user()
    presence = tenant.app_client().users.by_user_id(user).presence
    date_time, _ = in_minutes(tenant, 30)
    await presence.set_status_message.post(status_message("Back soon", date_time, "Etc/UTC"))
    tenant.advance(29 * 60)
    shown = await presence.get()
    assert shown is not None and shown.status_message is not None
    tenant.advance(60)
    shown = await presence.get()
    assert shown is not None and shown.status_message is None


async def test_a_status_message_without_expiry_stays(tenant: Tenant) -> None:
    user = tenant.new_user()
    presence = tenant.app_client().users.by_user_id(user).presence
    await presence.set_status_message.post(status_message("Working from Lisbon"))
    tenant.advance(50 * 60)
    shown = await tenant.app_client().users.by_user_id(user).presence.get()
    assert shown is not None and shown.status_message is not None
    assert shown.status_message.message.content == "Working from Lisbon"


async def test_an_unknown_time_zone_is_refused(tenant: Tenant) -> None:
    user = tenant.new_user()
    presence = tenant.app_client().users.by_user_id(user).presence
    call = presence.set_status_message.post(
        status_message("x", "2099-01-01T10:00:00", "Atlantis Standard Time")
    )
    status, error = await refused(call)
    assert status == 400 and error.error is not None and error.error.code == "BadRequest"


async def test_another_users_reader_sees_the_message_but_not_its_times(tenant: Tenant) -> None:
    user, reader = tenant.new_user(), tenant.new_user()
    graph = tenant.app_client()
    await graph.users.by_user_id(user).presence.set_status_message.post(
        status_message("Out until 3", "2099-01-01T15:00:00", "W. Europe Standard Time")
    )
    by_app = await graph.users.by_user_id(user).presence.get()
    by_user = (
        await tenant.user_client(reader, "Presence.Read.All").users.by_user_id(user).presence.get()
    )
    many = await graph.communications.get_presences_by_user_id.post(
        GetPresencesByUserIdPostRequestBody(ids=[user])
    )
    assert many is not None and many.value is not None
    for seen in (by_app, by_user, many.value[0]):
        assert seen is not None and seen.status_message is not None
        assert seen.status_message.message.content == "Out until 3"
        assert seen.status_message.expiry_date_time is None
        assert seen.status_message.published_date_time is None


async def test_a_user_sets_their_own_status_message_but_not_anothers(tenant: Tenant) -> None:
    user, other = tenant.new_user(), tenant.new_user()
    graph = tenant.user_client(user)
    await graph.me.presence.set_status_message.post(status_message("Lunch"))
    own = await graph.me.presence.get()
    assert own is not None and own.status_message is not None
    status, _ = await refused(
        graph.users.by_user_id(other).presence.set_status_message.post(status_message("x"))
    )
    assert status == 403
