"""Microphone Sync rules (SPEC §6): names, whitelist, choice, debounce, presence."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from presencebridge.core import micsync, rules
from presencebridge.core.effective import effective_presence
from presencebridge.core.model import (
    AppointmentOrigin,
    ProfileTemplate,
    Status,
    User,
    UserState,
)
from presencebridge.core.settings import GroupSettings

T0 = datetime(2025, 5, 5, 9, 0, tzinfo=UTC)
MICSYNC = ProfileTemplate("MicSync", Status.BUSY, "Mikrofon", "#aa00aa")


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        ("Zoom", "zoom"),
        ("zoom.exe", "zoom"),
        (r"C:\Program Files\Zoom\bin\Zoom.exe", "zoom"),
        ("/Applications/zoom.us.app", "zoom"),
        ("zoom.us", "zoom"),
        ("ms-teams.exe", "ms-teams"),
        ("com.microsoft.teams2.modulehost", "ms-teams"),
        ("CiscoCollabHost.exe", "ciscocollabhost"),
        ("/usr/lib/chromium/chromium", "chrome"),
        ("TeamViewerMeeting", "teamviewermeeting"),
    ],
)
def test_names_are_normalised(raw: str, normalised: str) -> None:
    assert micsync.normalise(raw) == normalised


def test_defaults_are_always_on_the_whitelist_and_configured_names_are_added() -> None:
    whitelist = micsync.effective_whitelist("ms-teams, Slack.exe")
    for name in ("chrome", "firefox", "iexplore", "msedge", "g2mcomm", "teamviewermeeting", "zoom"):
        assert name in whitelist
    assert {"ms-teams", "slack"} <= whitelist
    assert "ms-teams" not in micsync.effective_whitelist("")


def test_friendly_names() -> None:
    assert micsync.friendly_name("Zoom.exe") == "Zoom Meeting"
    assert micsync.friendly_name("CiscoCollabHost") == "Cisco Webex"
    assert micsync.friendly_name("ms-teams") == "Microsoft Teams (V2)"
    assert micsync.friendly_name("g2mcomm") == "GoTo Meeting"
    assert micsync.friendly_name("customapp") == "customapp"


def test_a_meeting_app_outranks_a_browser_and_the_agent_is_ignored() -> None:
    whitelist = micsync.effective_whitelist("")
    assert micsync.choose(["chrome", "zoom"], whitelist) == "zoom"
    assert micsync.choose(["chrome"], whitelist) == "chrome"
    assert micsync.choose(["ms-teams"], whitelist) is None
    assert micsync.choose(["presencebridge"], whitelist | {"presencebridge"}) is None


def test_debounce_turns_on_after_two_seconds_and_off_after_five() -> None:
    debounce = micsync.Debouncer()
    assert debounce.observe({"zoom"}, T0) is None
    assert debounce.next_wakeup(T0) == T0 + timedelta(seconds=2)
    assert debounce.due(T0 + timedelta(seconds=1)) is None
    assert debounce.due(T0 + timedelta(seconds=2)) == frozenset({"zoom"})
    # A short silence is not a release.
    assert debounce.observe(set(), T0 + timedelta(seconds=10)) is None
    assert debounce.observe({"zoom"}, T0 + timedelta(seconds=12)) is None
    assert debounce.observe(set(), T0 + timedelta(seconds=20)) is None
    assert debounce.due(T0 + timedelta(seconds=24)) is None
    assert debounce.due(T0 + timedelta(seconds=25)) == frozenset()
    # A blip shorter than the on-delay never shows.
    assert debounce.observe({"chrome"}, T0 + timedelta(seconds=30)) is None
    assert debounce.observe(set(), T0 + timedelta(seconds=31)) is None
    assert debounce.due(T0 + timedelta(seconds=40)) is None


def context(
    enable: int = 1, whitelist: str = "", templates: tuple[ProfileTemplate, ...] = (MICSYNC,)
) -> rules.GroupContext:
    settings = GroupSettings.model_validate(
        {"MicrophoneUsageSync.Enable": enable, "MicrophoneUsageSync.ProcessWhitelist": whitelist}
    )
    return rules.GroupContext(templates, settings)


def report(state: UserState, ctx: rules.GroupContext, *processes: str) -> UserState:
    return rules.apply(state, rules.MicrophoneReport(processes), ctx, T0).state


def user() -> UserState:
    return UserState(User("alice", "Alice", "g"))


def test_a_whitelisted_program_shows_micsync_with_the_service_name() -> None:
    ctx = context()
    state = report(user(), ctx, "zoom")
    shown = effective_presence(state, ctx.templates, T0)
    assert (shown.profile, shown.text, shown.status) == ("MicSync", "Zoom Meeting", Status.BUSY)
    released = report(state, ctx)
    assert effective_presence(released, ctx.templates, T0).profile is None


@pytest.mark.parametrize(
    ("ctx", "why"),
    [
        (context(enable=0), "MicrophoneUsageSync.Enable is 0"),
        (context(templates=()), "missing"),
        (
            context(templates=(ProfileTemplate("MicSync", Status.BUSY, "x", "#000000", False),)),
            "inactive",
        ),
    ],
    ids=["disabled", "no template", "inactive template"],
)
def test_without_enable_or_an_active_micsync_template_nothing_changes(
    ctx: rules.GroupContext, why: str
) -> None:
    state = report(user(), ctx, "zoom")
    assert effective_presence(state, ctx.templates, T0).profile is None
    problem = micsync.group_problem(ctx.settings, ctx.templates)
    assert problem is not None and why in problem


def test_a_program_off_the_whitelist_counts_only_once_configured() -> None:
    assert report(user(), context(), "ms-teams").microphone is None
    assert report(user(), context(whitelist="ms-teams"), "ms-teams").microphone is not None


def test_switching_microphone_sync_off_ends_a_use_at_once() -> None:
    state = report(user(), context(), "zoom")
    off = rules.apply(state, rules.Tick(), context(enable=0), T0).state
    assert off.microphone is None


def test_agent_start_removes_what_the_sync_created() -> None:
    ctx = context()
    state = report(user(), ctx, "zoom")
    teams_call = rules.AddAppointment(
        "teams-call", "On the phone", T0, T0 + timedelta(hours=1), origin=AppointmentOrigin.TEAMS
    )
    own = rules.AddAppointment("mine", "Review", T0, T0 + timedelta(hours=1))
    state = rules.apply(rules.apply(state, teams_call, ctx, T0).state, own, ctx, T0).state
    after = rules.apply(state, rules.AgentStarted(), ctx, T0).state
    assert [a.id for a in after.appointments] == ["mine"]
    assert after.microphone is None
