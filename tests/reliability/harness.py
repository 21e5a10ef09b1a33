"""Users known to both sides, read back the way their users see them, and compared."""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable
from typing import Any

import httpx

from tests.reliability.model import GROUP_MODE, PROFILES, UserModel, divergence
from tests.support.server import ServerProcess
from tests.support.teams import CLIENT_ID, EmulatorProcess, new_teams_id

GROUP = "floor"


def control_client(emulator: EmulatorProcess) -> httpx.Client:
    """One emulator control client kept open (a new TLS context per call is slow)."""
    context = ssl.create_default_context(cafile=str(emulator.ca_file))
    return httpx.Client(base_url=emulator.base_url, verify=context, timeout=30)


def expect_ok(response: httpx.Response) -> Any:
    assert response.is_success, f"{response.request.method} {response.request.url}: {response.text}"
    return response.json() if response.content else None


def create_users(
    api: httpx.Client, control: httpx.Client, count: int, keepers: int
) -> list[UserModel]:
    """A group syncing with Teams and `count` users with the same own profiles.

    The first `keepers` users will keep one PBX call up to the end.
    """
    body = {"id": GROUP, "name": "Floor", "settings": {"teams_sync_mode": GROUP_MODE}}
    expect_ok(api.post("/api/v1/groups", json=body))
    users = []
    for i in range(count):
        model = UserModel(id=f"user{i:03d}", teams_id=new_teams_id(), keeper=i < keepers)
        expect_ok(control.post("/_emulator/users", json={"id": model.teams_id}))
        user = {
            "id": model.id,
            "display_name": f"User {i}",
            "group": GROUP,
            "teams_user_id": model.teams_id,
        }
        expect_ok(api.post("/api/v1/users", json=user))
        for profile in PROFILES.values():
            expect_ok(api.post(f"/api/v1/users/{model.id}/profiles", json=profile))
        users.append(model)
    return users


def snapshot(
    api: httpx.Client, control: httpx.Client, user: UserModel
) -> tuple[dict[str, Any], Any]:
    """The hub's view of the user (presence and sync mode) and the emulator's."""
    settings = expect_ok(api.get(f"/api/v1/users/{user.id}/settings"))
    hub = {
        "presence": expect_ok(api.get(f"/api/v1/users/{user.id}/presence")),
        "own_mode": settings["teams_sync_mode"],
        "mode": settings["effective_teams_sync_mode"],
    }
    return hub, expect_ok(control.get(f"/_emulator/users/{user.teams_id}"))


def divergences(api: httpx.Client, control: httpx.Client, users: list[UserModel]) -> dict[str, str]:
    """Every user whose hub state, Teams state and model disagree, with the reasons."""
    found = {}
    for user in users:
        hub, emulator = snapshot(api, control, user)
        problem = divergence(user, hub, emulator, CLIENT_ID)
        if problem:
            found[user.id] = problem
    return found


def converge(
    api: httpx.Client, control: httpx.Client, users: list[UserModel], timeout: float, what: str
) -> float:
    """Wait until no user diverges; the seconds it took. Fails with every divergence left."""
    started = time.monotonic()
    found = divergences(api, control, users)
    while found:
        if time.monotonic() - started > timeout:
            lines = "\n".join(f"  {user}: {problem}" for user, problem in sorted(found.items()))
            raise AssertionError(f"{what}: {len(found)} users diverge after {timeout} s:\n{lines}")
        time.sleep(0.2)
        found = divergences(api, control, users)
    return time.monotonic() - started


def wind_down(
    api: httpx.Client,
    control: httpx.Client,
    users: list[UserModel],
    keep_call: Callable[[UserModel], str | None],
) -> int:
    """End every call but the keepers' one and bring every Teams client back to Available.

    Returns how many PBX events that took. Every one must be acknowledged.
    """
    sent = 0
    for user in users:
        kept = keep_call(user)
        for call_id, states in sorted(user.calls.items()):
            if call_id != kept and states != {"ended"}:
                event = {"user": user.id, "call_id": call_id, "state": "ended"}
                expect_ok(api.post("/api/v1/telephony/events", json=event))
                user.call_event(call_id, "ended", acknowledged=True)
                sent += 1
        body = {"availability": "Available", "activity": "Available"}
        expect_ok(control.post(f"/_emulator/users/{user.teams_id}/client", json=body))
        user.client = ("Available", "Available")
    return sent


def metric_total(server: ServerProcess, name: str, **labels: str) -> float:
    """Sum of a Prometheus counter over the series whose labels include `labels`."""
    total = 0.0
    for line in httpx.get(server.url + "/metrics", timeout=10).text.splitlines():
        if not line.startswith(name + "{"):
            continue
        series, value = line.rsplit(" ", 1)
        if all(f'{key}="{val}"' in series for key, val in labels.items()):
            total += float(value)
    return total
