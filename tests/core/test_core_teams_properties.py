"""Property tests of the Teams sync over random interleavings (SPEC §3, §4, GRAPH.md).

A small simulated Teams stands in for Graph: the Teams client's own session, the hub's
session (expires unless refreshed) and one user-preferred presence slot (set by the
hub or by the user by hand), aggregated as GRAPH.md says. The hub side is the pure
core: events go through `rules.apply`; the writer step decides like
`TeamsWriter._sync_user` and acknowledges with the *Written events; readings go
through `teams.needs_observation` like `TeamsPoller.apply`, and a read may be answered
late, after other things happened (its `requested_at` is when it was sent), and Graph
may answer it with what it showed at the request or only at the answer (latency on the
way in or out). The clock may jump hours ahead (the hub's timers fire on the way).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from presencebridge.adapters.graph.writes import planned_writes
from presencebridge.core import rules, teams
from presencebridge.core.effective import TEAMS_CALL_APPOINTMENT, effective_presence
from presencebridge.core.model import (
    SYNC_HARD_END,
    Appointment,
    AppointmentOrigin,
    CallState,
    MeetingState,
    Profile,
    ProfileTemplate,
    Status,
    TeamsSyncMode,
    Telephony,
    TelephonySource,
    User,
    UserState,
)
from presencebridge.core.rules import (
    Event,
    GroupContext,
    MeetingEvent,
    SelectProfile,
    SetOwnMode,
    TeamsObserved,
    TeamsPreferredWritten,
    TelephonyEvent,
    Tick,
)
from presencebridge.core.settings import GroupSettings

T0 = datetime(2025, 3, 3, 8, 0, tzinfo=UTC)
USER = User("dave", "Dave Example", "berlin", "00000000-0000-0000-0000-00000000da4e")
FOCUS = Profile("Focus", Status.DND, "Focus time", "#aa0000")
DESK = Profile("Desk", Status.AVAILABLE, "At my desk", "#00aa00")
LUNCH = Profile("Lunch", Status.AWAY, "At lunch", "#999999")
MS_TEAMS = ProfileTemplate("MS Teams", Status.BUSY, "In a Teams call", "#5b5fc7", True, "voicemail")

TP = TeamsSyncMode.TELEPHONY_AND_PRESENCE
TO = TeamsSyncMode.TELEPHONY_ONLY
OFF = TeamsSyncMode.OFF

AVAILABLE = ("Available", "Available")
IN_A_CALL = ("Busy", "InACall")
PRESENTING = ("DoNotDisturb", "Presenting")
AWAY = ("Away", "Away")
DND = ("DoNotDisturb", "DoNotDisturb")
CLIENT_STATES = [AVAILABLE, IN_A_CALL, PRESENTING, AWAY]
# Standing among sessions (GRAPH.md, Aggregation rule 2).
RANK = {"DoNotDisturb": 4, "Busy": 3, "Available": 2, "Away": 1}

GRAPH_SESSION_LIFETIME = teams.SESSION_LIFETIME  # what the writer asks Graph for
SETTLE_ROUNDS = 8
SETTLED_AFTER = 4  # no write but session refreshes from this round on


def group(mode: TeamsSyncMode) -> GroupContext:
    return GroupContext((MS_TEAMS,), GroupSettings(teams_sync_mode=mode))


# ---------------------------------------------------------------- the simulated Teams


@dataclass
class SimulatedTeams:
    """One user's presence in Graph: what readers see is `shown(now)`."""

    client: tuple[str, str] = AVAILABLE  # the Teams client's own session (signed in)
    session: tuple[str, str] | None = None  # the hub's session
    session_expires: datetime | None = None
    preferred: tuple[str, str] | None = None  # one slot: the hub's or the user's
    preferred_expires: datetime | None = None
    preferred_by: str | None = None  # "hub" | "user"

    def prune(self, now: datetime) -> None:
        if self.session_expires is not None and now >= self.session_expires:
            self.session, self.session_expires = None, None
        if self.preferred_expires is not None and now >= self.preferred_expires:
            self.preferred, self.preferred_expires, self.preferred_by = None, None, None

    def set_preferred(self, pair: tuple[str, str], until: datetime, by: str) -> None:
        self.preferred, self.preferred_expires, self.preferred_by = pair, until, by

    def clear_preferred(self) -> None:
        self.preferred, self.preferred_expires, self.preferred_by = None, None, None

    def shown(self, now: datetime) -> tuple[str, str]:
        self.prune(now)
        sessions = [self.client] if self.session is None else [self.client, self.session]
        if self.preferred is not None:
            # A user-preferred presence beats every session; a manual Available or Busy
            # shows as "In a call" while a session is Busy/InACall.
            if self.preferred[0] in ("Available", "Busy") and IN_A_CALL in sessions:
                return IN_A_CALL
            return self.preferred
        return max(sessions, key=lambda pair: RANK[pair[0]])


