"""How events change a user's state (core/rules.py), group settings and texts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, get_args

import pytest
from pydantic import ValidationError

from presencebridge.core import rules, telephony
from presencebridge.core.effective import effective_presence
from presencebridge.core.errors import Reason, Rejected
from presencebridge.core.micsync import effective_whitelist
from presencebridge.core.model import (
    BUILTIN_APPOINTMENT_PROFILE,
    SYNC_HARD_END,
    AppointmentOrigin,
    CallState,
    MeetingState,
    Profile,
    ProfileTemplate,
    Selection,
    Status,
    TeamsSyncMode,
    Telephony,
    TelephonySource,
    User,
    UserState,
)
from presencebridge.core.rules import (
    AddAppointment,
    AddProfile,
    DeleteAppointment,
    DeleteProfile,
    Event,
    GroupContext,
    MeetingEvent,
    ReorderProfiles,
    SelectProfile,
    SetOwnMode,
    TelephonyEvent,
    Tick,
)
from presencebridge.core.settings import GroupSettings, effective_mode
from presencebridge.core.texts import CATALOGUE, LANGUAGES, Text, pick_language, render

NOW = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
USER = User("bob", "Bob Example", "hamburg")
FOCUS = Profile("Focus", Status.DND, "Focus time", "#aa0000")
LUNCH = Profile("Lunch", Status.AWAY, "At lunch", "#999999")
DESK = Profile("Desk", Status.AVAILABLE, "At my desk", "#00aa00")
MS_TEAMS = ProfileTemplate("MS Teams", Status.BUSY, "In a Teams call", "#5b5fc7", True, "voicemail")
RETIRED = ProfileTemplate("Retired", Status.AWAY, "Old", "#222222", active=False)
GROUP = GroupContext(templates=(MS_TEAMS, RETIRED))


def later(**delta: float) -> datetime:
    return NOW + timedelta(**delta)


def base(*profiles: Profile) -> UserState:
    return UserState(user=USER, profiles=profiles or (FOCUS, LUNCH, DESK))


def run(state: UserState, *events: Event, now: datetime = NOW) -> UserState:
    for event in events:
        state = rules.apply(state, event, GROUP, now).state
    return state


def refused(state: UserState, event: Event, now: datetime = NOW) -> Rejected:
    with pytest.raises(Rejected) as caught:
        rules.apply(state, event, GROUP, now)
    return caught.value


def call_states(state: UserState) -> dict[str, CallState]:
    return {c.call_id: c.state for c in state.calls}


def meeting_in(minutes: float, length: float = 30, **kwargs: Any) -> AddAppointment:
    return AddAppointment(
        id=kwargs.pop("id", "a1"),
        subject=kwargs.pop("subject", "Review"),
        start=later(minutes=minutes),
        end=later(minutes=minutes + length),
        **kwargs,
    )


# ---------------------------------------------------------------- telephony events


def test_ringing_then_connected_then_ended() -> None:
    ringing = run(base(), TelephonyEvent("c1", CallState.RINGING))
    assert call_states(ringing) == {"c1": CallState.RINGING}
    assert effective_presence(ringing, (), NOW).telephony is Telephony.RINGING

    connected = run(ringing, TelephonyEvent("c1", CallState.CONNECTED), now=later(seconds=5))
    presence = effective_presence(connected, (), later(seconds=5))
    assert call_states(connected) == {"c1": CallState.CONNECTED}
    assert (presence.telephony, presence.telephony_source, presence.status) == (
        Telephony.ON_THE_PHONE,
        TelephonySource.PBX,
        Status.BUSY,
    )

    ended = run(connected, TelephonyEvent("c1", CallState.ENDED), now=later(minutes=3))
    assert call_states(ended) == {"c1": CallState.ENDED}
    presence = effective_presence(ended, (), later(minutes=3))
    assert (presence.telephony, presence.status) == (Telephony.IDLE, Status.AVAILABLE)


def test_ended_tombstone_stops_a_late_ringing_from_reviving_the_call() -> None:
    state = run(
        base(),
        TelephonyEvent("c1", CallState.RINGING),
        TelephonyEvent("c1", CallState.CONNECTED),
        TelephonyEvent("c1", CallState.ENDED),
    )
    late = run(state, TelephonyEvent("c1", CallState.RINGING), now=later(minutes=1))
    assert call_states(late) == {"c1": CallState.ENDED}
    assert effective_presence(late, (), later(minutes=1)).telephony is Telephony.IDLE
    late = run(late, TelephonyEvent("c1", CallState.CONNECTED), now=later(minutes=2))
    assert call_states(late) == {"c1": CallState.ENDED}
    assert effective_presence(late, (), later(minutes=2)).telephony is Telephony.IDLE


def test_ended_before_anything_else_is_remembered() -> None:
    state = run(base(), TelephonyEvent("c9", CallState.ENDED))
    state = run(state, TelephonyEvent("c9", CallState.CONNECTED), now=later(seconds=1))
    assert call_states(state) == {"c9": CallState.ENDED}
    assert effective_presence(state, (), later(seconds=1)).telephony is Telephony.IDLE


def test_late_ringing_does_not_downgrade_a_connected_call() -> None:
    state = run(base(), TelephonyEvent("c1", CallState.CONNECTED))
    state = run(state, TelephonyEvent("c1", CallState.RINGING), now=later(seconds=2))
    assert call_states(state) == {"c1": CallState.CONNECTED}
    assert effective_presence(state, (), later(seconds=2)).telephony is Telephony.ON_THE_PHONE


def test_ringing_call_times_out_after_ringing_timeout() -> None:
    state = run(base(), TelephonyEvent("c1", CallState.RINGING))
    just_before = NOW + telephony.RINGING_TIMEOUT - timedelta(seconds=1)
    assert call_states(run(state, Tick(), now=just_before)) == {"c1": CallState.RINGING}
    timed_out = run(state, Tick(), now=NOW + telephony.RINGING_TIMEOUT)
    assert call_states(timed_out) == {"c1": CallState.ENDED}
    presence = effective_presence(timed_out, (), NOW + telephony.RINGING_TIMEOUT)
    assert presence.telephony is Telephony.IDLE


def test_connected_call_times_out_after_connected_timeout() -> None:
    state = run(base(), TelephonyEvent("c1", CallState.RINGING))
    state = run(state, TelephonyEvent("c1", CallState.CONNECTED), now=later(seconds=10))
    connected_at = later(seconds=10)
    just_before = connected_at + telephony.CONNECTED_TIMEOUT - timedelta(seconds=1)
    still = run(state, Tick(), now=just_before)
    assert call_states(still) == {"c1": CallState.CONNECTED}
    assert effective_presence(still, (), just_before).telephony is Telephony.ON_THE_PHONE
    timed_out = run(state, Tick(), now=connected_at + telephony.CONNECTED_TIMEOUT)
    assert call_states(timed_out) == {"c1": CallState.ENDED}
    presence = effective_presence(timed_out, (), connected_at + telephony.CONNECTED_TIMEOUT)
    assert (presence.telephony, presence.status) == (Telephony.IDLE, Status.AVAILABLE)


def test_timed_out_call_is_not_revived_by_a_late_event() -> None:
    state = run(base(), TelephonyEvent("c1", CallState.RINGING))
    after = NOW + telephony.RINGING_TIMEOUT + timedelta(minutes=1)
    state = run(state, TelephonyEvent("c1", CallState.RINGING), now=after)
    assert call_states(state) == {"c1": CallState.ENDED}


def test_tombstones_are_dropped_after_their_ttl() -> None:
    state = run(base(), TelephonyEvent("c1", CallState.ENDED))
    assert run(state, Tick(), now=NOW + telephony.TOMBSTONE_TTL).calls == ()


def test_only_the_most_recently_ended_calls_are_kept_as_tombstones() -> None:
    # An agent's hundredth call of the day must not cost a hundred calls per event.
    state = base()
    ended = telephony.MAX_TOMBSTONES + 3
    for k in range(ended):
        state = run(
            state,
            TelephonyEvent(f"c{k}", CallState.CONNECTED),
            TelephonyEvent(f"c{k}", CallState.ENDED),
            now=later(minutes=k),
        )
    kept = {f"c{k}" for k in range(ended - telephony.MAX_TOMBSTONES, ended)}
    assert call_states(state) == dict.fromkeys(kept, CallState.ENDED)
    # A late event of a call that is still remembered cannot revive it ...
    last = f"c{ended - 1}"
    assert (
        call_states(run(state, TelephonyEvent(last, CallState.RINGING), now=later(hours=1)))[last]
        is CallState.ENDED
    )


def test_calls_that_time_out_are_tombstones_within_the_same_bound() -> None:
    state = base()
    for k in range(telephony.MAX_TOMBSTONES + 2):
        state = run(state, TelephonyEvent(f"r{k}", CallState.RINGING), now=later(seconds=k))
    aged = run(state, Tick(), now=NOW + telephony.RINGING_TIMEOUT + timedelta(minutes=1))
    assert len(aged.calls) == telephony.MAX_TOMBSTONES
    assert set(call_states(aged).values()) == {CallState.ENDED}


def test_too_many_open_calls_are_refused_and_ending_one_makes_room() -> None:
    state = base()
    for k in range(rules.MAX_OPEN_CALLS):
        state = run(state, TelephonyEvent(f"c{k}", CallState.CONNECTED))
    error = refused(state, TelephonyEvent("one-more", CallState.RINGING))
    assert error.reason is Reason.CONFLICT and "open calls" in error.message
    # Events for the calls it already has still apply, and an ended call frees a place.
    state = run(state, TelephonyEvent("c0", CallState.ENDED))
    state = run(state, TelephonyEvent("one-more", CallState.RINGING))
    assert call_states(state)["one-more"] is CallState.RINGING


def test_calls_of_different_ids_are_independent() -> None:
    state = run(
        base(),
        TelephonyEvent("c1", CallState.CONNECTED),
        TelephonyEvent("c2", CallState.RINGING),
        TelephonyEvent("c1", CallState.ENDED),
    )
    assert call_states(state) == {"c1": CallState.ENDED, "c2": CallState.RINGING}
    assert effective_presence(state, (), NOW).telephony is Telephony.RINGING


# ---------------------------------------------------------------- meetings


def test_meeting_join_and_leave() -> None:
    joined = run(base(), MeetingEvent("m1", MeetingState.JOINED))
    presence = effective_presence(joined, (), NOW)
    assert (presence.telephony, presence.telephony_source) == (
        Telephony.ON_THE_PHONE,
        TelephonySource.MEETING,
    )
    left = run(joined, MeetingEvent("m1", MeetingState.LEFT), now=later(minutes=5))
    assert left.meetings == ()
    assert effective_presence(left, (), later(minutes=5)).telephony is Telephony.IDLE


def test_meeting_screen_sharing_only_changes_nothing() -> None:
    state = run(base(), SelectProfile("Lunch"))
    sharing = run(
        state,
        MeetingEvent("m1", MeetingState.JOINED, screen_sharing=True, audio=False),
        now=later(minutes=1),
    )
    presence = effective_presence(sharing, (), later(minutes=1))
    assert (presence.status, presence.telephony, presence.profile) == (
        Status.AWAY,
        Telephony.IDLE,
        "Lunch",
    )


def test_rejoining_a_meeting_keeps_the_join_time_and_updates_sharing() -> None:
    state = run(base(), MeetingEvent("m1", MeetingState.JOINED))
    state = run(
        state, MeetingEvent("m1", MeetingState.JOINED, screen_sharing=True), now=later(minutes=9)
    )
    assert len(state.meetings) == 1
    assert state.meetings[0].joined_at == NOW
    assert state.meetings[0].screen_sharing is True


def test_leaving_an_unknown_meeting_is_harmless() -> None:
    state = base()
    assert run(state, MeetingEvent("nope", MeetingState.LEFT)).meetings == ()


def test_too_many_open_meetings_are_refused() -> None:
    state = base()
    for index in range(rules.MAX_OPEN_MEETINGS):
        state = run(state, MeetingEvent(f"m{index}", MeetingState.JOINED))
    error = refused(state, MeetingEvent("one-more", MeetingState.JOINED))
    assert error.reason is Reason.CONFLICT


# ---------------------------------------------------------------- profiles


def test_add_profile_appends_to_my_profiles() -> None:
    extra = Profile("Travel", Status.AWAY, "Travelling", "#0000aa", "+4917000")
    state = run(base(), AddProfile(extra))
    assert [p.name for p in state.profiles] == ["Focus", "Lunch", "Desk", "Travel"]
    assert state.profiles[-1] == extra


def test_duplicate_profile_is_refused() -> None:
    error = refused(base(), AddProfile(Profile("Lunch", Status.BUSY, "x", "#000000")))
    assert error.reason is Reason.CONFLICT
    assert "Lunch" in error.message


@pytest.mark.parametrize("name", ["Termin", "termin", " TERMIN ", "Nicht stören", "abwesend"])
def test_own_profiles_may_not_take_a_built_in_name(name: str) -> None:
    """An own `Termin` would silently replace the built-in one the appointments and the
    Teams sync use (an own profile shadows a built-in of the same name)."""
    error = refused(base(), AddProfile(Profile(name, Status.BUSY, "x", "#000000")))
    assert error.reason is Reason.INVALID
    assert error.message.startswith("name: ")  # the API's 422 names the field
    assert error.code == "profile_reserved" and error.params == {"name": name}


def test_ms_teams_is_no_reserved_name() -> None:
    """The sync looks for the user's own `MS Teams` profile on purpose."""
    state = run(base(), AddProfile(Profile("MS Teams", Status.BUSY, "x", "#000000")))
    assert state.profiles[-1].name == "MS Teams"


