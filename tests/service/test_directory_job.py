"""The directory sync job on an in-memory store, with a fake of our own directory port."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import pytest

from presencebridge.core.directory import Policy, Rules
from presencebridge.core.model import TeamsSyncMode
from presencebridge.core.ports import (
    DirectoryPerson,
    DirectoryRead,
    DirectoryUnavailable,
    TeamsAccount,
)
from presencebridge.service.directory import DirectorySync
from tests.service.conftest import Hubs

pytestmark = pytest.mark.anyio
POLICY = Policy("ldap", Rules((), "hq"), 0.10, timedelta(days=30))


class FakeDirectory:
    name = "ldap"

    def __init__(self, people: list[DirectoryPerson]) -> None:
        self.people = people
        self.fail = False
        self.cursors: list[str | None] = []

    async def read(self, cursor: str | None) -> DirectoryRead:
        self.cursors.append(cursor)
        if self.fail:
            raise DirectoryUnavailable("page 3 failed")
        return DirectoryRead(tuple(self.people), cursor=f"c{len(self.cursors)}")

    async def aclose(self) -> None:
        return None


class FakeLookup:
    def __init__(self, known: dict[str, str]) -> None:
        self.known = known
        self.asked: list[str] = []

    async def lookup(self, names: Sequence[str]) -> list[TeamsAccount]:
        self.asked.extend(names)
        return [TeamsAccount(n, self.known.get(n)) for n in names]


def person(key: str, upn: str) -> DirectoryPerson:
    return DirectoryPerson(
        key, key.title(), upn=upn, numbers=("030 1234567",) if key == "a" else ()
    )


async def test_teams_ids_are_looked_up_and_people_without_one_have_sync_off(hubs: Hubs) -> None:
    hub = await hubs.open()
    source = FakeDirectory([person("a", "a@x.com"), person("b", "b@x.com")])
    lookup = FakeLookup({"a@x.com": "teams-a"})
    job = DirectorySync(hub, source, POLICY, lookup)
    report = await job.run()
    assert report.summary == "create 2, update 0, disable 0, delete 0, unchanged 0"
    a, b = hub.user("a@x.com").state, hub.user("b@x.com").state
    assert a.user.teams_user_id == "teams-a" and a.own_mode is None
    assert a.user.numbers == ("+49301234567",) and a.user.directory_key == "ldap:a"
    assert b.user.teams_user_id is None and b.own_mode is TeamsSyncMode.OFF
    # b gets a Teams account: found on the next run, sync on again; a is not asked again.
    lookup.known["b@x.com"] = "teams-b"
    report = await job.run()
    assert lookup.asked == ["a@x.com", "b@x.com", "b@x.com"]
    assert report.summary == "create 0, update 1, disable 0, delete 0, unchanged 1"
    b = hub.user("b@x.com").state
    assert b.user.teams_user_id == "teams-b" and b.own_mode is None
    assert source.cursors == [None, "c1"]  # the cursor is stored and used


async def test_a_failed_read_and_a_dry_run_change_nothing(hubs: Hubs) -> None:
    hub = await hubs.open()
    source = FakeDirectory([person("a", "a@x.com")])
    job = DirectorySync(hub, source, POLICY)
    assert (await job.run(dry_run=True)).lines == [
        "create a@x.com (A, group hq, Teams sync off (no Teams account))"
    ]
    source.fail = True
    report = await job.run()
    assert report.error is not None and "nothing was changed" in report.error
    assert hub.user_ids() == []
    source.fail = False
    await job.run()
    assert hub.user_ids() == ["a@x.com"]
    assert source.cursors == [None, None, None]  # nothing stored until a run applied


async def test_a_rule_naming_an_unknown_group_stops_the_run(hubs: Hubs) -> None:
    hub = await hubs.open()
    policy = Policy("ldap", Rules((), "nowhere"))
    report = await DirectorySync(hub, FakeDirectory([person("a", "a@x.com")]), policy).run()
    assert report.stopped is not None and "nowhere" in report.stopped
    assert hub.user_ids() == []