@dataclass(frozen=True)
class Reading:
    """What one read returned, and the truth behind it (for the assertions)."""

    shown: tuple[str, str]
    requested: datetime
    client: tuple[str, str]
    preferred_by: str | None
    client_call: int  # which call of the Teams client was going on (0: none)


# ---------------------------------------------------------------- actions


@dataclass(frozen=True)
class ClientShows:
    """The Teams client's own session changes (a call, presenting, idle...)."""

    pair: tuple[str, str]


@dataclass(frozen=True)
class DndByHand:
    """The user sets DnD in Teams by hand (on), or resets the DnD they set (off)."""

    on: bool


@dataclass(frozen=True)
class PbxToggle:
    """The user's next PBX call connects, or the one going on ends."""


@dataclass(frozen=True)
class FocusToggle:
    """The user selects the dnd profile Focus, or Desk if Focus is selected."""


@dataclass(frozen=True)
class WriterStep:
    pass


@dataclass(frozen=True)
class ReadNow:
    pass


Plain = (
    TelephonyEvent
    | PbxToggle
    | FocusToggle
    | MeetingEvent
    | SelectProfile
    | SetOwnMode
    | Tick
    | ClientShows
    | DndByHand
    | WriterStep
    | ReadNow
)


@dataclass(frozen=True)
class ClockJump:
    """The clock moves `hours` ahead at once (a suspended VM, the admin's time-lapse)."""

    hours: float


@dataclass(frozen=True)
class ReadLate:
    """A read sent now and answered `lag` seconds later, with `meanwhile` in between.

    `at_answer`: Graph reached the request only late, so it answers with what it shows
    after `meanwhile` although the hub sent it before.
    """

    lag: float
    meanwhile: tuple[Plain, ...]
    at_answer: bool = False


Action = Plain | ReadLate | ClockJump
# Seconds to let pass first, the action, and whether the writer acts on it at once
# (the hub wakes the writer after every change; a lagging writer comes later).
Step = tuple[float, Action, bool]


# ---------------------------------------------------------------- the simulation


