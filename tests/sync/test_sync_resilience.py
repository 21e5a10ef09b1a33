"""The Teams sync under time, faults, mode changes and restarts (emulator + server processes)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.support.server import ServerProcess
from tests.support.teams import EmulatorProcess
from tests.support.waiting import eventually
from tests.sync.test_sync_tables import (
    DND_PROFILE,
    Colleague,
    group,
    on_teams_phone,
    teams_appointments,
)

HOUR = 3600.0


def advance_hub(api: httpx.Client, seconds: float) -> None:
    assert api.post("/api/v1/admin/clock", json={"advance_seconds": seconds}).is_success


def test_no_sync_appointment_outlives_12_hours_even_with_graph_gone(
    api: httpx.Client, emulator: EmulatorProcess, tmp_path: Path
) -> None:
    g = group(api)
    a = Colleague(api, emulator, "anna", g)
    emulator.client_presence(a.teams_id, "Busy", "InACall")
    eventually(a.presence, on_teams_phone)
    emulator.kill9()  # Graph unreachable from now on
    advance_hub(api, 11 * HOUR)
    assert len(teams_appointments(a.presence())) == 1
    advance_hub(api, 1 * HOUR + 60)
    shown = a.presence()
    assert teams_appointments(shown) == []
    assert shown["telephony"] == "idle"


def test_emulator_back_after_12_hours_does_not_revive_the_appointment(
    api: httpx.Client, emulator: EmulatorProcess
) -> None:
    g = group(api)
    a = Colleague(api, emulator, "anna", g)
    emulator.client_presence(a.teams_id, "Busy", "InACall")
    eventually(a.presence, on_teams_phone)
    emulator.advance(12 * HOUR + 60)
    advance_hub(api, 12 * HOUR + 60)
    # The (stuck) Teams client still says InACall: the hub keeps its word anyway.
    eventually(a.presence, lambda p: teams_appointments(p) == [])
    for _ in range(3):
        assert teams_appointments(eventually(a.presence, lambda p: True)) == []
    # A new call after that one ended is recognised again.
    emulator.client_presence(a.teams_id, "Available", "Available")
    eventually(a.presence, lambda p: p["teams"]["activity"] == "Available")
    emulator.client_presence(a.teams_id, "Busy", "InACall")
    eventually(a.presence, on_teams_phone)


@pytest.mark.parametrize("reassert", [False, True])
def test_teams_dnd_set_by_the_hub_ends_after_a_day_unless_reasserted(
    api: httpx.Client, emulator: EmulatorProcess, reassert: bool
) -> None:
    g = group(api, reassert_dnd=reassert)
    a = Colleague(api, emulator, "anna", g)
    a.add_profile(DND_PROFILE)
    a.select("Fokus")
    eventually(a.teams, lambda shown: shown == ("DoNotDisturb", "DoNotDisturb"))
    emulator.advance(24 * HOUR + 60)
    advance_hub(api, 24 * HOUR + 60)
    if reassert:
        eventually(a.teams, lambda shown: shown == ("DoNotDisturb", "DoNotDisturb"), timeout=30)
        writes = emulator.stats()["users"][a.teams_id]["setUserPreferredPresence"]
        assert writes == 2
    else:
        eventually(a.teams, lambda shown: shown[0] != "DoNotDisturb", timeout=30)
        eventually(a.presence, lambda p: p["teams"]["availability"] != "DoNotDisturb")
        assert emulator.stats()["users"][a.teams_id]["setUserPreferredPresence"] == 1
    assert a.presence()["status"] == "dnd"  # the UC side keeps the user's own choice


def test_mode_off_removes_what_the_hub_had_set(
    api: httpx.Client, emulator: EmulatorProcess
) -> None:
    g = group(api)
    a = Colleague(api, emulator, "anna", g)  # in a Teams call
    b = Colleague(api, emulator, "ben", g)  # on a PBX call
    c = Colleague(api, emulator, "clara", g)  # in DnD on the UC side
    emulator.client_presence(a.teams_id, "Busy", "InACall")
    b.pbx("c1", "connected")
    c.add_profile(DND_PROFILE)
    c.select("Fokus")
    eventually(a.presence, on_teams_phone)
    eventually(b.teams, lambda shown: shown == ("Busy", "InACall"))
    eventually(c.teams, lambda shown: shown == ("DoNotDisturb", "DoNotDisturb"))

    assert api.patch(f"/api/v1/groups/{g}/settings", json={"teams_sync_mode": "off"}).is_success
    eventually(b.teams, lambda shown: shown == ("Available", "Available"))
    eventually(c.teams, lambda shown: shown == ("Available", "Available"))
    shown = a.presence()
    assert teams_appointments(shown) == [] and shown["telephony"] == "idle"
    assert a.teams() == ("Busy", "InACall")  # the user's own Teams call is untouched
    assert c.presence()["profile"] == "Fokus"  # and so is the UC side's own choice


def test_sync_converges_with_20_percent_429_and_never_exceeds_the_budget(
    api: httpx.Client, emulator: EmulatorProcess
) -> None:
    g = group(api)
    users = [Colleague(api, emulator, f"user{i}", g) for i in range(10)]
    with emulator.control() as control:
        control.post("/_emulator/faults", json={"rate_429": 0.2, "rate_503": 0.0, "latency_ms": 0})
    for i, user in enumerate(users):
        user.pbx(f"call-{i}", "connected")
    for user in users[::2]:
        user.pbx(f"call-{users.index(user)}", "ended")
    for i, user in enumerate(users):
        expected = ("Available", "Available") if i % 2 == 0 else ("Busy", "InACall")

        def reached(shown: tuple[str, str], expected: tuple[str, str] = expected) -> bool:
            return shown == expected

        eventually(user.teams, reached, timeout=30)
    stats = emulator.stats()
    assert stats["injected"]["429"] > 0  # the faults really happened
    assert stats["throttled"] == 0  # ... and the hub never ran into the budget
    assert stats["budget"]["peak"] <= stats["budget"]["limit"]


def test_crashed_hub_leaves_no_permanent_call_and_restores_it_on_restart(
    server: ServerProcess, api: httpx.Client, emulator: EmulatorProcess
) -> None:
    g = group(api)
    a = Colleague(api, emulator, "anna", g)
    a.pbx("r1", "connected")
    eventually(a.teams, lambda shown: shown == ("Busy", "InACall"))
    server.kill9()
    emulator.advance(6 * 60)  # Graph's 5-minute session runs out while the hub is down
    assert a.teams() == ("Available", "Available")
    server.start()
    with server.client() as fresh:
        a.api = fresh
        # The call is still going on the PBX: reconciliation at start shows it again.
        eventually(a.teams, lambda shown: shown == ("Busy", "InACall"))
        a.pbx("r1", "ended")
        eventually(a.teams, lambda shown: shown == ("Available", "Available"))
