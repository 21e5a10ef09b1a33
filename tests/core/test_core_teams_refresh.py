"""The hub's own session in Teams is re-sent before Graph lets it time out or expire.

Graph (Microsoft's "presence: setPresence", Timeout, expiration, and keep alive): an
app's Available session times out 5 minutes after its last setPresence and fades to
Available/AvailableInactive, then Away/Away; any session expires at its
expirationDuration (PT5M at least). The hub's session is Busy/InACall, which does not
fade, sent with SESSION_LIFETIME; it must be re-sent before either 5 minutes pass.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from presencebridge.core import rules, teams
from presencebridge.core.model import HubSession, User, UserState

GRAPH_AVAILABLE_TIMEOUT = timedelta(minutes=5)
GRAPH_SHORTEST_SESSION = timedelta(minutes=5)
T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def written_at(moment: datetime) -> UserState:
    state = UserState(user=User("u1", "U One", "g1", teams_user_id="t1"))
    session = HubSession(activity=teams.HUB_SESSION[1], written_at=moment)
    return replace(state, teams=replace(state.teams, hub_session=session))


def test_the_refresh_comes_before_graph_could_time_out_or_expire_the_session() -> None:
    assert teams.SESSION_LIFETIME >= GRAPH_SHORTEST_SESSION
    assert teams.SESSION_REFRESH < GRAPH_AVAILABLE_TIMEOUT
    assert teams.SESSION_REFRESH < teams.SESSION_LIFETIME
    # Busy does not fade; were the hub ever to assert Available, the refresh above
    # would still beat the 5-minute timeout.
    assert teams.HUB_SESSION[0] == "Busy"


def test_plan_writes_re_sends_the_session_when_its_refresh_is_due() -> None:
    state = written_at(T0)
    want = teams.Intent(session=teams.HUB_SESSION[1])
    early = teams.plan_writes(state, want, T0 + teams.SESSION_REFRESH - timedelta(seconds=1))
    assert not early
    due = teams.plan_writes(state, want, T0 + teams.SESSION_REFRESH)
    assert due.set_session == teams.HUB_SESSION[1]


def test_the_user_is_looked_at_again_when_the_refresh_is_due() -> None:
    # Time alone brings the user back to the sync at the refresh moment.
    assert rules.next_deadline(written_at(T0), T0) == T0 + teams.SESSION_REFRESH