@dataclass
class Sim:
    context: GroupContext
    state: UserState = field(default_factory=lambda: UserState(USER, (FOCUS, DESK, LUNCH)))
    graph: SimulatedTeams = field(default_factory=SimulatedTeams)
    now: datetime = T0
    writes: list[str] = field(default_factory=list)
    # Why each Teams call appointment / Teams DnD selection came about: the reading
    # whose observation created it (None: something else did).
    calls_created: list[Reading | None] = field(default_factory=list)
    dnd_created: list[Reading | None] = field(default_factory=list)
    pbx_calls: int = 0
    pbx_call: str | None = None  # the call `PbxToggle` connected, while it lasts
    client_calls: int = 0  # the Teams client's calls so far
    client_call: int = 0  # the one going on (0: none)
    outlived_calls: set[int] = field(default_factory=set)  # ended by the 12-hour hard end
    # Since a call outlived its hard end, no reading has shown the client out of a call:
    # a new call then looks to the hub like the same one (Graph shows InACall throughout).
    outlived_unseen_end: bool = False
    # Teams call appointments removed on a reading while the client's call went on, or
    # by anything but a reading, the mode or the hard end.
    calls_lost: list[str] = field(default_factory=list)
    calls_revived: list[Reading] = field(default_factory=list)  # after their hard end

    def mode(self) -> TeamsSyncMode:
        return self.context.mode(self.state)

    def event(self, event: Event, reading: Reading | None = None) -> None:
        before = self.state
        self.state = rules.apply(before, event, self.context, self.now).state
        if teams_call(before) is None and teams_call(self.state) is not None:
            self.calls_created.append(reading)
            if reading is not None and reading.client_call in self.outlived_calls:
                self.calls_revived.append(reading)
        if before.teams.dnd.selected_at is None and self.state.teams.dnd.selected_at is not None:
            self.dnd_created.append(reading)
        self._check_call_kept(before, event, reading)

    def _check_call_kept(self, before: UserState, event: Event, reading: Reading | None) -> None:
        had = teams_call(before)
        if had is None or teams_call(self.state) is not None:
            return
        if had.hard_end is not None and self.now >= had.hard_end:
            if self.client_call:
                self.outlived_calls.add(self.client_call)
            self.outlived_unseen_end = True
            return
        if self.mode() is OFF:
            return
        if reading is None:
            self.calls_lost.append(f"{event} removed it at {self.now}")
        elif reading.client_call and reading.client_call == self.client_call:
            self.calls_lost.append(f"{reading} removed it while the call went on")

    def advance(self, seconds: float) -> int:
        """Let time pass; the hub's timers fire at the deadlines and wake the writer.
        Returns how many deadlines fired."""
        target = self.now + timedelta(seconds=seconds)
        fired = 0
        while (deadline := rules.next_deadline(self.state, self.now)) is not None:
            if deadline > target:
                break
            self.now = deadline
            self.event(Tick())
            self.write()
            fired += 1
        self.now = target
        return fired

    def write(self) -> list[str]:
        """One pass of `TeamsWriter._sync_user`; returns what it sent."""
        now = self.now
        presence = effective_presence(self.state, self.context.templates, now)
        wanted = teams.intent(
            self.state, presence, self.mode(), self.context.settings.reassert_dnd, now
        )
        have = self.state.teams
        plan = teams.plan_writes(self.state, wanted, now)
        sent: list[str] = []
        # The writer's own path (adapters/graph/writes.py), against the modelled Graph.
        for write in planned_writes(plan, now):
            acknowledged = write.acknowledgement
            if write.kind == "set_session":
                sent.append(
                    "refresh_session"
                    if have.hub_session.activity == write.activity
                    else "set_session"
                )
                self.graph.prune(now)
                self.graph.session = (teams.HUB_SESSION[0], str(write.activity))
                self.graph.session_expires = now + GRAPH_SESSION_LIFETIME
            elif write.kind == "clear_session":
                sent.append("clear_session")
                self.graph.session, self.graph.session_expires = None, None
            elif write.kind == "set_preferred_dnd":
                assert isinstance(acknowledged, TeamsPreferredWritten)
                assert acknowledged.until is not None
                sent.append("set_preferred_dnd")
                self.graph.set_preferred(DND, acknowledged.until, "hub")
            else:
                sent.append("clear_preferred")
                self.graph.clear_preferred()
            self.event(acknowledged)
        self.writes.extend(sent)
        return sent

    def read(self) -> Reading | None:
        """A read sent now; the poller reads only users whose mode syncs."""
        if self.mode() is OFF:
            return None
        shown = self.graph.shown(self.now)
        return Reading(
            shown, self.now, self.graph.client, self.graph.preferred_by, self.client_call
        )

    def deliver(self, reading: Reading | None) -> None:
        if reading is None:
            return
        if reading.shown[1] not in teams.CALL_ACTIVITIES and reading.shown != DND:
            self.outlived_unseen_end = False
        if not teams.needs_observation(self.state.teams, *reading.shown, self.mode()):
            return
        observed = TeamsObserved(reading.shown[0], reading.shown[1], None, reading.requested)
        self.event(observed, reading)

    def perform(self, action: Action) -> None:
        match action:
            case ClientShows(pair):
                if pair == IN_A_CALL and self.graph.client != IN_A_CALL:
                    self.client_calls += 1
                    self.client_call = self.client_calls
                    if self.outlived_unseen_end:
                        self.outlived_calls.add(self.client_call)
                elif pair != IN_A_CALL:
                    self.client_call = 0
                self.graph.client = pair
            case DndByHand(on):
                self.graph.prune(self.now)
                if on:
                    self.graph.set_preferred(DND, self.now + timedelta(days=1), "user")
                elif self.graph.preferred_by == "user":
                    self.graph.clear_preferred()
            case PbxToggle():
                if self.pbx_call is None:
                    self.pbx_calls += 1
                    self.pbx_call = f"toggle-{self.pbx_calls}"
                    self.event(TelephonyEvent(self.pbx_call, CallState.CONNECTED))
                else:
                    self.event(TelephonyEvent(self.pbx_call, CallState.ENDED))
                    self.pbx_call = None
            case FocusToggle():
                focused = (
                    self.state.selection is not None and self.state.selection.profile == "Focus"
                )
                self.event(SelectProfile("Desk" if focused else "Focus"))
            case WriterStep():
                self.write()
            case ReadNow():
                self.deliver(self.read())
            case ReadLate(lag, meanwhile, at_answer):
                reading = self.read()
                self.advance(lag / 2)
                for inner in meanwhile:
                    self.perform(inner)
                    self.advance(0.01)
                self.advance(lag / 2)
                if reading is not None and at_answer:
                    late = self.read()
                    if late is not None:
                        reading = replace(late, requested=reading.requested)
                self.deliver(reading)
            case ClockJump(hours):
                self.advance(hours * 3600)
            case _:
                self.event(action)

    def run(self, history: list[Step]) -> None:
        for seconds, action, write_after in history:
            self.advance(seconds)
            self.perform(action)
            if write_after:
                self.write()

    def settle(self) -> list[list[str]]:
        """Events have stopped: alternate writer steps and fresh readings, SETTLE_ROUNDS
        of them after the last change time itself made. A deadline that fires while
        settling (a PBX call timing out at its 12-hour end) is an event like any other:
        what follows it is counted from there, as the poller goes on reading after it."""
        rounds: list[list[str]] = []
        for _ in range(SETTLE_ROUNDS * 6):
            if self.advance(2.0):
                rounds = []
            rounds.append(self.write())
            self.deliver(self.read())
            if len(rounds) == SETTLE_ROUNDS:
                return rounds
        raise AssertionError(f"time keeps changing the state while settling: {self.state}")


