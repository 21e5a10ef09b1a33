"""The random workload: what the PBX, the users and their Teams clients do, one event at a time.

Each event is drawn for one user from a seeded `random.Random`, sent through the
public interfaces (the REST API as a PBX connector and the users' own console would;
the emulator's control API as the user's Teams client), and recorded in the model
with whether it was acknowledged.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import httpx

from tests.reliability.model import CLIENT_STATES, MODES, PROFILES, UserModel


@dataclass(frozen=True)
class Op:
    kind: str  # call, select, mode, client
    call_id: str = ""
    value: str | None = None
    pair: tuple[str, str] = ("", "")


@dataclass
class Driver:
    """Draws events for a fixed set of users and remembers which of their calls are open."""

    rng: random.Random
    users: list[UserModel]
    calls: dict[str, dict[str, str]] = field(default_factory=dict)  # user -> call -> state
    numbers: dict[str, int] = field(default_factory=dict)

    def next(self) -> tuple[UserModel, Op]:
        user = self.rng.choice(self.users)
        return user, self.choose(user)

    def choose(self, user: UserModel) -> Op:
        rng = self.rng
        calls = self.calls.setdefault(user.id, {})
        ringing = [c for c, state in calls.items() if state == "ringing"]
        if ringing:  # a ringing call is answered or missed next
            return Op("call", ringing[0], "connected" if rng.random() < 0.75 else "ended")
        options: dict[str, float] = {"select": 1.2, "mode": 0.4, "client": 2.0}
        if len(calls) < 2:  # up to two calls at once
            options["ring"] = 3.0
        if calls:
            options["hang up"] = 3.0
        [kind] = rng.choices(list(options), weights=list(options.values()))
        if kind == "ring":
            number = self.numbers[user.id] = self.numbers.get(user.id, 0) + 1
            return Op("call", f"{user.id}-c{number}", "ringing")
        if kind == "hang up":
            return Op("call", rng.choice(sorted(calls)), "ended")
        if kind == "select":
            # Keepers never choose DnD: their call must stay what the UC side shows.
            names = [n for n in PROFILES if not (user.keeper and PROFILES[n]["status"] == "dnd")]
            return Op("select", value=rng.choice([None, *names]))
        if kind == "mode":
            return Op("mode", value=rng.choice([None, *MODES]))
        return Op("client", pair=rng.choice(CLIENT_STATES))

    def record(self, user: UserModel, op: Op, acknowledged: bool) -> None:
        """The event was acknowledged, or sent without an answer (it may have applied)."""
        if op.kind == "client":
            user.client = op.pair
            if op.pair[1] in ("InACall", "InAConferenceCall"):
                user.had_teams_call = True
        elif op.kind == "call":
            assert op.value is not None
            user.call_event(op.call_id, op.value, acknowledged)
            calls = self.calls.setdefault(user.id, {})
            if op.value == "ended":
                calls.pop(op.call_id, None)
            else:
                calls[op.call_id] = op.value
        elif op.kind == "select":
            user.selected(op.value, acknowledged)
        else:
            user.own_mode(op.value, acknowledged)


def send(api: httpx.Client, control: httpx.Client, user: UserModel, op: Op) -> httpx.Response:
    """One event through the public interfaces; transport errors are the caller's to judge."""
    if op.kind == "client":
        body = {"availability": op.pair[0], "activity": op.pair[1]}
        return control.post(f"/_emulator/users/{user.teams_id}/client", json=body)
    if op.kind == "call":
        event = {"user": user.id, "call_id": op.call_id, "state": op.value}
        return api.post("/api/v1/telephony/events", json=event)
    if op.kind == "select":
        return api.put(f"/api/v1/users/{user.id}/profile", json={"name": op.value})
    return api.patch(f"/api/v1/users/{user.id}/settings", json={"teams_sync_mode": op.value})
