from __future__ import annotations

import pytest

from tests.emulator.conformance.sdk import Tenant

pytestmark = pytest.mark.anyio


async def test_app_reads(tenant: Tenant) -> None:
    user = tenant.new_user()
    graph = tenant.app_client()
    presence = await graph.users.by_user_id(user).presence.get()
    assert presence is not None
    print(presence)


async def test_me(tenant: Tenant) -> None:
    user = tenant.new_user()
    graph = tenant.user_client(user)
    presence = await graph.me.presence.get()
    assert presence is not None and presence.id == user
