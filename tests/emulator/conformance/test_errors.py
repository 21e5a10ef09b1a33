"""Graph's error shape and request ids, as the SDK reads them."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from kiota_abstractions.base_request_configuration import RequestConfiguration

from tests.emulator.conformance.sdk import Tenant, refused

pytestmark = pytest.mark.anyio


async def test_an_error_carries_code_message_and_inner_error(tenant: Tenant) -> None:
    status, error = await refused(tenant.app_client().users.by_user_id("nobody").presence.get())
    assert status == 404
    main = error.error
    assert main is not None and main.code == "ResourceNotFound" and main.message
    inner = main.inner_error
    assert inner is not None and inner.date is not None
    headers = {k.lower(): v for k, v in (error.response_headers or {}).items()}
    # Graph's request id, in the header and in innerError alike; without a
    # client-request-id from the caller, Graph puts its request id there too.
    assert inner.request_id == headers["request-id"]
    assert inner.client_request_id == headers["client-request-id"] == inner.request_id


async def test_a_client_request_id_comes_back_beside_graphs_own(tenant: Tenant) -> None:
    sent = str(uuid.uuid4())
    config = RequestConfiguration[Any]()
    config.headers.add("client-request-id", sent)
    presence = tenant.app_client().users.by_user_id("nobody").presence
    _, error = await refused(presence.get(request_configuration=config))
    inner = error.error.inner_error
    headers = {k.lower(): v for k, v in (error.response_headers or {}).items()}
    assert inner.client_request_id == headers["client-request-id"] == sent
    assert inner.request_id == headers["request-id"] != sent


async def test_a_delegated_user_without_read_all_cannot_read_others(tenant: Tenant) -> None:
    user, other = tenant.new_user(), tenant.new_user()
    graph = tenant.user_client(user, "Presence.Read")
    status, error = await refused(graph.users.by_user_id(other).presence.get())
    assert status == 403
    assert error.error is not None and error.error.code == "Forbidden"


async def test_an_app_cannot_subscribe_to_presence(tenant: Tenant) -> None:
    from datetime import timedelta

    from msgraph.generated.models.subscription import Subscription

    user = tenant.new_user()
    body = Subscription(
        change_type="updated",
        resource=f"/communications/presences/{user}",
        notification_url="https://127.0.0.1:9/hook",
        expiration_date_time=tenant.now() + timedelta(minutes=30),
    )
    status, _ = await refused(tenant.app_client().subscriptions.post(body))
    assert status == 403


async def test_a_429_carries_retry_after_and_the_sdk_retries_then_gives_up(
    tenant: Tenant,
) -> None:
    # Fault injection is the emulator's whole state: this worker's tests run one at a
    # time, and the faults are switched off again whatever happens.
    user = tenant.new_user()
    graph = tenant.app_client()
    await graph.users.by_user_id(user).presence.get()  # signed in before the faults
    template = "GET /v1.0/users/{id}/presence"
    before = tenant.control.get("/_emulator/stats").json()["requests"].get(template, 0)
    tenant.post("/_emulator/faults", {"rate_429": 1.0, "retry_after_seconds": 1})
    try:
        status, error = await refused(graph.users.by_user_id(user).presence.get())
    finally:
        tenant.post("/_emulator/faults", {})
    assert status == 429 and error.error is not None and error.error.code == "TooManyRequests"
    headers = {k.lower(): v for k, v in (error.response_headers or {}).items()}
    assert headers["retry-after"] == "1"
    after = tenant.control.get("/_emulator/stats").json()["requests"][template]
    assert after - before == 4  # the first try and the SDK's three retries
