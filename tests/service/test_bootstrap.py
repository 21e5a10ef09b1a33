"""The wiring: what `bootstrap` builds from the settings, started and stopped in-process."""

from __future__ import annotations

from pathlib import Path

import pytest

from presencebridge import bootstrap
from presencebridge.config import Settings
from presencebridge.core.model import CallState, Telephony, User
from presencebridge.core.rules import TelephonyEvent
from presencebridge.core.settings import GroupSettings

pytestmark = pytest.mark.anyio


async def test_without_an_app_registration_the_hub_runs_alone(tmp_path: Path) -> None:
    settings = Settings(admin_token="t", data_dir=tmp_path)
    async with bootstrap.running(settings) as app:
        assert app.teams_sync is None
        assert app.cluster is None
        assert app.notify is None
        assert app.agents.client_side is None
        await app.hub.create_group("hq", "HQ", GroupSettings())
        await app.hub.create_user(User("alice", "Alice", "hq"))
        view = await app.hub.handle("alice", TelephonyEvent("c1", CallState.CONNECTED), "pbx")
        assert view.presence.telephony is Telephony.ON_THE_PHONE


async def test_an_app_registration_without_a_secret_means_the_agents_sync(
    tmp_path: Path,
) -> None:
    settings = Settings(admin_token="t", data_dir=tmp_path, tenant_id="contoso", client_id="app")
    async with bootstrap.running(settings) as app:
        assert app.teams_sync is None
        assert app.agents.client_side is not None
        assert app.agents.client_side.client_id == "app"
