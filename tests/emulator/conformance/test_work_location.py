"""presence.workLocation and the delegated setManualLocation, setAutomaticLocation,
clearAutomaticLocation and clearLocation (Microsoft's v1.0 pages of each)."""

from __future__ import annotations

import pytest
from msgraph.generated.models.work_location_source import WorkLocationSource
from msgraph.generated.models.work_location_type import WorkLocationType
from msgraph.generated.users.item.presence.set_automatic_location.set_automatic_location_post_request_body import (  # noqa: E501
    SetAutomaticLocationPostRequestBody,
)
from msgraph.generated.users.item.presence.set_manual_location.set_manual_location_post_request_body import (  # noqa: E501
    SetManualLocationPostRequestBody,
)

from tests.emulator.conformance.sdk import Tenant, refused

pytestmark = pytest.mark.anyio
PLACE = "eb706f15-137e-4722-b4d1-b601481d9251"


async def test_a_manual_location_shows_with_its_place(tenant: Tenant) -> None:
    user = tenant.new_user()
    me = tenant.user_client(user).me.presence
    await me.set_manual_location.post(
        SetManualLocationPostRequestBody(work_location_type=WorkLocationType.Office, place_id=PLACE)
    )
    shown = await tenant.app_client().users.by_user_id(user).presence.get()
    assert shown is not None and shown.work_location is not None
    assert shown.work_location.work_location_type == WorkLocationType.Office
    assert shown.work_location.source == WorkLocationSource.Manual
    assert shown.work_location.place_id == PLACE


async def test_manual_beats_automatic_and_clearing_automatic_keeps_manual(
    tenant: Tenant,
) -> None:
    user = tenant.new_user()
    me = tenant.user_client(user).me.presence
    await me.set_automatic_location.post(
        SetAutomaticLocationPostRequestBody(work_location_type=WorkLocationType.Remote)
    )
    shown = await me.get()
    assert shown is not None and shown.work_location is not None
    assert shown.work_location.source == WorkLocationSource.Automatic
    assert shown.work_location.work_location_type == WorkLocationType.Remote
    await me.set_manual_location.post(
        SetManualLocationPostRequestBody(work_location_type=WorkLocationType.TimeOff)
    )
    await me.clear_automatic_location.post()
    shown = await me.get()
    assert shown is not None and shown.work_location is not None
    assert shown.work_location.source == WorkLocationSource.Manual
    assert shown.work_location.work_location_type == WorkLocationType.TimeOff


async def test_clear_location_clears_manual_and_automatic(tenant: Tenant) -> None:
    user = tenant.new_user()
    me = tenant.user_client(user).me.presence
    await me.set_automatic_location.post(
        SetAutomaticLocationPostRequestBody(work_location_type=WorkLocationType.Office)
    )
    await me.set_manual_location.post(
        SetManualLocationPostRequestBody(work_location_type=WorkLocationType.Remote)
    )
    await me.clear_location.post()
    shown = await me.get()
    assert shown is not None and shown.work_location is not None
    assert shown.work_location.source == WorkLocationSource.None_
    assert shown.work_location.work_location_type == WorkLocationType.Unspecified
    assert shown.work_location.place_id is None


async def test_an_app_cannot_set_a_work_location(tenant: Tenant) -> None:
    user = tenant.new_user()
    presence = tenant.app_client().users.by_user_id(user).presence
    body = SetManualLocationPostRequestBody(work_location_type=WorkLocationType.Office)
    status, _ = await refused(presence.set_manual_location.post(body))
    assert status == 403
    status, _ = await refused(presence.clear_location.post())
    assert status == 403


async def test_a_user_cannot_set_anothers_work_location(tenant: Tenant) -> None:
    user, other = tenant.new_user(), tenant.new_user()
    graph = tenant.user_client(user, "Presence.ReadWrite.All")
    body = SetManualLocationPostRequestBody(work_location_type=WorkLocationType.Office)
    status, _ = await refused(graph.users.by_user_id(other).presence.set_manual_location.post(body))
    assert status == 403
