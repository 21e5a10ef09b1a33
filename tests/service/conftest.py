"""The service layer on an in-memory store, with a fake Graph and a clock the test moves.

`FakeTeams` implements our own port (`core.ports.TeamsPresenceApi`): it records the
writes, shows what Microsoft Teams would show from them and from what the user
does in their Teams client, and can refuse writes the way a throttled Graph does.
Nothing here sleeps: time moves only when a test moves the hub's clock, and
`Sync.settle` waits only until the writer has nothing left to do.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.pool import StaticPool

from presencebridge.adapters.graph.client import GraphError
from presencebridge.adapters.store import JSON_OPTIONS, Store, migrate
from presencebridge.core.model import Profile, Status, TeamsSyncMode, User
from presencebridge.core.ports import Reading
from presencebridge.core.rules import AddProfile
from presencebridge.core.settings import GroupSettings
from presencebridge.service.clock import Clock
from presencebridge.service.hub import Hub
from presencebridge.service.teams_sync import TeamsPoller, TeamsWriter

T0 = datetime(2024, 5, 6, 9, 0, tzinfo=UTC)
AVAILABLE = ("Available", "Available")
IN_A_CALL = ("Busy", "InACall")
DND = ("DoNotDisturb", "DoNotDisturb")
FOCUS = Profile("Fokus", Status.DND, "Bitte nicht stören", "#aa0000")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class FixedClock(Clock):
    """The hub's clock, standing still at T0 until a test moves it."""

    def now(self) -> datetime:
        return T0 + timedelta(seconds=self.offset_seconds)


@dataclass
class TeamsUser:
    session: tuple[str, str] | None = None  # the hub's app session
    preferred_dnd: bool = False  # set through Graph (by the hub)
    client: tuple[str, str] | None = None  # what the user's Teams client shows (a call)
    by_hand: tuple[str, str] | None = None  # a status the user set by hand

    def shown(self) -> tuple[str, str]:
        if self.by_hand is not None:
            return self.by_hand
        if self.preferred_dnd:
            return DND
        for candidate in (self.client, self.session):
            if candidate is not None:
                return candidate
        return AVAILABLE


@dataclass
class FakeTeams:
    """Graph's presence API as the hub uses it: writes recorded, reads from a dict."""

    max_ids_per_read: int = 650
    users: dict[str, TeamsUser] = field(default_factory=dict)
    writes: list[tuple[str, str, object]] = field(default_factory=list)
    refuse: int = 0  # writes to refuse with 429, like a throttled Graph after its retries

    def user(self, teams_id: str) -> TeamsUser:
        return self.users.setdefault(teams_id, TeamsUser())

    def sent(self, teams_id: str) -> list[str]:
        return [kind for kind, who, _ in self.writes if who == teams_id]

    def _write(self, kind: str, teams_id: str, value: object) -> None:
        self.writes.append((kind, teams_id, value))
        if self.refuse:
            self.refuse -= 1
            raise GraphError(429, "too many requests")

    async def read(self, teams_user_ids: Sequence[str]) -> Sequence[Reading]:
        return [Reading(i, *self.user(i).shown(), None) for i in teams_user_ids]

    async def set_session(self, teams_user_id: str, availability: str, activity: str) -> None:
        self._write("set_session", teams_user_id, activity)
        self.user(teams_user_id).session = (availability, activity)

    async def clear_session(self, teams_user_id: str) -> None:
        self._write("clear_session", teams_user_id, None)
        self.user(teams_user_id).session = None

    async def set_preferred_dnd(self, teams_user_id: str, duration: timedelta | None) -> None:
        self._write("set_preferred_dnd", teams_user_id, duration)
        self.user(teams_user_id).preferred_dnd = True

    async def clear_preferred(self, teams_user_id: str) -> None:
        self._write("clear_preferred", teams_user_id, None)
        self.user(teams_user_id).preferred_dnd = False

    async def set_status_message(
        self, teams_user_id: str, text: str, until: datetime | None
    ) -> None:
        self._write("set_status_message", teams_user_id, (text, until))

    async def clear_status_message(self, teams_user_id: str) -> None:
        self._write("clear_status_message", teams_user_id, None)


