"""The directory sync job on an in-memory store, with a fake of our own directory port."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import pytest

from presencebridge.core.directory import Policy, Rules
from presencebridge.core.model import TeamsSyncMode, User, UserState
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


class FakeDelta:
    """A directory with change tracking: the first read is full, later ones list only
    the people changed since the cursor they are given."""

    name = "ldap"

    def __init__(self, people: list[DirectoryPerson]) -> None:
        self.history: list[list[DirectoryPerson]] = [people]

    def change(self, *people: DirectoryPerson) -> None:
        self.history.append(list(people))

    async def read(self, cursor: str | None) -> DirectoryRead:
        if cursor is None:
            latest = {p.key: p for batch in self.history for p in batch}
            return DirectoryRead(tuple(latest.values()), cursor=str(len(self.history)))
        changed = [p for batch in self.history[int(cursor) :] for p in batch]
        return DirectoryRead(tuple(changed), False, cursor=str(len(self.history)))

    async def aclose(self) -> None:
        return None


async def test_a_run_elsewhere_is_seen_although_the_people_are_kept_in_memory(
    hubs: Hubs,
) -> None:
    # Two jobs on one store, as two nodes have: each keeps the people of its own last
    # run in memory, and must read them again when the other one has run since.
    hub = await hubs.open()
    source = FakeDelta([person("a", "a@x.com"), person("b", "b@x.com")])
    first, second = DirectorySync(hub, source, POLICY), DirectorySync(hub, source, POLICY)
    assert (await first.run()).summary.startswith("create 2")
    assert (await second.run()).summary.endswith("unchanged 2")

    source.change(DirectoryPerson("b", "Bea", upn="b@x.com"))
    assert (await first.run()).summary.startswith("create 0, update 1")
    # The delta the second job reads is empty (the first took the change): with its
    # own, older picture of b it would put the old name back.
    report = await second.run()
    assert report.summary == "create 0, update 0, disable 0, delete 0, unchanged 2"
    assert hub.user("b@x.com").state.user.display_name == "Bea"
    source.change(DirectoryPerson("a", "Ada", upn="a@x.com"))
    assert (await second.run()).summary.startswith("create 0, update 1")
    assert hub.user("a@x.com").state.user.display_name == "Ada"


async def test_refused_people_are_reported_and_the_rest_is_applied(hubs: Hubs) -> None:
    hub = await hubs.open()
    # Another node's user holds a number: only the database knows it, so the first
    # slice of creates is refused as a whole and made again one by one.
    other = UserState(User("elsewhere", "Elsewhere", "hq", None, numbers=("+49301234567",)))
    await hub.store_io(hub.store.create_user, other, hub.clock.now())
    people = [person(k, f"{k}@x.com") for k in ("a", "b", "c")]  # a has 030 1234567
    people.append(DirectoryPerson("d", "D", upn="d@x.com", extensions=("2101",)))
    people.append(DirectoryPerson("e", "E", upn="e@x.com", extensions=("2101",)))
    source = FakeDirectory(people)
    report = await DirectorySync(hub, source, POLICY).run()
    assert sorted(hub.user_ids()) == ["b@x.com", "c@x.com", "d@x.com"]
    assert len(report.failures) == 2
    assert (
        report.failures[0].startswith("failed: create a@x.com")
        and "database" in (report.failures[0])
    )
    assert report.failures[1] == (
        "failed: create e@x.com (E, group hq, Teams sync off (no Teams account)): "
        "extension '2101' belongs to user 'd@x.com'"
    )
    # updates, in the order of the keys: c takes 2102 first, so d cannot; d keeps 2101
    source.people = [
        person("b", "b@x.com"),
        DirectoryPerson("c", "C", upn="c@x.com", extensions=("2102",)),
        DirectoryPerson("d", "D", upn="d@x.com", extensions=("2102",)),
        DirectoryPerson("e", "E", upn="e@x.com"),
    ]
    report = await DirectorySync(hub, source, POLICY).run()
    assert hub.resolve(extension="2102") == "c@x.com"
    assert hub.user("d@x.com").state.user.extensions == ("2101",)
    assert report.failures == [
        "failed: update d@x.com: extensions: 2102: extension '2102' belongs to user 'c@x.com'"
    ]


async def test_extensions_move_between_people_in_one_delta(hubs: Hubs) -> None:
    hub = await hubs.open()
    a = DirectoryPerson("a", "A", upn="a@x.com")
    b = DirectoryPerson("b", "B", upn="b@x.com", extensions=("2101", "2102"))
    source = FakeDelta([a, b])
    assert (await DirectorySync(hub, source, POLICY).run()).failures == []
    # One delta: a (planned before b) takes 2101 from b, and a new person c takes 2102.
    source.change(
        DirectoryPerson("a", "A", upn="a@x.com", extensions=("2101",)),
        DirectoryPerson("b", "B", upn="b@x.com"),
        DirectoryPerson("c", "C", upn="c@x.com", extensions=("2102",)),
    )

    report = await DirectorySync(hub, source, POLICY).run()

    assert report.failures == []
    assert report.summary == "create 1, update 2, disable 0, delete 0, unchanged 0"
    assert hub.resolve(extension="2101") == "a@x.com"
    assert hub.resolve(extension="2102") == "c@x.com"
    assert hub.user("b@x.com").state.user.extensions == ()