def test_too_many_profiles_are_refused() -> None:
    state = base(*(Profile(f"p{i}", Status.BUSY, "x", "#000000") for i in range(100)))
    assert len(state.profiles) == rules.MAX_PROFILES
    error = refused(state, AddProfile(Profile("p-extra", Status.BUSY, "x", "#000000")))
    assert error.reason is Reason.CONFLICT


def test_delete_profile() -> None:
    state = run(base(), DeleteProfile("Lunch"))
    assert [p.name for p in state.profiles] == ["Focus", "Desk"]


@pytest.mark.parametrize("name", ["Nope", "MS Teams", BUILTIN_APPOINTMENT_PROFILE])
def test_delete_of_a_profile_the_user_does_not_own_is_refused(name: str) -> None:
    assert refused(base(), DeleteProfile(name)).reason is Reason.NOT_FOUND


def test_reorder_profiles() -> None:
    state = run(base(), ReorderProfiles(("Desk", "Focus", "Lunch")))
    assert [p.name for p in state.profiles] == ["Desk", "Focus", "Lunch"]
    assert state.profiles[0] == DESK


@pytest.mark.parametrize(
    "names",
    [
        ("Desk", "Focus"),  # one missing
        ("Desk", "Focus", "Lunch", "Lunch"),  # duplicate
        ("Desk", "Focus", "Focus"),  # duplicate instead of the missing one
        ("Desk", "Focus", "Lunch", "Nope"),  # unknown
        ("Desk", "Focus", "MS Teams"),  # a template is not an own profile
        (),
    ],
)
def test_reorder_must_name_each_own_profile_once(names: tuple[str, ...]) -> None:
    error = refused(base(), ReorderProfiles(names))
    assert error.reason is Reason.INVALID


