"""JSON batching through the SDK's BatchRequestContent: at most 20 requests a batch."""

from __future__ import annotations

import pytest
from msgraph.generated.users.item.presence.set_presence.set_presence_post_request_body import (
    SetPresencePostRequestBody,
)
from msgraph_core.requests.batch_request_content import BatchRequestContent
from msgraph_core.requests.batch_request_content_collection import (
    BatchRequestContentCollection,
)
from msgraph_core.requests.batch_request_item import BatchRequestItem

from tests.emulator.conformance.sdk import Tenant

pytestmark = pytest.mark.anyio


async def test_a_batch_writes_and_reads_each_request_on_its_own(tenant: Tenant) -> None:
    app, user, missing = tenant.new_app(), tenant.new_user(), "no-such-user"
    graph = tenant.app_client(app)
    write = graph.users.by_user_id(user).presence.set_presence.to_post_request_information(
        SetPresencePostRequestBody(
            session_id=app.client_id, availability="Busy", activity="InACall"
        )
    )
    content = BatchRequestContent()
    content.add_request(None, BatchRequestItem(request_information=write, id="write"))
    read = graph.users.by_user_id(user).presence.to_get_request_information()
    content.add_request(
        None, BatchRequestItem(request_information=read, id="read", depends_on=["write"])
    )
    lost = graph.users.by_user_id(missing).presence.to_get_request_information()
    content.add_request(None, BatchRequestItem(request_information=lost, id="lost"))
    answer = await graph.batch.post(batch_request_content=content)
    assert answer.get_response_status_codes() == {"write": 200, "read": 200, "lost": 404}
    # msgraph-core reads an inner body as base64 bytes, not as the JSON object Graph
    # answers, so the write's effect is checked with a plain GET.
    presence = await graph.users.by_user_id(user).presence.get()
    assert presence is not None and (presence.availability, presence.activity) == (
        "Busy",
        "InACall",
    )


async def test_more_than_20_requests_go_in_batches_of_20(tenant: Tenant) -> None:
    users = [tenant.new_user() for _ in range(25)]
    graph = tenant.app_client()
    collection = BatchRequestContentCollection()
    for user in users:
        info = graph.users.by_user_id(user).presence.to_get_request_information()
        collection.add_batch_request_item(BatchRequestItem(request_information=info))
    batches = collection.get_batch_requests_for_execution()
    assert [len(b.requests) for b in batches] == [20, 5]
    answer = await graph.batch.post(batch_request_content=collection)
    codes: dict[str, int] = {}
    for batch in answer.get_responses():
        codes.update(batch.get_response_status_codes())
    assert len(codes) == 25 and set(codes.values()) == {200}
