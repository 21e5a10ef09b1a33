"""What each user's state must be, computed from the events the test sent, nothing else.

The model is deliberately tiny. Calls only move forward (none < ringing < connected
< ended), so a call's possible states after an event are the old ones moved up to
the event's state; an unacknowledged event (the server was killed while it was in
flight) may or may not have been applied, so both outcomes stay possible. The same
goes for profile choices and the user's own sync mode: the last acknowledged value,
plus any value sent later whose answer was lost.

`expected` says what both sides must show once every call has ended (except the
one call each "keeper" keeps up) and every Teams client is back to Available.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

CALL_ORDER = ("none", "ringing", "connected", "ended")
AVAILABLE = ("Available", "Available")
IN_A_CALL = ("Busy", "InACall")
TEAMS_DND = ("DoNotDisturb", "DoNotDisturb")

# Every user's own profiles; `None` (no choice) shows as available.
PROFILES: dict[str, dict[str, Any]] = {
    "Mittag": {"name": "Mittag", "status": "away", "text": "Mittagspause", "color": "#ffcc00"},
    "Kunde": {"name": "Kunde", "status": "busy", "text": "Beim Kunden", "color": "#cc6600"},
    "Fokus": {"name": "Fokus", "status": "dnd", "text": "Bitte nicht stören", "color": "#aa0000"},
}
MODES = ("off", "telephony_only", "telephony_and_presence")
GROUP_MODE = "telephony_and_presence"
# What a Teams client may do during the workload (the control API's /client).
CLIENT_STATES = (
    ("Available", "Available"),
    ("Busy", "InACall"),
    ("Busy", "InAConferenceCall"),
    ("DoNotDisturb", "Presenting"),
    ("Away", "Away"),
)


def status_of(selection: str | None) -> str:
    return "available" if selection is None else str(PROFILES[selection]["status"])


@dataclass
class UserModel:
    """One user as the test knows it from its own acknowledged (and lost) requests."""

    id: str
    teams_id: str
    keeper: bool  # keeps one PBX call up to the end
    calls: dict[str, set[str]] = field(default_factory=dict)
    selections: set[str | None] = field(default_factory=lambda: {None})
    own_modes: set[str | None] = field(default_factory=lambda: {None})
    client: tuple[str, str] = AVAILABLE
    # The Teams client was in a call at some time during the workload.
    had_teams_call: bool = False

    def call_event(self, call_id: str, state: str, acknowledged: bool) -> None:
        before = self.calls.get(call_id, {"none"})
        rank = CALL_ORDER.index(state)
        moved = {CALL_ORDER[max(CALL_ORDER.index(p), rank)] for p in before}
        self.calls[call_id] = moved if acknowledged else before | moved

    def selected(self, name: str | None, acknowledged: bool) -> None:
        self.selections = {name} if acknowledged else self.selections | {name}

    def own_mode(self, mode: str | None, acknowledged: bool) -> None:
        self.own_modes = {mode} if acknowledged else self.own_modes | {mode}

    def surely_connected(self) -> bool:
        return any(states == {"connected"} for states in self.calls.values())

    def maybe_on_a_pbx_call(self) -> bool:
        return any(states & {"ringing", "connected"} for states in self.calls.values())

    def effective_modes(self) -> set[str]:
        return {GROUP_MODE if mode is None else mode for mode in self.own_modes}


@dataclass(frozen=True)
class Expected:
    """Both sides of one user once everything has settled."""

    status: str
    profile: str | None  # None for keepers: the call, not the profile, is shown
    telephony: str
    teams_shown: tuple[str, str]  # what any Graph reader sees
    hub_sees: tuple[str | None, str | None]  # what the hub reports of Teams
    hub_session: bool  # the hub's own Graph session is live
    hub_dnd: bool  # the hub's DnD preferred presence is set


def expected(keeper: bool, selection: str | None, mode: str) -> Expected:
    """The settled state for one combination of the user's possible choices."""
    dnd = mode == "telephony_and_presence" and status_of(selection) == "dnd"
    session = keeper and mode != "off"
    shown = TEAMS_DND if dnd else IN_A_CALL if session else AVAILABLE
    return Expected(
        status="busy" if keeper else status_of(selection),
        profile=None if keeper else selection,
        telephony="on_the_phone" if keeper else "idle",
        teams_shown=shown,
        hub_sees=(None, None) if mode == "off" else shown,
        hub_session=session,
        hub_dnd=dnd,
    )


