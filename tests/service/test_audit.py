"""The audit log in the service layer (issue 18): what the hub records for whoever acts,
nothing for work nobody asked for, a directory run as one row, and never a secret."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from presencebridge.adapters.store.audit import AuditQuery
from presencebridge.core import rules
from presencebridge.core.directory import Policy, Rules
from presencebridge.core.model import CallState, TeamsSyncMode, User
from presencebridge.core.ports import DirectoryPerson
from presencebridge.core.settings import GroupSettings
from presencebridge.service import audit
from presencebridge.service.directory import DirectorySync
from presencebridge.service.hub import Hub
from tests.service.conftest import FOCUS, T0, Hubs
from tests.service.test_directory_job import FakeDirectory

pytestmark = pytest.mark.anyio
ANNA = audit.Actor(audit.SESSION, "anna@example.com")


def rows(hub: Hub) -> list[tuple[str, str, str, dict[str, object]]]:
    page = hub.store.audit_page(AuditQuery(limit=1000))
    return [(e.actor, e.action, e.target, json.loads(e.details)) for e in reversed(page.entries)]


async def test_changes_nobody_asked_for_are_not_recorded(hub: Hub) -> None:
    await hub.create_user(User("bob", "Bob", "hq"))
    await hub.handle("bob", rules.AddProfile(FOCUS), "agent")
    await hub.advance_clock(60)
    assert rows(hub) == []


async def test_an_actors_changes_are_recorded_and_events_are_not(hub: Hub) -> None:
    with audit.acting_as(ANNA):
        await hub.update_group_settings("hq", GroupSettings(user_may_change=False))
        await hub.create_user(User("bob", "Bob", "hq", extensions=("2101",)))
        await hub.update_user("bob", {"email": "bob@example.com"}, "admin")
        await hub.handle("bob", rules.AddProfile(FOCUS), "profile")
        await hub.handle("bob", rules.SelectProfile("Fokus"), "manual")
        end = T0 + timedelta(hours=1)
        await hub.handle("bob", rules.AddAppointment("a1", "Call", T0, end), "appointment")
        await hub.handle("bob", rules.SetOwnMode(TeamsSyncMode.OFF), "settings")
        # High-volume events are no administrative change, whoever sends them.
        await hub.handle("bob", rules.TelephonyEvent("c1", CallState.CONNECTED), "pbx")
        token_id, token = await hub.issue_token("bob", "personal", "backup")
        await hub.revoke_agent_token("bob", token_id, "personal")
    found = rows(hub)
    assert {actor for actor, *_ in found} == {"anna@example.com"}
    assert [(action, target) for _, action, target, _ in found] == [
        ("group.settings.changed", "hq"), ("user.created", "bob"), ("user.changed", "bob"),
        ("profile.created", "bob"), ("profile.selected", "bob"), ("appointment.created", "bob"),
        ("user.settings.changed", "bob"), ("personal_token.issued", "bob"),
        ("personal_token.revoked", "bob"),
    ]  # fmt: skip
    details = [d for *_, d in found]
    assert details[0]["user_may_change"] == [True, False]
    assert details[1] == {"display_name": "Bob", "group": "hq", "extensions": ["2101"]}
    assert details[2] == {"email": [None, "bob@example.com"]}
    assert details[4] == {"name": [None, "Fokus"]}
    assert details[6] == {"teams_sync_mode": [None, "off"]}
    assert details[7] == {"id": token_id, "name": "backup"}
    assert token not in json.dumps(found)


async def test_a_directory_run_is_one_row_and_a_dry_run_none(hubs: Hubs) -> None:
    hub = await hubs.open()
    people = [DirectoryPerson(k, k.title(), upn=f"{k}@x.com") for k in ("a", "b")]
    job = DirectorySync(hub, FakeDirectory(people), Policy("ldap", Rules((), "hq")))
    with audit.acting_as(ANNA):
        await job.run(dry_run=True)
        assert rows(hub) == []
        report = await job.run()
    assert sorted(hub.user_ids()) == ["a@x.com", "b@x.com"]
    [(actor, action, target, details)] = rows(hub)
    assert (actor, action, target) == ("anna@example.com", "directory.sync", "ldap")
    assert details["counts"] == report.counts and report.counts


def test_secrets_are_only_said_to_have_changed() -> None:
    found = audit.changes(
        {"client_secret": "old-secret", "api_token": "t1", "name": "a"},
        {"client_secret": "new-secret", "api_token": "t2", "name": "b"},
    )
    assert found == {"api_token": "changed", "client_secret": "changed", "name": ["a", "b"]}
    text = audit.details_text({"password": "hunter2", "token": "pbp_x", "id": "42"})
    assert "hunter2" not in text and "pbp_x" not in text and '"id": "42"' in text
    assert audit.entry("user.created", "bob") is None  # nobody acts: nothing to record