def teams_call(state: UserState) -> Appointment | None:
    return next((a for a in state.appointments if a.id == TEAMS_CALL_APPOINTMENT), None)


# ---------------------------------------------------------------- strategies

gaps = st.sampled_from([0.2, 0.7, 1.5, 4.0, 30.0, 170.0])
# Rarely, and across the 12-hour hard end and Graph's 1-day DnD reset.
jumps = st.sampled_from([1.0, 6.0, 11.9, 12.5, 25.0]).map(ClockJump)
pbx_events = st.builds(
    TelephonyEvent,
    st.sampled_from(["c1", "c2"]),
    st.sampled_from([CallState.CONNECTED, CallState.ENDED]),
)
meeting_events = st.sampled_from(
    [
        MeetingEvent("m1", MeetingState.JOINED),
        MeetingEvent("m1", MeetingState.LEFT),
        MeetingEvent("m2", MeetingState.JOINED, screen_sharing=True, audio=False),
        MeetingEvent("m2", MeetingState.LEFT),
    ]
)
selections = st.sampled_from(
    [SelectProfile("Focus"), SelectProfile("Desk"), SelectProfile("Lunch"), SelectProfile(None)]
)
own_modes = st.sampled_from([None, TP, TO, OFF]).map(SetOwnMode)