class Sync:
    """The hub's Teams sync (writer and poller) against the fake, driven by the test."""

    def __init__(self, hub: Hub, graph: FakeTeams) -> None:
        self.hub = hub
        self.graph = graph
        self.writer = TeamsWriter(hub, graph, concurrency=2, retry_delay=lambda _failures: 0.0)
        self.poller = TeamsPoller(hub, graph, reads_per_second=1000.0, min_interval=0.0)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.writer.compare_everyone()
        self._task = asyncio.create_task(self.writer.run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def settle(self) -> None:
        """Until the writer has written (and had acknowledged) everything it wants to."""
        give_up = time.monotonic() + 5
        for _turn in range(10_000_000):
            if self.writer.settled() or time.monotonic() > give_up:
                break
            await asyncio.sleep(0)  # the store's commits run on a worker thread
        assert self.writer.settled(), "the writer did not settle"

    async def poll(self) -> None:
        """One poll round; then the writer settles whatever the readings changed."""
        await self.poller.poll_once()
        await self.settle()


@pytest.fixture(scope="session")
def migrated_database() -> Iterator[sqlite3.Connection]:
    """One migrated in-memory database; each test gets a copy (migrating takes longer)."""
    engine = memory_engine()
    migrate(engine)
    connection = engine.raw_connection().driver_connection
    assert isinstance(connection, sqlite3.Connection)
    yield connection
    engine.dispose()


def memory_engine() -> sa.Engine:
    return sa.create_engine(
        "sqlite://",
        poolclass=StaticPool,
        connect_args={"check_same_thread": False},
        **JSON_OPTIONS,
    )


@pytest.fixture
def store(migrated_database: sqlite3.Connection) -> Iterator[Store]:
    engine = memory_engine()
    target = engine.raw_connection().driver_connection
    assert isinstance(target, sqlite3.Connection)
    migrated_database.backup(target)
    yield Store(engine)
    engine.dispose()


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock()


@pytest.fixture
def graph() -> FakeTeams:
    return FakeTeams()


class Hubs:
    """Hubs on the test's one store; a restart is `stop` and then `open` again."""

    def __init__(self, store: Store, clock: FixedClock) -> None:
        self.store = store
        self.clock = clock
        self.running: list[Hub] = []

    async def open(self) -> Hub:
        hub = Hub(self.store, self.clock)
        await hub.start()
        self.running.append(hub)
        if not any(g.id == "hq" for g in hub.groups()):
            settings = GroupSettings(teams_sync_mode=TeamsSyncMode.TELEPHONY_AND_PRESENCE)
            await hub.create_group("hq", "Headquarters", settings)
        return hub

    async def stop(self, hub: Hub) -> None:
        self.running.remove(hub)
        await hub.stop()


@pytest.fixture
async def hubs(store: Store, clock: FixedClock) -> AsyncIterator[Hubs]:
    opened = Hubs(store, clock)
    yield opened
    for hub in list(opened.running):
        await opened.stop(hub)


@pytest.fixture
async def hub(hubs: Hubs) -> Hub:
    return await hubs.open()


@pytest.fixture
async def sync(hub: Hub, graph: FakeTeams) -> AsyncIterator[Sync]:
    running = Sync(hub, graph)
    running.start()
    yield running
    await running.stop()


async def add_user(hub: Hub, user_id: str, teams_id: str | None = None) -> str:
    """A user of the group `hq` with a DnD profile in My Profiles."""
    await hub.create_user(User(user_id, user_id.title(), "hq", teams_id or f"t-{user_id}"))
    await hub.handle(user_id, AddProfile(FOCUS), "test")
    return user_id
