"""Directory rules saved in the store (console, API), on SQLite: they decide from the
next run on, survive a restart of the hub (the database file opened again), count on
another node, and a preview with rules not saved stores nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

import pytest

from presencebridge.adapters.store import Store, create_engine, migrate
from presencebridge.config import DirectoryRulesConfig
from presencebridge.core.directory import Policy, Rule, Rules
from presencebridge.core.errors import Rejected
from presencebridge.core.model import TeamsSyncMode
from presencebridge.core.ports import DirectoryPerson, DirectoryRead
from presencebridge.core.settings import GroupSettings
from presencebridge.service.directory import DirectorySync
from presencebridge.service.hub import Hub
from tests.service.conftest import FixedClock, Hubs

pytestmark = pytest.mark.anyio
FILE = Policy("entra", Rules((), "hq"), 0.5, timedelta(days=30))  # the file: all in hq
SALES = DirectoryRulesConfig.model_validate(
    {"rules": [{"member_of": "Sales", "group": "sales"}], "default_group": "hq"}
)


class Directory:
    """A directory that reads only the attributes and groups the rules look at, as
    Entra ID does, with change tracking: a cursor reads only what changed since."""

    name = "entra"

    def __init__(self, people: Sequence[DirectoryPerson]) -> None:
        self.people = {p.key: p for p in people}
        self.changed: list[set[str]] = [set(self.people)]
        self.attributes: tuple[str, ...] = ()
        self.reads: list[str | None] = []

    def change(self, person: DirectoryPerson) -> None:
        self.people[person.key] = person
        self.changed.append({person.key})

    def follow_rules(self, attributes: Sequence[str], groups: Sequence[str]) -> bool:
        gained = not set(attributes) <= set(self.attributes)
        self.attributes = tuple(attributes)
        return gained

    async def read(self, cursor: str | None) -> DirectoryRead:
        self.reads.append(cursor)
        keys = set(self.people)
        if cursor is not None:
            keys = set().union(*self.changed[int(cursor) :])
        people = tuple(self._shown(self.people[k]) for k in sorted(keys))
        return DirectoryRead(people, cursor is None, cursor=str(len(self.changed)))

    def _shown(self, person: DirectoryPerson) -> DirectoryPerson:
        kept = tuple((k, v) for k, v in person.attributes if k in self.attributes)
        return DirectoryPerson(
            person.key,
            person.display_name,
            upn=person.upn,
            groups=person.groups,
            attributes=kept,
            teams_user_id=person.key,
        )

    async def aclose(self) -> None:
        return None


def person(key: str, groups: tuple[str, ...] = (), **attributes: str) -> DirectoryPerson:
    return DirectoryPerson(key, key.title(), upn=f"{key}@x.com", groups=groups,
                           attributes=tuple(attributes.items()), teams_user_id=key)  # fmt: skip


async def with_sales(hubs: Hubs) -> Hub:
    hub = await hubs.open()
    if not any(g.id == "sales" for g in hub.groups()):
        await hub.create_group("sales", "Sales", GroupSettings())
    return hub


def origin(job: DirectorySync) -> str:
    return job.rules.origin


def group_of(hub: Hub, key: str) -> str:
    return hub.user(f"{key}@x.com").state.user.group


@asynccontextmanager
async def hub_on_file(path: Path, clock: FixedClock) -> AsyncIterator[Hub]:
    """A hub on a SQLite file, the store opened as the server opens it; closed after."""
    engine = create_engine(f"sqlite:///{path}")
    migrate(engine)
    hub = Hub(Store(engine), clock)
    await hub.start()
    try:
        if not hub.groups():
            await hub.create_group("hq", "Headquarters", GroupSettings())
            await hub.create_group("sales", "Sales", GroupSettings())
        yield hub
    finally:
        await hub.stop()
        engine.dispose()


async def test_saved_rules_decide_the_next_run_and_survive_a_restart(
    tmp_path: Path, clock: FixedClock
) -> None:
    database = tmp_path / "presencebridge.db"
    source = Directory([person("ann"), person("bob", ("Sales",))])
    async with hub_on_file(database, clock) as hub:
        job = DirectorySync(hub, source, FILE)
        await job.start()
        await job.run()
        assert (group_of(hub, "ann"), group_of(hub, "bob")) == ("hq", "hq")
        saved = await job.save_rules(SALES, "console")
        assert (saved.origin, saved.changed_by) == ("console", "console")
        report = await job.run()
        assert report.lines == ["update bob@x.com: group: sales"]
        assert group_of(hub, "bob") == "sales"
        await job.stop()

    # A restart: the database opened again, the job made from the file's rules again.
    async with hub_on_file(database, clock) as hub:
        job = DirectorySync(hub, source, FILE)
        await job.start()
        assert job.rules.origin == "console" and job.policy.rules == SALES.to_rules()
        source.change(person("cid", ("Sales",)))
        report = await job.run()
        assert report.lines == ["create cid@x.com (Cid, group sales)"]
        assert group_of(hub, "bob") == "sales"  # not put back by the file's rules

        await job.reset_rules()
        report = await job.run()
        assert sorted(report.lines) == [
            "update bob@x.com: group: hq",
            "update cid@x.com: group: hq",
        ]
        await job.stop()


async def test_rules_saved_on_another_node_count_at_this_nodes_next_run(hubs: Hubs) -> None:
    hub = await with_sales(hubs)
    source = Directory([person("bob", ("Sales",))])
    here, there = DirectorySync(hub, source, FILE), DirectorySync(hub, source, FILE)
    await here.run()
    assert group_of(hub, "bob") == "hq"
    await there.save_rules(SALES, "console")
    assert origin(here) == "config"  # this node has not looked yet
    await here.run()
    assert group_of(hub, "bob") == "sales" and origin(here) == "console"
    await there.reset_rules()
    await here.run()
    assert group_of(hub, "bob") == "hq"


async def test_a_rule_on_an_attribute_not_read_before_reads_everyone_again(hubs: Hubs) -> None:
    hub = await with_sales(hubs)
    source = Directory([person("ann", department="Sales"), person("bob", department="HR")])
    job = DirectorySync(hub, source, FILE)
    await job.run()
    await job.run()
    assert source.reads == [None, "1"]
    rules = {
        "rules": [{"attribute": "department", "equals": "sales", "group": "sales"}],
        "default_group": "hq",
    }
    await job.save_rules(DirectoryRulesConfig.model_validate(rules), "api")
    report = await job.run()
    # A delta would have listed nobody, and the people stored lack the department.
    assert source.reads[-1] is None and report.full_read
    assert group_of(hub, "ann") == "sales" and group_of(hub, "bob") == "hq"
    await job.run()
    assert source.reads[-1] == "1"  # deltas again once a full read is stored


async def test_a_preview_uses_the_rules_given_and_stores_nothing(hubs: Hubs) -> None:
    hub = await with_sales(hubs)
    source = Directory([person("ann", department="Temps"), person("bob", ("Sales",))])
    job = DirectorySync(hub, source, FILE)
    first = await job.run()
    record = await hub.store_io(hub.store.load_directory, "entra")
    candidate = Rules((Rule(None, attribute="department", equals="temps"),), "hq")
    report = await job.preview(candidate)
    assert report.preview and report.dry_run
    assert report.lines == ["disable ann@x.com (out of scope)"]
    assert job.last is first and job.rules.origin == "config"
    assert await hub.store_io(hub.store.load_directory_rules, "entra") is None
    assert await hub.store_io(hub.store.load_directory, "entra") == record
    assert hub.user("ann@x.com").state.own_mode is not TeamsSyncMode.OFF
    # The source reads for the rules in effect again: the next run is a delta.
    assert source.attributes == ()
    await job.run()
    assert source.reads[-1] == "1"


async def test_rules_naming_a_group_the_hub_lacks_are_refused_and_not_stored(
    hubs: Hubs,
) -> None:
    hub = await with_sales(hubs)
    job = DirectorySync(hub, Directory([person("ann")]), FILE)
    wrong = DirectoryRulesConfig.model_validate(
        {
            "rules": [{"ou": "OU=x", "group": "sales"}, {"ou": "OU=y", "group": "nowhere"}],
            "default_group": "gone",
        }
    )
    with pytest.raises(Rejected) as refused:
        await job.save_rules(wrong, "api")
    assert refused.value.message == (
        "rules.1.group: no configuration group 'nowhere'; create it first; "
        "default_group: no configuration group 'gone'; create it first"
    )
    with pytest.raises(Rejected):
        await job.preview(wrong.to_rules())
    assert await hub.store_io(hub.store.load_directory_rules, "entra") is None
    assert job.rules.origin == "config"


async def test_a_preview_leaves_the_source_reading_what_it_read_before(hubs: Hubs) -> None:
    # This node learns of rules saved on another node (its page shows them) before its
    # next run: a preview in between must not make that run take the stored cursor,
    # made for the rules before, as good for the new ones.
    hub = await with_sales(hubs)
    source = Directory([person("ann", department="Sales"), person("bob", department="HR")])
    here, there = DirectorySync(hub, source, FILE), DirectorySync(hub, source, FILE)
    await here.run()
    rules = {"rules": [{"attribute": "department", "equals": "sales", "group": "sales"}],
             "default_group": "hq"}  # fmt: skip
    await there.save_rules(DirectoryRulesConfig.model_validate(rules), "console")
    await here.current_rules()
    await here.preview(Rules((), "hq"))
    report = await here.run()
    assert source.reads[-1] is None and report.full_read
    assert group_of(hub, "ann") == "sales"
