"""What the store is given comes back equal: groups, templates, user states, history."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from presencebridge.adapters.store import GroupRecord, HistoryEntry, StatusRun, Store
from presencebridge.adapters.store import tables as t
from presencebridge.core.model import (
    BUILTIN_APPOINTMENT_PROFILE,
    SYNC_HARD_END,
    Appointment,
    AppointmentOrigin,
    Call,
    CallState,
    FollowedCall,
    FollowedDnd,
    HubDnd,
    HubSession,
    Meeting,
    Profile,
    ProfileTemplate,
    Selection,
    Status,
    TeamsReading,
    TeamsState,
    TeamsSyncMode,
    User,
    UserState,
)
from presencebridge.core.settings import GroupSettings

NOW = datetime(2024, 3, 4, 8, 30, tzinfo=UTC)
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK_WINTER = timezone(timedelta(hours=-5))
PLUS_TWO = timezone(timedelta(hours=2))

# Every setting away from its default, the dotted advanced keys included.
SETTINGS = GroupSettings.model_validate(
    {
        "teams_sync_mode": "telephony_and_presence",
        "user_may_change": False,
        "remember_credentials": True,
        "create_teams_profile_template": True,
        "MicrophoneUsageSync.Enable": 1,
        "MicrophoneUsageSync.ProcessWhitelist": "Teams.exe, zoom.exe",
        "reassert_dnd": True,
        "teams_out_of_office": False,
        "teams_status_message": "both",
        "teams_work_location_office_networks": "10.20.0.0/16, 2001:db8:5::/48",
    }
)

TEMPLATES = (
    ProfileTemplate("Zeta", Status.DND, "Do not disturb", "#aa0000", True, "+49301234"),
    ProfileTemplate("Alpha", Status.AWAY, "Mittagspause – bis 13 Uhr", "#00FF00", False, None),
    ProfileTemplate("Mid", Status.BUSY, "In a meeting", "#123abc"),
)


def full_state(user: User) -> UserState:
    """A state that uses every field, with times in several zones and microseconds."""
    t0 = datetime(2024, 3, 4, 9, 15, 30, 123456, tzinfo=BERLIN)
    teams_created = datetime(2024, 3, 4, 8, 0, tzinfo=UTC)
    return UserState(
        user=user,
        profiles=(
            Profile("Lunch", Status.AWAY, "Back at 1 pm", "#ffaa00"),
            Profile("Focus", Status.DND, "Focus time", "#000000", "+4930999"),
        ),
        selection=Selection("Focus", t0),
        appointments=(
            Appointment(
                "a-manual",
                "Dentist",
                "#00aaff",
                t0 + timedelta(hours=2),
                t0 + timedelta(hours=3),
                BUILTIN_APPOINTMENT_PROFILE,
                AppointmentOrigin.MANUAL,
                t0,
            ),
            Appointment(
                "a-teams",
                "Teams meeting",
                None,
                teams_created,
                teams_created + timedelta(days=2),
                "Focus",
                AppointmentOrigin.TEAMS,
                teams_created,
                hard_end=teams_created + SYNC_HARD_END,
            ),
        ),
        calls=(
            Call("call-1", CallState.CONNECTED, t0 + timedelta(seconds=5), t0),
            Call("call-2", CallState.ENDED, t0 - timedelta(minutes=1), t0 - timedelta(minutes=9)),
        ),
        meetings=(
            Meeting("meet-1", t0, screen_sharing=False, audio=True),
            Meeting("meet-2", t0 + timedelta(minutes=3), screen_sharing=True, audio=False),
        ),
        own_mode=TeamsSyncMode.TELEPHONY_ONLY,
        teams=TeamsState(
            seen=TeamsReading(
                availability="Busy",
                activity="InACall",
                sequence="000042",
                requested_at=datetime(2024, 3, 4, 3, 0, tzinfo=NEW_YORK_WINTER),
                mode=TeamsSyncMode.TELEPHONY_ONLY,
                held_by_user=True,
            ),
            hub_session=HubSession(activity="InACall", written_at=t0, unsure=True),
            hub_dnd=HubDnd(until=t0 + timedelta(days=1), written_at=t0, lapsed=True),
            call=FollowedCall(outlived=True),
            dnd=FollowedDnd(
                selected_at=t0,
                replaced=Selection("Nicht stören", t0 - timedelta(hours=1), builtin=True),
            ),
        ),
    )


def datetimes(state: UserState) -> Iterator[datetime]:
    if state.selection is not None:
        yield state.selection.at
    for a in state.appointments:
        yield from (a.start, a.end, a.created_at)
        if a.hard_end is not None:
            yield a.hard_end
    for c in state.calls:
        yield from (c.since, c.first_seen)
    for m in state.meetings:
        yield m.joined_at
    teams = state.teams
    moments = (
        teams.seen.requested_at,
        teams.hub_session.written_at,
        teams.hub_dnd.until,
        teams.hub_dnd.written_at,
        teams.dnd.selected_at,
    )
    yield from (m for m in moments if m is not None)


def user_row(store: Store, user_id: str) -> sa.RowMapping:
    query = sa.select(t.users).where(t.users.c.id == user_id)
    with store.engine.connect() as connection:
        row: sa.RowMapping = connection.execute(query).mappings().one()
    return row


# -- groups and templates ------------------------------------------------------------------


def test_settings_fixture_leaves_no_setting_at_its_default() -> None:
    defaults = GroupSettings()
    for name in GroupSettings.model_fields:
        assert getattr(SETTINGS, name) != getattr(defaults, name), name


def test_groups_come_back_by_id_with_settings_and_templates_in_order(store: Store) -> None:
    store.create_group(GroupRecord("support", "Support", SETTINGS, ()), NOW)
    store.create_group(GroupRecord("billing", "Billing", GroupSettings(), ()), NOW)
    store.save_templates("support", TEMPLATES)

    assert store.load_groups() == [
        GroupRecord("billing", "Billing", GroupSettings(), ()),
        GroupRecord("support", "Support", SETTINGS, TEMPLATES),
    ]


def test_group_settings_are_stored_under_their_manual_names(store: Store) -> None:
    store.create_group(GroupRecord("support", "Support", SETTINGS, ()), NOW)

    with store.engine.connect() as connection:
        stored = connection.execute(
            sa.select(t.groups.c.settings).where(t.groups.c.id == "support")
        ).scalar_one()

    assert stored == SETTINGS.public()
    assert stored["MicrophoneUsageSync.Enable"] == 1
    assert stored["MicrophoneUsageSync.ProcessWhitelist"] == "Teams.exe,zoom.exe"
    assert "microphone_sync_enable" not in stored


def test_save_templates_replaces_the_whole_list(store: Store) -> None:
    store.create_group(GroupRecord("support", "Support", SETTINGS, ()), NOW)
    store.create_group(GroupRecord("billing", "Billing", GroupSettings(), ()), NOW)
    store.save_templates("support", TEMPLATES)
    store.save_templates("billing", TEMPLATES[:1])

    reordered = (TEMPLATES[2], TEMPLATES[0])
    store.save_templates("support", reordered)
    assert {g.id: g.templates for g in store.load_groups()} == {
        "billing": TEMPLATES[:1],
        "support": reordered,
    }

    store.save_templates("support", [])
    assert {g.id: g.templates for g in store.load_groups()} == {
        "billing": TEMPLATES[:1],
        "support": (),
    }


def test_save_group_settings_changes_only_that_group(store: Store) -> None:
    store.create_group(GroupRecord("support", "Support", GroupSettings(), ()), NOW)
    store.create_group(GroupRecord("billing", "Billing", GroupSettings(), ()), NOW)

    store.save_group_settings("support", SETTINGS)

    assert {g.id: g.settings for g in store.load_groups()} == {
        "billing": GroupSettings(),
        "support": SETTINGS,
    }


# -- users ---------------------------------------------------------------------------------


def test_saved_user_state_comes_back_equal(store: Store, group: GroupRecord) -> None:
    user = User("alice", "Alice Example", group.id, "teams-alice")
    store.create_user(UserState(user), NOW)
    state = full_state(user)

    store.save_users([state], [], NOW + timedelta(minutes=1))

    [loaded] = store.load_users()
    assert loaded == state
    for when in datetimes(loaded):
        assert when.tzinfo is not None and when.utcoffset() is not None
    assert user_row(store, "alice")["version"] == 2


def test_create_user_keeps_the_state_it_is_given(store: Store, group: GroupRecord) -> None:
    state = full_state(User("alice", "Alice Example", group.id))

    store.create_user(state, NOW)

    assert store.load_users() == [state]
    assert user_row(store, "alice")["version"] == 1


def test_users_come_back_by_id_and_directory_changes_are_saved(
    store: Store, group: GroupRecord
) -> None:
    store.create_group(GroupRecord("billing", "Billing", GroupSettings(), ()), NOW)
    zoe = UserState(User("zoe", "Zoe", group.id))
    adam = UserState(User("adam", "Adam", group.id, "teams-adam"))
    store.create_user(zoe, NOW)
    store.create_user(adam, NOW)
    assert store.load_users() == [adam, zoe]

    moved = full_state(User("zoe", "Zoe Renamed", "billing", "teams-zoe"))
    entry = HistoryEntry("zoe", NOW, "directory", "available", "idle", "")
    store.update_user(moved, entry, None, NOW)

    assert store.load_users() == [adam, moved]
    assert user_row(store, "zoe")["version"] == 2
    assert user_row(store, "adam")["version"] == 1


def test_an_events_save_writes_the_state_and_leaves_directory_data_alone(
    store: Store, group: GroupRecord
) -> None:
    """Events never change directory data (rules keep `state.user`); their saves write the
    state document only, so a stale copy of the directory data can never overwrite it."""
    zoe = UserState(User("zoe", "Zoe", group.id, "teams-zoe", email="zoe@example.com"))
    store.create_user(zoe, NOW)
    stale = full_state(User("zoe", "Zoe Old", group.id))
    store.save_users([stale], [], NOW)

    [loaded] = store.load_users()
    assert loaded == replace(stale, user=zoe.user)
    assert user_row(store, "zoe")["version"] == 2


def test_save_users_writes_several_users_at_once(store: Store, group: GroupRecord) -> None:
    users = [User(f"user-{i}", f"User {i}", group.id) for i in range(3)]
    for user in users:
        store.create_user(UserState(user), NOW)

    states = [full_state(user) for user in users]
    store.save_users(states, [], NOW)
    store.save_users(states[:1], [], NOW)

    assert store.load_users() == states
    assert [user_row(store, u.id)["version"] for u in users] == [3, 2, 2]


# -- history -------------------------------------------------------------------------------


def entry(user_id: str, at: datetime, text: str, status: Status = Status.BUSY) -> HistoryEntry:
    return HistoryEntry(user_id, at, "pbx", status.value, "on_the_phone", text)


def without_time(entries: list[HistoryEntry]) -> list[tuple[str, str, str, str, str]]:
    return [(e.user_id, e.source, e.status, e.telephony, e.text) for e in entries]


def two_users(store: Store, group: GroupRecord) -> tuple[UserState, UserState]:
    alice = UserState(User("alice", "Alice", group.id))
    bob = UserState(User("bob", "Bob", group.id))
    store.create_user(alice, NOW)
    store.create_user(bob, NOW)
    return alice, bob


def test_history_is_returned_newest_first_per_user(store: Store, group: GroupRecord) -> None:
    alice, bob = two_users(store, group)
    first = entry("alice", NOW, "first")
    second = entry("alice", NOW + timedelta(minutes=1), "second", Status.AWAY)
    bobs = entry("bob", NOW + timedelta(minutes=1), "bob's")
    third = entry("alice", NOW + timedelta(minutes=2), "third", Status.AVAILABLE)

    store.save_users([alice, bob], [first, second, bobs], NOW)
    store.save_users([alice], [third], NOW + timedelta(minutes=2))

    assert without_time(store.history("alice")) == without_time([third, second, first])
    assert without_time(store.history("alice", limit=2)) == without_time([third, second])
    assert without_time(store.history("bob")) == without_time([bobs])
    assert store.history("nobody") == []
    assert [e.at for e in store.history("alice")] == [e.at for e in (third, second, first)]


def test_history_text_is_cut_to_200_characters(store: Store, group: GroupRecord) -> None:
    alice, _ = two_users(store, group)

    store.save_users([alice], [entry("alice", NOW, "x" * 250)], NOW)

    [saved] = store.history("alice")
    assert saved.text == "x" * 200


def test_history_times_come_back_as_aware_equal_instants(store: Store, group: GroupRecord) -> None:
    alice, _ = two_users(store, group)
    given = [
        entry("alice", datetime(2024, 7, 4, 10, 0, tzinfo=BERLIN), "berlin, summer"),
        entry("alice", datetime(2024, 7, 4, 7, 0, tzinfo=NEW_YORK_WINTER), "utc-5"),
        entry("alice", datetime(2024, 3, 4, 9, 30, tzinfo=UTC), "utc"),
    ]

    store.save_users([alice], given, NOW)

    returned = list(reversed(store.history("alice")))
    assert all(e.at.tzinfo is not None for e in returned), [e.at for e in returned]
    assert returned == given


def test_prune_history_deletes_only_older_entries(store: Store, group: GroupRecord) -> None:
    alice, bob = two_users(store, group)
    old = [
        entry("alice", NOW - timedelta(days=3), "a-3d", Status.DND),
        entry("bob", NOW - timedelta(days=2), "b-2d", Status.DND),
        entry("alice", NOW - timedelta(days=1, seconds=1), "a-1d1s", Status.DND),
    ]
    recent = [
        entry("alice", NOW - timedelta(days=1), "a-1d"),
        entry("alice", NOW, "a-now"),
        entry("bob", NOW - timedelta(hours=1), "b-1h"),
    ]
    store.save_users([alice, bob], old + recent, NOW)

    assert store.prune_history(NOW - timedelta(days=1)) == 3

    assert without_time(store.history("alice")) == without_time([recent[1], recent[0]])
    assert without_time(store.history("bob")) == without_time([recent[2]])
    assert store.prune_history(NOW - timedelta(days=1)) == 0


def test_prune_history_keeps_the_start_of_each_users_latest_status(
    store: Store, group: GroupRecord
) -> None:
    """The row since which a status holds stays, however old; `status_runs` finds it."""
    alice, bob = two_users(store, group)
    rows = [
        entry("alice", NOW - timedelta(days=30), "a-30d", Status.DND),
        entry("alice", NOW - timedelta(days=20), "a-20d"),  # busy from here ...
        entry("alice", NOW - timedelta(days=10), "a-10d"),  # ... still busy
        entry("alice", NOW - timedelta(hours=1), "a-1h"),  # ... and still
        entry("bob", NOW - timedelta(days=9), "b-9d", Status.DND),
        entry("bob", NOW - timedelta(days=8), "b-8d", Status.AVAILABLE),
    ]
    store.save_users([alice, bob], rows, NOW)
    runs = store.status_runs()
    assert runs == {
        "alice": StatusRun("busy", NOW - timedelta(days=20)),
        "bob": StatusRun("available", NOW - timedelta(days=8)),
    }

    assert store.prune_history(NOW - timedelta(days=1)) == 3  # a-30d, a-10d, b-9d

    assert [e.text for e in store.history("alice")] == ["a-1h", "a-20d"]
    assert [e.text for e in store.history("bob")] == ["b-8d"]
    assert store.status_runs() == runs
    assert store.prune_history(NOW - timedelta(days=1)) == 0


def test_prune_history_compares_instants_not_wall_clock_times(
    store: Store, group: GroupRecord
) -> None:
    alice, _ = two_users(store, group)
    older = entry("alice", datetime(2024, 3, 4, 10, 0, tzinfo=PLUS_TWO), "08:00 UTC", Status.DND)
    newer = entry("alice", datetime(2024, 3, 4, 10, 0, tzinfo=UTC), "10:00 UTC")
    store.save_users([alice], [older, newer], NOW)

    removed = store.prune_history(datetime(2024, 3, 4, 9, 0, tzinfo=UTC))

    assert (removed, without_time(store.history("alice"))) == (1, without_time([newer]))