@pytest.mark.parametrize("name", ["Focus", "MS Teams", BUILTIN_APPOINTMENT_PROFILE])
def test_select_profile_from_my_profiles(name: str) -> None:
    state = run(base(), SelectProfile(name), now=later(minutes=3))
    assert state.selection == Selection(name, later(minutes=3))
    assert effective_presence(state, GROUP.templates, later(minutes=3)).profile == name


@pytest.mark.parametrize("name", ["Nope", "Retired"])
def test_select_unknown_profile_is_refused(name: str) -> None:
    error = refused(base(), SelectProfile(name))
    assert error.reason is Reason.NOT_FOUND


@pytest.mark.parametrize(
    ("asked", "selected"),
    [("focus", "Focus"), ("ms teams", "MS Teams"), ("FOCUS", "Focus"), ("Fo\u0063us", "Focus")],
)
def test_profile_names_are_the_same_whatever_their_case(asked: str, selected: str) -> None:
    """Names are unique regardless of case (issue 19): asking for one selects that one."""
    state = run(base(), SelectProfile(asked))
    assert state.selection == Selection(selected, NOW)


def test_a_profile_differing_only_in_case_or_normal_form_is_a_conflict() -> None:
    for name in ("focus", "FOCUS"):
        error = refused(base(), AddProfile(Profile(name, Status.AWAY, "x", "#000000")))
        assert error.reason is Reason.CONFLICT
    composed = Profile("Verf\u00fcgbar", Status.AVAILABLE, "x", "#000000")
    decomposed = Profile("verfu\u0308gbar", Status.AVAILABLE, "x", "#000000")
    error = refused(run(base(), AddProfile(composed)), AddProfile(decomposed))
    assert error.reason is Reason.CONFLICT


