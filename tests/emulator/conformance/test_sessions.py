"""setPresence and clearPresence: an application's presence session, as Microsoft's
"presence: setPresence" and "presence: clearPresence" describe it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from msgraph import GraphServiceClient
from msgraph.generated.users.item.presence.clear_presence.clear_presence_post_request_body import (
    ClearPresencePostRequestBody,
)
from msgraph.generated.users.item.presence.set_presence.set_presence_post_request_body import (
    SetPresencePostRequestBody,
)

from tests.emulator.conformance.sdk import App, Tenant, refused

pytestmark = pytest.mark.anyio


def session(
    app: App, availability: str, activity: str, duration: str | None = None
) -> SetPresencePostRequestBody:
    return SetPresencePostRequestBody(
        session_id=app.client_id,
        availability=availability,
        activity=activity,
        expiration_duration=duration,  # ISO 8601 text, see below
    )


async def shown(graph: GraphServiceClient, user: str) -> tuple[str | None, str | None]:
    presence = await graph.users.by_user_id(user).presence.get()
    assert presence is not None
    return presence.availability, presence.activity


def teams_closed(tenant: Tenant) -> str:
    """A user whose Teams client is closed: only app sessions show."""
    user = tenant.new_user()
    tenant.post(f"/_emulator/users/{user}/client", {"availability": "Offline"})
    return user


async def test_set_presence_shows_the_apps_session(tenant: Tenant) -> None:
    app, user = tenant.new_app(), teams_closed(tenant)
    graph = tenant.app_client(app)
    assert await shown(graph, user) == ("Offline", "Offline")
    await graph.users.by_user_id(user).presence.set_presence.post(session(app, "Busy", "InACall"))
    assert await shown(graph, user) == ("Busy", "InACall")


async def test_set_presence_under_communications_presences(tenant: Tenant) -> None:
    app, user = tenant.new_app(), teams_closed(tenant)
    graph = tenant.app_client(app)
    presences = graph.communications.presences.by_presence_id(user)
    await presences.set_presence.post(session(app, "Busy", "InAConferenceCall"))
    assert await shown(graph, user) == ("Busy", "InAConferenceCall")


async def test_set_presence_refuses_a_pair_it_does_not_support(tenant: Tenant) -> None:
    app, user = tenant.new_app(), tenant.new_user()
    graph = tenant.app_client(app)
    call = graph.users.by_user_id(user).presence.set_presence.post(
        session(app, "Busy", "Presenting")
    )
    status, error = await refused(call)
    assert status == 400 and error.error is not None and error.error.code == "BadRequest"


async def test_expiration_duration_is_pt5m_to_pt4h(tenant: Tenant) -> None:
    app, user = tenant.new_app(), tenant.new_user()
    presence = tenant.app_client(app).users.by_user_id(user).presence
    for duration in ("PT4M", "PT4H1M"):
        status, error = await refused(
            presence.set_presence.post(session(app, "Busy", "InACall", duration))
        )
        assert status == 400, duration
        assert error.error is not None and error.error.code == "InvalidArgument"
    await presence.set_presence.post(session(app, "Busy", "InACall", "PT4H"))


async def test_a_python_timedelta_is_refused_as_graph_refuses_it(tenant: Tenant) -> None:
    # The Python SDK writes a timedelta as str(timedelta), "0:10:00", not ISO 8601, and
    # Graph answers 400 (msgraph-sdk-python issue 1262): scripts must pass "PT10M".
    app, user = tenant.new_app(), tenant.new_user()
    presence = tenant.app_client(app).users.by_user_id(user).presence
    body = session(app, "Busy", "InACall")
    body.expiration_duration = timedelta(minutes=10)
    status, _ = await refused(presence.set_presence.post(body))
    assert status == 400


async def test_a_session_expires_at_its_expiration_duration(tenant: Tenant) -> None:
    app, user = tenant.new_app(), teams_closed(tenant)
    graph = tenant.app_client(app)
    await graph.users.by_user_id(user).presence.set_presence.post(
        session(app, "Busy", "InACall", "PT10M")
    )
    tenant.advance(9 * 60)
    assert await shown(graph, user) == ("Busy", "InACall")
    tenant.advance(60)
    assert await shown(graph, user) == ("Offline", "Offline")


async def test_an_available_session_fades_without_a_refresh_whatever_its_expiry(
    tenant: Tenant,
) -> None:
    app, user = tenant.new_app(), teams_closed(tenant)
    graph = tenant.app_client(app)
    await graph.users.by_user_id(user).presence.set_presence.post(
        session(app, "Available", "Available", "PT30M")
    )
    tenant.advance(4 * 60 + 59)
    assert await shown(graph, user) == ("Available", "Available")
    tenant.advance(1)
    assert await shown(graph, user) == ("Available", "AvailableInactive")
    tenant.advance(5 * 60)
    assert await shown(graph, user) == ("Away", "Away")
    tenant.advance(19 * 60)
    assert await shown(graph, user) == ("Away", "Away")
    tenant.advance(60)  # its expiry: gone
    assert await shown(graph, user) == ("Offline", "Offline")


async def test_re_sending_before_five_minutes_keeps_a_session_available(
    tenant: Tenant,
) -> None:
    app, user = tenant.new_app(), teams_closed(tenant)
    graph = tenant.app_client(app)
    presence = graph.users.by_user_id(user).presence
    for _ in range(4):
        await presence.set_presence.post(session(app, "Available", "Available", "PT1H"))
        tenant.advance(4 * 60)
        assert await shown(graph, user) == ("Available", "Available")


async def test_busy_outranks_available_among_sessions(tenant: Tenant) -> None:
    first, second, user = tenant.new_app(), tenant.new_app(), teams_closed(tenant)
    one, other = tenant.app_client(first), tenant.app_client(second)
    await one.users.by_user_id(user).presence.set_presence.post(session(first, "Busy", "InACall"))
    await other.users.by_user_id(user).presence.set_presence.post(
        session(second, "Available", "Available")
    )
    assert await shown(other, user) == ("Busy", "InACall")


async def test_clear_presence_ends_the_session_and_a_second_clear_is_404(
    tenant: Tenant,
) -> None:
    app, user = tenant.new_app(), teams_closed(tenant)
    graph = tenant.app_client(app)
    presence = graph.users.by_user_id(user).presence
    await presence.set_presence.post(session(app, "Busy", "InACall"))
    clear = ClearPresencePostRequestBody(session_id=app.client_id)
    await presence.clear_presence.post(clear)
    assert await shown(graph, user) == ("Offline", "Offline")
    status, _ = await refused(presence.clear_presence.post(clear))
    assert status == 404