def interleavings(
    uc: st.SearchStrategy[Plain],
    clients: Sequence[tuple[str, str]],
    by_hand: bool,
    focused: bool,
) -> st.SearchStrategy[list[Step]]:
    """Random interleavings of UC events, Teams client changes, writer steps and reads.

    `focused`: a small alphabet, shorter histories and more reads in flight while the
    hub writes, so that the races among a few kinds of event come up often.
    """
    client = st.sampled_from(clients).map(ClientShows)
    race = uc.map(lambda event: (event, WriterStep()))
    if focused:
        few: list[st.SearchStrategy[Action]] = [
            uc,
            client,
            st.just(WriterStep()),
            st.just(ReadNow()),
        ]
        if by_hand:
            few.append(st.booleans().map(DndByHand))
        meanwhile = st.one_of(race, race, st.just((WriterStep(),)), st.just(()))
        late = st.builds(ReadLate, st.sampled_from([0.3, 0.8, 3.0, 3.0]), meanwhile, st.booleans())
        few.append(jumps)
        action: st.SearchStrategy[Action] = st.one_of(st.one_of(*few), late)
        # The Teams client starts in any of its states.
        start = st.tuples(st.just(0.0), client, st.just(False))
        steps = st.lists(st.tuples(gaps, action, st.booleans()), min_size=3, max_size=10)
        return st.tuples(start, steps).map(lambda both: [both[0], *both[1]])

    options: list[st.SearchStrategy[Plain]] = [
        uc,
        uc,
        client,
        client,
        st.just(Tick()),
        st.just(WriterStep()),
        st.just(ReadNow()),
        st.just(ReadNow()),
    ]
    if by_hand:
        options.append(st.booleans().map(DndByHand))
    plain = st.one_of(*options)
    # While a read is in flight: most interesting is a UC change the writer acts on.
    meanwhile = st.one_of(
        race, race, st.just((WriterStep(),)), st.lists(plain, max_size=2).map(tuple)
    )
    late = st.builds(ReadLate, st.sampled_from([0.3, 0.8, 1.6, 3.0]), meanwhile, st.booleans())
    action = st.one_of(plain, plain, late, st.one_of(plain, plain, plain, jumps))
    return st.lists(st.tuples(gaps, action, st.booleans()), min_size=1, max_size=20)


def with_modes(uc: st.SearchStrategy[Plain], mode_switches: bool) -> st.SearchStrategy[Plain]:
    return st.one_of(uc, own_modes) if mode_switches else uc


def histories(
    clients: Sequence[tuple[str, str]] = CLIENT_STATES, mode_switches: bool = False
) -> st.SearchStrategy[list[Step]]:
    """Everything at once: PBX calls, UC meetings, profile choices, Teams, (modes)."""
    uc: st.SearchStrategy[Plain] = st.one_of(pbx_events, pbx_events, meeting_events, selections)
    return interleavings(with_modes(uc, mode_switches), clients, True, False)


def call_histories(
    clients: Sequence[tuple[str, str]] = (AVAILABLE, IN_A_CALL), mode_switches: bool = False
) -> st.SearchStrategy[list[Step]]:
    """Calls only: PBX calls one after the other against the Teams client's own calls."""
    uc: st.SearchStrategy[Plain] = st.just(PbxToggle())
    return interleavings(with_modes(uc, mode_switches), clients, False, True)


def dnd_histories(mode_switches: bool = False) -> st.SearchStrategy[list[Step]]:
    """DnD only: UC profile choices against Presenting and a DnD set by hand in Teams."""
    uc: st.SearchStrategy[Plain] = st.just(FocusToggle())
    return interleavings(with_modes(uc, mode_switches), (AVAILABLE, PRESENTING), True, True)


ALL_MODES = st.sampled_from([TP, TO, OFF])
SYNCING = st.sampled_from([TP, TO])


@dataclass(frozen=True)
class Alphabet:
    histories: st.SearchStrategy[list[Step]]
    modes: st.SearchStrategy[TeamsSyncMode] = ALL_MODES


ALPHABETS: dict[str, Alphabet] = {
    "everything": Alphabet(histories()),
    "everything, mode changes": Alphabet(histories(mode_switches=True)),
    # The focused ones leave out mode off, where nothing happens.
    "calls": Alphabet(call_histories(), SYNCING),
    "calls, mode changes": Alphabet(call_histories(mode_switches=True), SYNCING),
    "dnd": Alphabet(dnd_histories(), SYNCING),
    "dnd, mode changes": Alphabet(dnd_histories(mode_switches=True), SYNCING),
    # The Teams client is never in a call.
    "no Teams call": Alphabet(histories(clients=[AVAILABLE, PRESENTING, AWAY], mode_switches=True)),
    "PBX calls only": Alphabet(call_histories(clients=(AVAILABLE, AWAY), mode_switches=True)),
}