def test_select_none_clears_the_manual_choice() -> None:
    state = run(base(), SelectProfile("Focus"), SelectProfile(None))
    assert state.selection is None
    assert effective_presence(state, (), NOW).status is Status.AVAILABLE


# ---------------------------------------------------------------- appointments


def test_add_manual_appointment_defaults_to_termin_and_has_no_hard_end() -> None:
    state = run(base(), meeting_in(10))
    (appointment,) = state.appointments
    assert appointment.profile == BUILTIN_APPOINTMENT_PROFILE
    assert appointment.origin is AppointmentOrigin.MANUAL
    assert appointment.hard_end is None
    assert appointment.created_at == NOW


def test_add_appointment_with_template_profile() -> None:
    state = run(base(), meeting_in(0, profile="MS Teams"))
    presence = effective_presence(state, GROUP.templates, later(minutes=1))
    assert (presence.profile, presence.call_forwarding) == ("MS Teams", "voicemail")


@pytest.mark.parametrize("origin", [AppointmentOrigin.TEAMS, AppointmentOrigin.MICSYNC])
def test_sync_appointment_has_a_hard_end_12h_after_creation(origin: AppointmentOrigin) -> None:
    event = AddAppointment(
        "t1",
        "On the phone (MS Teams)",
        start=NOW,
        end=NOW + timedelta(days=3),
        profile="MS Teams",
        origin=origin,
    )
    state = run(base(), event)
    assert state.appointments[0].hard_end == NOW + SYNC_HARD_END
    almost = NOW + SYNC_HARD_END - timedelta(seconds=1)
    assert [a.id for a in rules.age(state, almost).appointments] == ["t1"]
    assert effective_presence(state, GROUP.templates, almost).profile == "MS Teams"
    gone = rules.age(state, NOW + SYNC_HARD_END)
    assert gone.appointments == ()
    assert effective_presence(gone, GROUP.templates, NOW + SYNC_HARD_END).status is (
        Status.AVAILABLE
    )


