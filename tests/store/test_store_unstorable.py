"""Data the database refuses fails only the change that carries it (issue 19, defect 5).

The API refuses such text at the edge; these tests go underneath it, to the hub and
the store, so that whatever slips through (a Graph reading, a future field) still
costs one 422 and never the other changes of the same group commit.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from sqlalchemy.exc import OperationalError

from presencebridge.adapters.store import GroupRecord, HistoryEntry, Store, Unstorable
from presencebridge.core import rules
from presencebridge.core.errors import Reason, Rejected
from presencebridge.core.model import CallState, Profile, Status, TeamsSyncMode, User, UserState
from presencebridge.core.settings import GroupSettings
from presencebridge.service.commit import GroupCommit
from presencebridge.service.hub import Hub

NOW = datetime(2024, 3, 4, 8, 30, tzinfo=UTC)


def test_a_state_the_database_cannot_store_raises_unstorable_and_writes_nothing(
    store: Store, group: GroupRecord
) -> None:
    good = UserState(user=User("good", "Good", group.id))
    bad = UserState(user=User("bad", "Bad", group.id))
    store.create_user(good, NOW)
    store.create_user(bad, NOW)
    # PostgreSQL keeps no NUL, in text or in jsonb; no database keeps a lone surrogate.
    name = "B\ud800d" if store.engine.dialect.name == "sqlite" else "B\x00d"
    refused = replace(bad, profiles=(Profile("Lunch", Status.AWAY, name, "#ffaa00"),))
    with pytest.raises(Unstorable, match="cannot store"):
        store.save_users([replace(good, own_mode=TeamsSyncMode.OFF), refused], [], NOW)
    assert store.load_users() == [bad, good]


# PostgreSQL only: SQLite keeps every text a user's JSON state can carry.
@pytest.mark.parametrize(
    "store_url", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
)
def test_one_refused_change_fails_alone_and_every_other_change_commits(
    store: Store, group: GroupRecord, caplog: pytest.LogCaptureFixture
) -> None:
    """Many users' events share commits; one of them carries a NUL (PostgreSQL)."""

    async def run() -> list[BaseException | None]:
        hub = Hub(store)
        await hub.start()
        try:
            users = [f"u{i}" for i in range(20)]
            for user in [*users, "odd"]:
                await hub.create_user(User(user, user.upper(), group.id))
            bad = rules.AddProfile(Profile("Home\x00", Status.BUSY, "x", "#123456"))
            calls = [
                hub.handle(u, rules.TelephonyEvent(f"{u}-1", CallState.CONNECTED), "pbx")
                for u in users
            ]
            # Queued together: the bad one lands in the middle of a shared batch.
            tasks = [*calls[:10], hub.handle("odd", bad, "profile"), *calls[10:]]
            results = await asyncio.gather(*tasks, return_exceptions=True)
            answers: list[BaseException | None] = [
                r if isinstance(r, BaseException) else None for r in results
            ]
            for user in users:
                assert hub.user(user).state.calls, user  # in memory: applied ...
            assert hub.user("odd").state.profiles == ()
            return answers
        finally:
            await hub.stop()

    answers = asyncio.run(run())
    refused = answers.pop(10)
    assert answers == [None] * 20
    assert isinstance(refused, Rejected) and refused.reason is Reason.INVALID
    assert "cannot store" in refused.message and "\\u0000" in refused.message, refused.message
    assert "committing them in halves" in caplog.text  # they did share a commit
    # ... and durably: a fresh read of the store has every call and no bad profile.
    stored = {s.user.id: s for s in store.load_users()}
    assert all(stored[f"u{i}"].calls for i in range(20))
    assert stored["odd"].profiles == ()


class FakeStore:
    """Refuses any batch holding a state of a user in `bad`; records what it commits."""

    def __init__(self, bad: set[str], error: type[Exception] = Unstorable) -> None:
        self.bad = bad
        self.error = error
        self.committed: list[str] = []
        self.attempts = 0

    async def save(
        self, states: Sequence[UserState], _history: Sequence[HistoryEntry], _now: datetime
    ) -> None:
        self.attempts += 1
        await asyncio.sleep(0)
        if any(s.user.id in self.bad for s in states):
            if self.error is OperationalError:
                raise OperationalError("connect", {}, Exception("connection refused"))
            raise self.error("PostgreSQL text fields cannot contain NUL (0x00) bytes")
        self.committed += [s.user.id for s in states]


def _commit_all(fake: FakeStore, users: list[str]) -> list[BaseException | None]:
    async def run() -> list[BaseException | None]:
        commit = GroupCommit(fake.save)
        commit.start()
        try:
            states = [UserState(user=User(u, u, "g")) for u in users]
            results = await asyncio.gather(
                *(commit.write([s], [], NOW) for s in states), return_exceptions=True
            )
        finally:
            await commit.stop()
        return [r if isinstance(r, BaseException) else None for r in results]

    return asyncio.run(run())


def test_group_commit_isolates_every_refused_change() -> None:
    users = [f"u{i}" for i in range(64)]
    fake = FakeStore({"u3", "u40"})
    answers = _commit_all(fake, users)
    for user, answer in zip(users, answers, strict=True):
        if user in fake.bad:
            assert isinstance(answer, Rejected) and answer.reason is Reason.INVALID
            assert "NUL" in answer.message
        else:
            assert answer is None, (user, answer)
    assert sorted(fake.committed) == sorted(set(users) - fake.bad)
    assert fake.attempts < 40  # halves, not one transaction per change


def test_group_commit_does_not_retry_piecewise_when_the_database_itself_fails() -> None:
    users = [f"u{i}" for i in range(32)]
    fake = FakeStore(set(users), OperationalError)
    answers = _commit_all(fake, users)
    assert all(isinstance(a, OperationalError) for a in answers)
    assert fake.attempts <= 2  # the first write alone, and the batch queued behind it


def test_group_settings_refused_by_the_database_are_a_clear_error(store: Store) -> None:
    """Writes outside the group commit raise Unstorable too (the API answers 422)."""
    odd = "\ud800" if store.engine.dialect.name == "sqlite" else "\x00"
    with pytest.raises(Unstorable, match="cannot store"):
        store.create_group(GroupRecord(f"g{odd}", "G", GroupSettings(), ()), NOW)