def simulate(alphabet: str, data: st.DataObject, mode: TeamsSyncMode | None = None) -> Sim:
    """A random history of `alphabet` played in a group of a random (or the given) mode."""
    chosen = ALPHABETS[alphabet]
    if mode is None:
        mode = data.draw(chosen.modes, label="mode")
    sim = Sim(group(mode))
    sim.run(data.draw(chosen.histories, label="history"))
    return sim


PROPERTY = settings(max_examples=100, deadline=None)


# ---------------------------------------------------------------- a. no echo loops


def assert_bounded_writes(rounds: list[list[str]]) -> None:
    late = [w for r in rounds[SETTLED_AFTER:] for w in r if w != "refresh_session"]
    assert late == [], f"still writing after {SETTLED_AFTER} rounds: {rounds}"


@pytest.mark.parametrize("alphabet", ["everything, mode changes", "calls, mode changes"])
@PROPERTY
@given(data=st.data())
def test_a_teams_call_appointment_comes_only_from_a_call_of_the_teams_client(
    alphabet: str, data: st.DataObject
) -> None:
    sim = simulate(alphabet, data)
    rounds = sim.settle()

    for reading in sim.calls_created:
        assert reading is not None, "a Teams call appointment appeared without a reading"
        assert reading.client == IN_A_CALL, f"echo: {reading} created a Teams call"
    assert_bounded_writes(rounds)


@pytest.mark.parametrize("alphabet", ["no Teams call", "PBX calls only"])
@PROPERTY
@given(data=st.data())
def test_without_a_teams_call_no_teams_appointment_ever_appears(
    alphabet: str, data: st.DataObject
) -> None:
    sim = simulate(alphabet, data)
    rounds = sim.settle()

    assert sim.calls_created == []
    assert not any(a.origin is AppointmentOrigin.TEAMS for a in sim.state.appointments)
    assert_bounded_writes(rounds)


def assert_dnd_selections_come_from_the_user(sim: Sim, rounds: list[list[str]]) -> None:
    for reading in sim.dnd_created:
        assert reading is not None, "a Teams DnD selection appeared without a reading"
        assert reading.shown[0] == "DoNotDisturb"
        by_user = reading.client == PRESENTING or reading.preferred_by == "user"
        assert by_user, f"echo: {reading} (the hub's own DnD) selected a DnD profile"
    assert_bounded_writes(rounds)


@pytest.mark.parametrize("alphabet", ["everything, mode changes", "dnd", "dnd, mode changes"])
@PROPERTY
@given(data=st.data())
def test_a_teams_dnd_selection_comes_only_from_a_dnd_of_the_user(
    alphabet: str, data: st.DataObject
) -> None:
    sim = simulate(alphabet, data, TP)
    assert_dnd_selections_come_from_the_user(sim, sim.settle())


# Histories hypothesis found, replayed every run.
DND_REGRESSIONS = {
    # The hub's DnD is out; a meeting (not yet written) makes its clearing due; a read
    # goes out; the meeting ends and the writer re-sends the DnD to settle the unsure
    # write; the read, answered only then, showed the hub's earlier DnD.
    "a late read of the hub's DnD re-sent meanwhile": [
        (0.2, SelectProfile("Focus"), True),
        (0.2, MeetingEvent("m1", MeetingState.JOINED), False),
        (0.2, ReadLate(0.3, (MeetingEvent("m1", MeetingState.LEFT), WriterStep())), False),
    ],
}


DND_REGRESSIONS["a read sent before the hub's DnD, answered after it (issue 19, defect 4)"] = [
    (0.2, ReadLate(0.3, (SelectProfile("Focus"), WriterStep()), at_answer=True), False),
]
DND_REGRESSIONS["the same when the DnD is set anew (issue 19, defect 4)"] = [
    (0.2, SelectProfile("Focus"), True),
    (0.2, SelectProfile("Desk"), True),
    (0.2, ReadLate(0.3, (SelectProfile("Focus"), WriterStep()), at_answer=True), False),
]