def test_sync_hard_end_counts_from_creation_not_from_start() -> None:
    event = AddAppointment(
        "t1", "Later", later(hours=2), later(hours=30), origin=AppointmentOrigin.TEAMS
    )
    state = run(base(), event)
    assert state.appointments[0].effective_end() == NOW + SYNC_HARD_END


def test_manual_appointment_outlives_12_hours() -> None:
    state = run(base(), AddAppointment("a1", "Offsite", NOW, NOW + timedelta(days=2)))
    thirteen = NOW + timedelta(hours=13)
    assert [a.id for a in rules.age(state, thirteen).appointments] == ["a1"]
    assert effective_presence(state, (), thirteen).status is Status.BUSY
    assert rules.age(state, NOW + timedelta(days=2)).appointments == ()


def test_finished_appointments_leave_the_list_on_the_next_event() -> None:
    state = run(base(), meeting_in(0, length=10))
    state = run(state, Tick(), now=later(minutes=10))
    assert state.appointments == ()


@pytest.mark.parametrize("length", [0, -5])
def test_appointment_must_end_after_it_starts(length: float) -> None:
    error = refused(base(), meeting_in(10, length=length))
    assert error.reason is Reason.INVALID


@pytest.mark.parametrize("end_offset", [0, -1])
def test_appointment_that_has_already_ended_is_refused(end_offset: float) -> None:
    event = AddAppointment("a1", "Past", later(minutes=-30), later(minutes=end_offset))
    assert refused(base(), event).reason is Reason.INVALID


