"""Property tests of the pure core: determinism, order independence, lossless storage."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from hypothesis import given, settings
from hypothesis import strategies as st

from presencebridge.core import codec, rules
from presencebridge.core.effective import effective_presence
from presencebridge.core.model import (
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
    Telephony,
    User,
    UserState,
)
from presencebridge.core.rules import GroupContext, TelephonyEvent
from tests.support.stored import stored_text, through_store

T0 = datetime(2025, 3, 3, 8, 0, tzinfo=UTC)
T = TypeVar("T")
USER = User("carol", "Carol Example", "munich", "00000000-0000-0000-0000-00000000c4r0")

# Few names, so selections and appointments often name a profile that exists.
PROFILE_NAMES = ["Focus", "Lunch", "Desk", "MS Teams", "MicSync", "Termin", "Quiet", "Gone"]

# A coarse grid, so that starts, ends, selections and `now` often coincide (ties).
moments = st.integers(0, 12).map(lambda k: T0 + timedelta(hours=k))
any_moments = st.datetimes(
    min_value=datetime(1971, 1, 1),
    max_value=datetime(2200, 1, 1),
    timezones=st.just(UTC),
)
colors = st.integers(0, 0xFFFFFF).map(lambda n: f"#{n:06x}")
texts = st.text(max_size=20)
ids = st.text(alphabet="abcXYZ019._@+-", min_size=1, max_size=6).map(lambda s: "i" + s)


@st.composite
def profiles(draw: st.DrawFn) -> tuple[Profile, ...]:
    names = draw(st.lists(st.sampled_from(PROFILE_NAMES), unique=True, max_size=5))
    return tuple(
        Profile(
            name,
            draw(st.sampled_from(Status)),
            draw(texts),
            draw(colors),
            draw(st.none() | texts),
        )
        for name in names
    )


@st.composite
def templates(draw: st.DrawFn) -> tuple[ProfileTemplate, ...]:
    names = draw(st.lists(st.sampled_from(PROFILE_NAMES), unique=True, max_size=4))
    return tuple(
        ProfileTemplate(
            name,
            draw(st.sampled_from(Status)),
            draw(texts),
            draw(colors),
            draw(st.booleans()),
            draw(st.none() | texts),
        )
        for name in names
    )


@st.composite
def appointments(draw: st.DrawFn, times: st.SearchStrategy[datetime]) -> Appointment:
    start = draw(times)
    end = start + timedelta(hours=draw(st.integers(1, 12)))
    created = start - timedelta(minutes=draw(st.integers(0, 600)))
    origin = draw(st.sampled_from(AppointmentOrigin))
    hard_end = draw(st.none() | st.just(created + timedelta(hours=12)))
    return Appointment(
        draw(ids),
        draw(texts),
        draw(st.none() | colors),
        start,
        end,
        draw(st.sampled_from(PROFILE_NAMES)),
        origin,
        created,
        hard_end,
    )


def unique_by_id(items: list[T], key: str) -> tuple[T, ...]:
    seen: dict[str, T] = {}
    for item in items:
        seen.setdefault(getattr(item, key), item)
    return tuple(seen.values())


@st.composite
def user_states(draw: st.DrawFn, times: st.SearchStrategy[datetime] = moments) -> UserState:
    selection = draw(st.none() | st.builds(Selection, st.sampled_from(PROFILE_NAMES), times))
    appts = draw(st.lists(appointments(times), max_size=8))
    # Telephony outranks most of the rest; leave it out often so the other rows get tested.
    calls = draw(
        st.just([])
        | st.lists(st.builds(Call, ids, st.sampled_from(CallState), times, times), max_size=5)
    )
    meetings = draw(
        st.just([])
        | st.lists(st.builds(Meeting, ids, times, st.booleans(), st.booleans()), max_size=3)
    )
    teams = draw(
        st.builds(
            TeamsState,
            seen=st.builds(
                TeamsReading,
                availability=st.none()
                | st.sampled_from(["Available", "Busy", "DoNotDisturb", "Away"]),
                activity=st.none() | st.sampled_from(["Available", "InACall", "Presenting"]),
                sequence=st.none() | st.sampled_from(["0001", "0002"]),
                requested_at=st.none() | times,
                held_by_user=st.booleans(),
            ),
            hub_session=st.builds(
                HubSession,
                activity=st.none() | st.just("InACall"),
                written_at=st.none() | times,
                unsure=st.booleans(),
            ),
            hub_dnd=st.builds(HubDnd, until=st.none() | times, lapsed=st.booleans()),
            call=st.builds(FollowedCall, outlived=st.booleans()),
            dnd=st.builds(
                FollowedDnd,
                selected_at=st.none() | times,
                replaced=st.none() | st.builds(Selection, ids, times, st.booleans()),
            ),
        )
    )
    return UserState(
        user=USER,
        profiles=draw(profiles()),
        selection=selection,
        appointments=unique_by_id(appts, "id"),
        calls=unique_by_id(calls, "call_id"),
        meetings=unique_by_id(meetings, "meeting_id"),
        own_mode=draw(st.none() | st.sampled_from(TeamsSyncMode)),
        teams=teams,
    )


# ---------------------------------------------------------------- a. effective presence


@settings(max_examples=150, deadline=None)
@given(state=user_states(), group=templates(), now=moments, data=st.data())
def test_effective_presence_depends_only_on_its_inputs(
    state: UserState,
    group: tuple[ProfileTemplate, ...],
    now: datetime,
    data: st.DataObject,
) -> None:
    presence = effective_presence(state, group, now)
    assert effective_presence(state, group, now) == presence

    stored = through_store(state)
    assert effective_presence(stored, group, now) == presence

    shuffled = replace(
        state,
        appointments=tuple(data.draw(st.permutations(state.appointments), label="appointments")),
        calls=tuple(data.draw(st.permutations(state.calls), label="calls")),
        meetings=tuple(data.draw(st.permutations(state.meetings), label="meetings")),
    )
    assert effective_presence(shuffled, group, now) == presence
    reversed_ = replace(
        state,
        appointments=state.appointments[::-1],
        calls=state.calls[::-1],
        meetings=state.meetings[::-1],
    )
    assert effective_presence(reversed_, group, now) == presence


@settings(max_examples=100, deadline=None)
@given(state=user_states(), group=templates(), now=moments)
def test_effective_presence_reports_a_profile_the_user_can_see(
    state: UserState, group: tuple[ProfileTemplate, ...], now: datetime
) -> None:
    presence = effective_presence(state, group, now)
    if presence.profile is None:
        return
    visible = {p.name for p in state.profiles} | {t.name for t in group if t.active} | {"Termin"}
    assert presence.profile in visible


# ---------------------------------------------------------------- b. call event order

RANK = {CallState.RINGING: 0, CallState.CONNECTED: 1, CallState.ENDED: 2}


def play(events: list[tuple[str, CallState]], gaps: list[int]) -> tuple[UserState, datetime]:
    state = UserState(user=USER)
    now = T0
    for (call_id, call_state), gap in zip(events, gaps, strict=True):
        now += timedelta(seconds=gap)
        state = rules.apply(state, TelephonyEvent(call_id, call_state), GroupContext(), now).state
    return state, now


gap_lists = st.lists(st.integers(1, 10), min_size=30, max_size=30)


@settings(max_examples=150, deadline=None)
@given(
    order=st.permutations(list(CallState)),
    extra=st.lists(st.sampled_from(CallState), max_size=5),
    gaps=gap_lists,
    data=st.data(),
)
def test_one_call_ends_idle_whatever_the_order_of_its_events(
    order: list[CallState], extra: list[CallState], gaps: list[int], data: st.DataObject
) -> None:
    sequence = data.draw(st.permutations(order + extra), label="events")
    events = [("call-1", s) for s in sequence]
    state, now = play(events, gaps[: len(events)])
    assert {(c.call_id, c.state) for c in state.calls} == {("call-1", CallState.ENDED)}
    presence = effective_presence(state, (), now)
    assert presence.telephony is Telephony.IDLE
    assert presence.telephony_source is None
    assert presence.status is Status.AVAILABLE


@st.composite
def call_histories(draw: st.DrawFn) -> dict[str, list[CallState]]:
    """For each call, the (non-empty) list of events the PBX sends, duplicates allowed."""
    count = draw(st.integers(1, 4))
    return {
        f"call-{index}": draw(st.lists(st.sampled_from(CallState), min_size=1, max_size=6))
        for index in range(count)
    }


@settings(max_examples=150, deadline=None)
@given(histories=call_histories(), gaps=gap_lists, data=st.data())
def test_interleaved_calls_end_in_the_same_state_for_every_order(
    histories: dict[str, list[CallState]], gaps: list[int], data: st.DataObject
) -> None:
    events = [(call_id, s) for call_id, states in histories.items() for s in states]
    first = data.draw(st.permutations(events), label="first order")
    second = data.draw(st.permutations(events), label="second order")
    state_a, now_a = play(first, gaps[: len(events)])
    state_b, _ = play(second, list(reversed(gaps))[: len(events)])

    expected = {(cid, max(states, key=RANK.__getitem__)) for cid, states in histories.items()}
    assert {(c.call_id, c.state) for c in state_a.calls} == expected
    assert {(c.call_id, c.state) for c in state_b.calls} == expected

    talking = any(
        CallState.CONNECTED in states and CallState.ENDED not in states
        for states in histories.values()
    )
    only_ringing = any(set(states) == {CallState.RINGING} for states in histories.values())
    presence = effective_presence(state_a, (), now_a)
    if talking:
        assert presence.telephony is Telephony.ON_THE_PHONE
    elif only_ringing:
        assert presence.telephony is Telephony.RINGING
    else:
        assert presence.telephony is Telephony.IDLE


# ---------------------------------------------------------------- c. codec


@settings(max_examples=150, deadline=None)
@given(state=user_states(any_moments))
def test_codec_round_trip_is_lossless(state: UserState) -> None:
    assert through_store(state) == state


@settings(max_examples=100, deadline=None)
@given(state=user_states(any_moments))
def test_codec_round_trip_through_json_is_lossless(state: UserState) -> None:
    text = stored_text(state)
    assert codec.decode(state.user, json.loads(text)) == state
    # Times come back as the same instants, still timezone-aware.
    restored = codec.decode(state.user, json.loads(text))
    for appointment in restored.appointments:
        assert appointment.start.tzinfo is not None
        assert appointment.start == next(
            a.start for a in state.appointments if a.id == appointment.id
        )