@pytest.mark.parametrize("history", DND_REGRESSIONS.values(), ids=DND_REGRESSIONS.keys())
def test_a_teams_dnd_selection_comes_only_from_a_dnd_of_the_user_in_found_histories(
    history: list[Step],
) -> None:
    sim = Sim(group(TP))
    sim.run(history)
    assert_dnd_selections_come_from_the_user(sim, sim.settle())


# ---------------------------------------------------------------- no lost Teams call


@pytest.mark.parametrize("alphabet", ["everything, mode changes", "calls", "calls, mode changes"])
@PROPERTY
@given(data=st.data())
def test_a_teams_call_going_on_keeps_its_appointment(alphabet: str, data: st.DataObject) -> None:
    """Only Teams showing the call's end, the mode or the 12-hour hard end remove it:
    not the hub's own session or DnD over it (issue 19, defects 1 and 2)."""
    sim = simulate(alphabet, data)
    sim.settle()

    assert sim.calls_lost == []


@pytest.mark.parametrize("alphabet", ["everything, mode changes", "calls", "calls, mode changes"])
@PROPERTY
@given(data=st.data())
def test_a_teams_call_past_its_hard_end_does_not_come_back(
    alphabet: str, data: st.DataObject
) -> None:
    """Whatever happens on top (PBX calls, DnD), the same Teams call gets no second
    appointment after its hard end (issue 19, defect 3)."""
    sim = simulate(alphabet, data)
    sim.settle()

    assert sim.calls_revived == []


# ---------------------------------------------------------------- b. 12-hour hard end


@pytest.mark.parametrize(
    "alphabet", ["everything, mode changes", "calls, mode changes", "dnd, mode changes"]
)
@PROPERTY
@given(data=st.data())
def test_nothing_the_sync_creates_outlives_12_hours(alphabet: str, data: st.DataObject) -> None:
    sim = simulate(alphabet, data)
    sim.now += SYNC_HARD_END + timedelta(minutes=1)
    sim.event(Tick())

    assert not any(a.origin is AppointmentOrigin.TEAMS for a in sim.state.appointments)
    assert sim.state.teams.dnd.selected_at is None
    presence = effective_presence(sim.state, sim.context.templates, sim.now)
    assert presence.telephony_source is not TelephonySource.TEAMS


# ---------------------------------------------------------------- c. where both sides settle