def test_duplicate_appointment_id_is_refused() -> None:
    state = run(base(), meeting_in(10))
    assert refused(state, meeting_in(60)).reason is Reason.CONFLICT


@pytest.mark.parametrize("profile", ["Nope", "Retired"])
def test_appointment_with_unknown_profile_is_refused(profile: str) -> None:
    assert refused(base(), meeting_in(10, profile=profile)).reason is Reason.NOT_FOUND


def test_delete_appointment() -> None:
    state = run(base(), meeting_in(10, id="a1"), meeting_in(20, id="a2"))
    state = run(state, DeleteAppointment("a1"))
    assert [a.id for a in state.appointments] == ["a2"]


def test_delete_unknown_appointment_is_refused() -> None:
    state = run(base(), meeting_in(10, id="a1"))
    assert refused(state, DeleteAppointment("a2")).reason is Reason.NOT_FOUND


def test_delete_of_an_appointment_that_has_ended_meanwhile_is_refused() -> None:
    state = run(base(), meeting_in(0, length=10, id="a1"))
    error = refused(state, DeleteAppointment("a1"), now=later(minutes=11))
    assert error.reason is Reason.NOT_FOUND


def test_set_own_mode() -> None:
    state = run(base(), SetOwnMode(TeamsSyncMode.TELEPHONY_ONLY))
    assert state.own_mode is TeamsSyncMode.TELEPHONY_ONLY
    assert run(state, SetOwnMode(None)).own_mode is None


def test_tick_changes_nothing_before_any_deadline() -> None:
    state = run(base(), meeting_in(10), TelephonyEvent("c1", CallState.CONNECTED))
    assert run(state, Tick(), now=later(minutes=1)) == state


# ---------------------------------------------------------------- next_deadline


def test_next_deadline_of_an_idle_user_is_none() -> None:
    assert rules.next_deadline(base(), NOW) is None


def test_next_deadline_is_the_start_of_the_next_appointment() -> None:
    state = run(base(), meeting_in(30, id="b"), meeting_in(10, id="a"))
    assert rules.next_deadline(state, NOW) == later(minutes=10)


def test_next_deadline_is_the_end_of_an_active_appointment() -> None:
    state = run(base(), meeting_in(0, length=45))
    assert rules.next_deadline(state, later(minutes=5)) == later(minutes=45)


def test_next_deadline_honours_the_hard_end_of_a_sync_appointment() -> None:
    event = AddAppointment(
        "t1", "Call", NOW, NOW + timedelta(days=1), origin=AppointmentOrigin.TEAMS
    )
    state = run(base(), event)
    assert rules.next_deadline(state, later(minutes=1)) == NOW + SYNC_HARD_END


def test_next_deadline_is_the_ringing_timeout() -> None:
    state = run(base(), meeting_in(60), TelephonyEvent("c1", CallState.RINGING))
    assert rules.next_deadline(state, NOW) == NOW + telephony.RINGING_TIMEOUT


def test_next_deadline_is_the_connected_timeout() -> None:
    state = run(base(), TelephonyEvent("c1", CallState.CONNECTED))
    state = run(state, meeting_in(24 * 60))
    assert rules.next_deadline(state, NOW) == NOW + telephony.CONNECTED_TIMEOUT


def test_next_deadline_takes_the_earliest_moment() -> None:
    state = run(base(), TelephonyEvent("c1", CallState.CONNECTED), meeting_in(90))
    assert rules.next_deadline(state, later(minutes=1)) == later(minutes=90)


# ---------------------------------------------------------------- group settings (SPEC §5)


def test_group_settings_defaults_equal_the_spec() -> None:
    assert GroupSettings().public() == {
        "teams_sync_mode": "off",
        "user_may_change": True,
        "remember_credentials": False,
        "create_teams_profile_template": False,
        "MicrophoneUsageSync.Enable": 0,
        "MicrophoneUsageSync.ProcessWhitelist": "",
        "reassert_dnd": False,
        "teams_out_of_office": True,
        "teams_status_message": "off",
        "teams_work_location_office_networks": "",
    }