# The profile of the Teams call's appointment: `MS Teams`, or the built-in one without it.
TEAMS_CALL_PROFILES = ("MS Teams", "Termin")


def shows_kept_teams_call(model: UserModel, presence: dict[str, Any]) -> bool:
    """The user (not a keeper) shows the Teams call the hub keeps, not their choice."""
    return (
        not model.keeper
        and model.had_teams_call
        and presence["telephony_source"] == "teams"
        and presence["profile"] in TEAMS_CALL_PROFILES
        and any(a["id"] == "teams-call" for a in presence["appointments"])
    )


def divergence(model: UserModel, hub: dict[str, Any], emulator: dict[str, Any], app: str) -> str:
    """Why the user's two sides differ from the model ("" if they agree).

    `hub` is the hub's presence and settings for the user, `emulator` the
    emulator's full description of the user, `app` the hub's Graph session id.
    """
    presence, mode = hub["presence"], hub["mode"]
    problems = []
    if hub["own_mode"] not in model.own_modes:
        problems.append(f"own mode {hub['own_mode']!r} was never chosen ({model.own_modes})")
    # The keeper's profile is hidden by the call; their choices never include DnD.
    selection = None if model.keeper else presence["profile"]
    if shows_kept_teams_call(model, presence):
        # A Teams call began after the UC DnD was chosen; the hub's DnD hides its end,
        # so the call (newer, same standing) is shown until the DnD ends (docs/rules.md).
        hidden_by = [s for s in model.selections if status_of(s) == "dnd"]
        if not hidden_by:
            problems.append("a Teams call is kept with no DnD of the hub to hide its end")
        # Judge the rest against a real choice, as below.
        selection = hidden_by[0] if hidden_by else next(iter(model.selections))
    elif not model.keeper and selection not in model.selections:
        problems.append(f"profile {selection!r} was never chosen ({model.selections})")
        selection = next(iter(model.selections))  # judge the rest against a real choice
    want = expected(model.keeper, selection, mode)
    # While the hub's own session or DnD covers the user's Teams presence, Teams cannot
    # show that a Teams call ended; the hub keeps it until Teams can (docs/rules.md,
    # issue 19), at the latest for its 12 hours.
    kept_call = (
        (want.hub_session or want.hub_dnd)
        and model.had_teams_call
        and any(a["id"] == "teams-call" for a in presence["appointments"])
    )
    if kept_call and not model.keeper:
        want = replace(want, telephony="on_the_phone")
        if shows_kept_teams_call(model, presence):
            want = replace(want, status="busy", profile=presence["profile"])
    sessions = [s for s in emulator["sessions"] if s["sessionId"] == app and s["shown"]]
    shown = emulator["presence"]["availability"], emulator["presence"]["activity"]
    preferred = emulator["preferred"]
    actual = Expected(
        status=presence["status"],
        profile=None if model.keeper else presence["profile"],
        telephony=presence["telephony"],
        teams_shown=shown,
        hub_sees=(presence["teams"]["availability"], presence["teams"]["activity"]),
        hub_session=bool(sessions),
        hub_dnd=preferred is not None and preferred["availability"] == "DoNotDisturb",
    )
    for name in Expected.__dataclass_fields__:
        if getattr(actual, name) != getattr(want, name):
            problems.append(f"{name}: {getattr(actual, name)!r}, expected {getattr(want, name)!r}")
    if session_shown := [s["shown"] for s in sessions if s["activity"] != "InACall"]:
        problems.append(f"the hub's session shows {session_shown}")
    if presence["teams"]["held_by_user"]:
        problems.append("Teams reported as held by the user, who set nothing by hand")
    sync_appointments = [a for a in presence["appointments"] if a["origin"] != "manual"]
    if kept_call:
        sync_appointments = [a for a in sync_appointments if a["id"] != "teams-call"]
    if sync_appointments:
        problems.append(f"orphan sync appointments {sync_appointments}")
    sources = ("pbx", "teams") if kept_call else ("pbx",)
    if model.keeper and presence["telephony_source"] not in sources:
        problems.append(f"telephony source {presence['telephony_source']!r}, expected 'pbx'")
    return "; ".join(problems)