def assert_settled_where_the_tables_say(sim: Sim) -> None:
    state, graph, now, mode = sim.state, sim.graph, sim.now, sim.mode()
    presence = effective_presence(state, sim.context.templates, now)
    shown = graph.shown(now)
    uc_call = presence.telephony is Telephony.ON_THE_PHONE and presence.telephony_source in (
        TelephonySource.PBX,
        TelephonySource.MEETING,
    )
    client_in_call = graph.client == IN_A_CALL
    appointment = teams_call(state) is not None
    sync = state.teams
    where = f"Teams shows {shown}, simulated {graph}, UC {presence.status} {sync}"

    # UC -> Teams: the hub's session exactly while the UC side has a call (§4).
    hub_session = graph.session is not None
    assert hub_session is (mode is not OFF and uc_call), f"hub session wrong: {where}"
    if mode is OFF:
        assert graph.preferred_by != "hub", f"mode off left the hub's DnD: {where}"
        assert not appointment, f"mode off kept a Teams call appointment: {where}"
        assert sync.dnd.selected_at is None, f"mode off kept a Teams DnD: {where}"
        return
    assert (sync.seen.availability, sync.seen.activity) == shown, f"last reading is stale: {where}"
    # Without a preferred presence and with the client not presenting (either outranks a
    # call in Graph's aggregation), Teams shows the call of whoever is in one.
    plain_sessions = graph.preferred is None and graph.client != PRESENTING
    if plain_sessions:
        in_call = uc_call or client_in_call
        assert (shown == IN_A_CALL) is in_call, f"Teams call status wrong: {where}"

    # Teams -> UC: the client's call shows as the Teams appointment. While the hub's own
    # session or a DnD preferred presence covers it, Teams cannot show whether it goes
    # on: the hub keeps what it knew (issue 19); otherwise Teams decides.
    hidden = uc_call or shown == DND
    outlived = graph.client == IN_A_CALL and sim.client_call in sim.outlived_calls
    if not hidden and not outlived:
        expected = shown[1] in teams.CALL_ACTIVITIES
        assert appointment is expected, f"Teams call appointment {appointment}: {where}"
        if plain_sessions:
            assert appointment is client_in_call, where
    if appointment and not uc_call:
        assert (presence.telephony, presence.telephony_source) == (
            Telephony.ON_THE_PHONE,
            TelephonySource.TEAMS,
        ), where
    elif not uc_call:
        assert presence.telephony_source is not TelephonySource.TEAMS, where

    # DnD, both ways, only in mode telephony_and_presence (§3 rule 4, §4).
    if mode is TO:
        assert sync.dnd.selected_at is None, f"telephony only selected a DnD: {where}"
        assert graph.preferred_by != "hub", f"telephony only kept the hub's DnD: {where}"
        return
    # (Unless it outlived the 12-hour hard end: then the UC side lets go of it.)
    if shown[0] == "DoNotDisturb" and sync.hub_dnd.until is None and not sync.dnd.outlived:
        assert sync.dnd.selected_at is not None, f"a Teams DnD did not reach UC: {where}"
    if shown[0] != "DoNotDisturb":
        assert sync.dnd.selected_at is None, f"UC kept a DnD that Teams left: {where}"
    both = sync.dnd.selected_at is not None and sync.hub_dnd.until is not None
    assert not both, f"a DnD from Teams was sent back to Teams: {where}"
    # The DnD the user chose on the UC side, also under a call (issue 19: the session
    # carries the call, the DnD stays).
    if presence.chosen_status is Status.DND and sync.dnd.selected_at is None:
        # Unless the user set another status by hand in Teams (then it is held).
        # Nor after Graph's 1-day reset without `reassert_dnd` (SPEC §4 rule 4), nor
        # after the user reset a Teams DnD set by hand during it (issue 19 decision).
        left_alone = sync.seen.held_by_user or sync.hub_dnd.lapsed or sync.hub_dnd.overridden
        reached = shown[0] == "DoNotDisturb" or left_alone
        assert reached, f"a UC DnD did not reach Teams: {where}"
    if graph.preferred_by == "hub":
        ours = presence.chosen_status is Status.DND and sync.dnd.selected_at is None
        assert ours, f"the hub's DnD outlived the UC DnD: {where}"


@pytest.mark.parametrize(
    "alphabet",
    [
        "everything",
        "calls",
        "dnd",
        "everything, mode changes",
        "calls, mode changes",
        "dnd, mode changes",
    ],
)
@PROPERTY
@given(data=st.data())
def test_both_sides_settle_where_the_tables_say(alphabet: str, data: st.DataObject) -> None:
    sim = simulate(alphabet, data)
    rounds = sim.settle()

    assert_bounded_writes(rounds)
    assert_settled_where_the_tables_say(sim)


def test_a_pbx_call_ending_at_its_12_hour_limit_while_settling_is_followed_like_any_event() -> None:
    """A history the property test above drew in a fresh-clone run: the PBX call's
    12-hour end fell on the very last settling round, so the only reading after the
    hub released its session fell inside the echo grace, and the Teams call the client
    was in meanwhile was never read as one. The hub's poller reads on after that;
    settling now does too (and the test fails with the old settling)."""
    sim = Sim(group(TP))
    sim.run(
        [
            (0.0, ClientShows(AVAILABLE), False),
            (0.2, PbxToggle(), False),
            (170.0, WriterStep(), False),
            (4.0, ClientShows(IN_A_CALL), False),
            (170.0, ClockJump(hours=11.9), False),
        ]
    )
    rounds = sim.settle()
    assert_bounded_writes(rounds)
    assert_settled_where_the_tables_say(sim)
    assert teams_call(sim.state) is not None