@pytest.mark.parametrize(
    ("given", "stored"),
    [(0, 0), (1, 1), (True, 1), (False, 0), ("0", 0), ("1", 1), (" 1 ", 1)],
)
def test_microphone_sync_enable_accepts_zero_or_one(given: object, stored: int) -> None:
    settings = GroupSettings.model_validate({"MicrophoneUsageSync.Enable": given})
    assert settings.public()["MicrophoneUsageSync.Enable"] == stored


@pytest.mark.parametrize("given", [2, -1, "yes", "2", "", None, 0.5])
def test_microphone_sync_enable_refuses_anything_else(given: object) -> None:
    with pytest.raises(ValidationError):
        GroupSettings.model_validate({"MicrophoneUsageSync.Enable": given})


def test_process_whitelist_is_normalised() -> None:
    settings = GroupSettings.model_validate(
        {"MicrophoneUsageSync.ProcessWhitelist": " Slack, Discord ,, Amazon Chime,"}
    )
    assert settings.public()["MicrophoneUsageSync.ProcessWhitelist"] == (
        "Slack,Discord,Amazon Chime"
    )


def test_process_whitelist_takes_semicolons_paths_and_endings() -> None:
    """German administrators separate with semicolons; a path or `.exe` is kept as typed
    (the console warns) and compared by the name alone (`micsync.normalise`)."""
    given = "zoom.exe; teams;Slack,C:\\apps\\Webex.exe\nbin/discord"
    settings = GroupSettings.model_validate({"MicrophoneUsageSync.ProcessWhitelist": given})
    stored = settings.public()["MicrophoneUsageSync.ProcessWhitelist"]
    assert stored == "zoom.exe,teams,Slack,C:\\apps\\Webex.exe,bin/discord"
    assert {"zoom", "teams", "slack", "ciscocollabhost", "discord"} <= effective_whitelist(stored)


@pytest.mark.parametrize(
    "given", ["a" * 65, "zoom|slack", "zoom*", "x" * 2001, "C:\\apps\\", 'say"hi"']
)
def test_process_whitelist_refuses_non_process_names(given: str) -> None:
    with pytest.raises(ValidationError):
        GroupSettings.model_validate({"MicrophoneUsageSync.ProcessWhitelist": given})


