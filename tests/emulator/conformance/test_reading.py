"""Reading presence: the three paths, getPresencesByUserId and what a presence holds."""

from __future__ import annotations

import pytest
from msgraph.generated.communications.get_presences_by_user_id.get_presences_by_user_id_post_request_body import (  # noqa: E501
    GetPresencesByUserIdPostRequestBody,
)
from msgraph.generated.models.work_location_source import WorkLocationSource
from msgraph.generated.models.work_location_type import WorkLocationType

from tests.emulator.conformance.sdk import Tenant, refused

pytestmark = pytest.mark.anyio


async def test_an_app_reads_a_users_presence_with_every_documented_property(
    tenant: Tenant,
) -> None:
    user = tenant.new_user()
    presence = await tenant.app_client().users.by_user_id(user).presence.get()
    assert presence is not None
    assert presence.id == user
    assert (presence.availability, presence.activity) == ("Available", "Available")
    assert presence.status_message is None
    assert presence.out_of_office_settings is not None
    assert presence.out_of_office_settings.is_out_of_office is False
    assert presence.work_location is not None
    assert presence.work_location.work_location_type == WorkLocationType.Unspecified
    assert presence.work_location.source == WorkLocationSource.None_
    assert presence.sequence_number


async def test_communications_presences_reads_the_same_presence(tenant: Tenant) -> None:
    user = tenant.new_user()
    graph = tenant.app_client()
    by_user = await graph.users.by_user_id(user).presence.get()
    by_presence = await graph.communications.presences.by_presence_id(user).get()
    assert by_user is not None and by_presence is not None
    assert by_presence.id == user
    assert by_presence.sequence_number == by_user.sequence_number


async def test_a_signed_in_user_reads_their_own_presence_at_me(tenant: Tenant) -> None:
    user = tenant.new_user()
    presence = await tenant.user_client(user).me.presence.get()
    assert presence is not None and presence.id == user


async def test_me_is_refused_to_an_app(tenant: Tenant) -> None:
    status, error = await refused(tenant.app_client().me.presence.get())
    assert status == 400
    assert error.error is not None and error.error.code == "BadRequest"


async def test_an_unknown_user_is_404(tenant: Tenant) -> None:
    status, error = await refused(
        tenant.app_client().users.by_user_id("no-such-user").presence.get()
    )
    assert status == 404
    assert error.error is not None and error.error.code == "ResourceNotFound"


async def test_get_presences_by_user_id_reads_several_users(tenant: Tenant) -> None:
    users = [tenant.new_user() for _ in range(3)]
    body = GetPresencesByUserIdPostRequestBody(ids=users)
    answer = await tenant.app_client().communications.get_presences_by_user_id.post(body)
    assert answer is not None and answer.value is not None
    assert sorted(p.id or "" for p in answer.value) == sorted(users)


async def test_get_presences_by_user_id_takes_at_most_650_ids(tenant: Tenant) -> None:
    user = tenant.new_user()
    graph = tenant.app_client()
    body = GetPresencesByUserIdPostRequestBody(ids=[user] * 650)
    answer = await graph.communications.get_presences_by_user_id.post(body)
    assert answer is not None and [p.id for p in answer.value or []] == [user]
    too_many = GetPresencesByUserIdPostRequestBody(ids=[f"u{i}" for i in range(651)])
    status, _ = await refused(graph.communications.get_presences_by_user_id.post(too_many))
    assert status == 400


async def test_the_sequence_number_grows_with_each_change(tenant: Tenant) -> None:
    user = tenant.new_user()
    graph = tenant.app_client()
    before = await graph.users.by_user_id(user).presence.get()
    tenant.post(f"/_emulator/users/{user}/client", {"availability": "Busy", "activity": "Busy"})
    after = await graph.users.by_user_id(user).presence.get()
    assert before is not None and after is not None
    assert before.sequence_number and after.sequence_number
    assert after.sequence_number > before.sequence_number