@pytest.mark.parametrize(
    "patch",
    [{"teams_sync": "off"}, {"MicrophoneUsageSync.Unknown": 1}, {"ReassertDnd": True}],
)
def test_unknown_setting_keys_are_refused(patch: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        GroupSettings.model_validate(patch)
    with pytest.raises(ValidationError):
        GroupSettings().merged(patch)


@pytest.mark.parametrize("mode", ["both", "OFF", "", "presence_only"])
def test_unknown_teams_sync_mode_is_refused(mode: str) -> None:
    with pytest.raises(ValidationError):
        GroupSettings.model_validate({"teams_sync_mode": mode})


def test_merged_changes_only_the_patched_settings() -> None:
    settings = GroupSettings.model_validate(
        {"teams_sync_mode": "telephony_only", "MicrophoneUsageSync.Enable": 1}
    )
    merged = settings.merged({"reassert_dnd": True, "MicrophoneUsageSync.ProcessWhitelist": "Zoom"})
    assert merged.public() == {
        **settings.public(),
        "reassert_dnd": True,
        "MicrophoneUsageSync.ProcessWhitelist": "Zoom",
    }
    assert settings.public()["reassert_dnd"] is False


def test_settings_round_trip_through_their_public_names() -> None:
    settings = GroupSettings.model_validate(
        {
            "teams_sync_mode": "telephony_and_presence",
            "user_may_change": False,
            "MicrophoneUsageSync.Enable": "1",
            "MicrophoneUsageSync.ProcessWhitelist": "Slack",
        }
    )
    assert GroupSettings.model_validate(settings.public()) == settings


@pytest.mark.parametrize(
    ("group_mode", "may_change", "own", "expected"),
    [
        ("telephony_and_presence", True, TeamsSyncMode.OFF, TeamsSyncMode.OFF),
        ("off", True, TeamsSyncMode.TELEPHONY_ONLY, TeamsSyncMode.TELEPHONY_ONLY),
        ("telephony_only", True, None, TeamsSyncMode.TELEPHONY_ONLY),
        ("telephony_and_presence", False, TeamsSyncMode.OFF, TeamsSyncMode.TELEPHONY_AND_PRESENCE),
        ("off", False, TeamsSyncMode.TELEPHONY_ONLY, TeamsSyncMode.OFF),
        ("off", False, None, TeamsSyncMode.OFF),
    ],
)
def test_effective_mode_honours_user_may_change(
    group_mode: str, may_change: bool, own: TeamsSyncMode | None, expected: TeamsSyncMode
) -> None:
    settings = GroupSettings.model_validate(
        {"teams_sync_mode": group_mode, "user_may_change": may_change}
    )
    assert effective_mode(settings, own) is expected


def test_switching_user_may_change_off_applies_the_group_mode_at_once() -> None:
    settings = GroupSettings.model_validate({"teams_sync_mode": "telephony_and_presence"})
    own = TeamsSyncMode.OFF
    assert effective_mode(settings, own) is TeamsSyncMode.OFF
    locked = settings.merged({"user_may_change": False})
    assert effective_mode(locked, own) is TeamsSyncMode.TELEPHONY_AND_PRESENCE


# ---------------------------------------------------------------- texts


@pytest.mark.parametrize(
    ("header", "language"),
    [
        (None, "en"),
        ("", "en"),
        ("de-DE", "de"),
        ("de", "de"),
        ("DE-at", "de"),
        ("en;q=0.5,de;q=0.9", "de"),
        ("en;q=0.5, de;q=0.9", "de"),
        ("de;q=0.5,en;q=0.9", "en"),
        ("fr", "en"),
        ("fr-FR, fr;q=0.9", "en"),
        ("fr, de;q=0.1", "de"),
        ("de, en", "de"),
        ("en-US,en;q=0.9,de;q=0.8", "en"),
        ("de;q=0, en;q=0.1", "en"),
        ("de;q=0", "en"),
        ("de;q=nonsense, en;q=0.2", "en"),
        ("*", "en"),
        ("EN;Q=0.1, de;Q=0.5", "de"),
    ],
)
def test_pick_language(header: str | None, language: str) -> None:
    assert pick_language(header) == language


@pytest.mark.parametrize(
    ("text", "language", "shown"),
    [
        (Text.AVAILABLE, "de", "Verfügbar"),
        (Text.AVAILABLE, "en", "Available"),
        (Text.ON_THE_PHONE, "de", "Am Telefon"),
        (Text.ON_THE_PHONE_TEAMS, "de", "Am Telefon (MS Teams)"),
        (Text.ON_THE_PHONE_TEAMS, "en", "On the phone (MS Teams)"),
        (Text.APPOINTMENT, "de", "Termin"),
        (Text.DO_NOT_DISTURB, "de", "Nicht stören"),
        (Text.AVAILABLE, "fr", "Available"),
        ("text.on_the_phone", "de", "Am Telefon"),
        ("Im Urlaub bis Montag", "en", "Im Urlaub bis Montag"),
        ("Focus time", "de", "Focus time"),
    ],
)
def test_render(text: str, language: str, shown: str) -> None:
    assert render(text, language) == shown


def test_every_builtin_text_exists_in_every_language() -> None:
    for key in Text:
        for language in LANGUAGES:
            assert CATALOGUE[key][language].strip()
        assert CATALOGUE[key]["de"] != key.value


def test_presence_text_renders_in_the_readers_language() -> None:
    state = run(base(), TelephonyEvent("c1", CallState.CONNECTED))
    text = effective_presence(state, (), NOW).text
    assert render(text, pick_language("de-DE,de;q=0.9")) == "Am Telefon"
    assert render(text, pick_language("en-GB")) == "On the phone"


def test_every_event_has_a_handler() -> None:
    """An event without a row in `rules.HANDLERS` would fail at run time, not here."""
    assert set(rules.HANDLERS) == set(get_args(rules.Event))
