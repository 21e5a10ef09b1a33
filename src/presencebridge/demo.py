"""`presencebridge demo`: the product on its embedded defaults, with a scripted day.

The sample company is created through the REST API. A simulated PBX places calls
through the telephony API, and the colleagues' Teams clients call, share screens
and set DnD through the embedded Graph emulator's control API, so the sync is
visible in both directions with no input.
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from presencebridge.adapters.pbx.simulator import SimulatedPbx
from presencebridge.server import Companion, Runtime

log = logging.getLogger(__name__)

GROUPS: list[dict[str, Any]] = [
    {
        "id": "berlin",
        "name": "Berlin",
        "settings": {
            "teams_sync_mode": "telephony_and_presence",
            "create_teams_profile_template": True,
        },
    },
    {"id": "hamburg", "name": "Hamburg", "settings": {"teams_sync_mode": "telephony_only"}},
]

USERS: list[tuple[str, str, str]] = [
    ("anna.schmidt", "Anna Schmidt", "berlin"),
    ("ben.mueller", "Ben Müller", "berlin"),
    ("clara.weber", "Clara Weber", "berlin"),
    ("david.fischer", "David Fischer", "berlin"),
    ("emma.wagner", "Emma Wagner", "hamburg"),
    ("felix.becker", "Felix Becker", "hamburg"),
    ("greta.hoffmann", "Greta Hoffmann", "hamburg"),
    ("hannes.koch", "Hannes Koch", "hamburg"),
]

PROFILES: list[dict[str, Any]] = [
    {"name": "Im Büro", "status": "available", "text": "Im Büro", "color": "#6bb700"},
    {"name": "Mittagspause", "status": "away", "text": "Mittagspause", "color": "#fcd116"},
    {"name": "Konzentriert", "status": "dnd", "text": "Bitte nicht stören", "color": "#c4314b"},
    {
        "name": "Kundentermin",
        "status": "busy",
        "text": "Beim Kunden",
        "color": "#e8a33d",
        "call_forwarding": "voicemail",
    },
]

# Stable Teams (Entra) object ids for the sample users.
TEAMS_NAMESPACE = uuid.UUID("6f1c1b1e-3d39-4c0c-9a51-0d1d2b3a4c5d")


def teams_id(user_id: str) -> str:
    return str(uuid.uuid5(TEAMS_NAMESPACE, user_id))


async def seed(client: httpx.AsyncClient) -> list[str]:
    """Create the sample company unless it exists; returns the user ids."""
    existing = {g["id"] for g in (await client.get("/api/v1/groups")).json()}
    for group in GROUPS:
        if group["id"] not in existing:
            (await client.post("/api/v1/groups", json=group)).raise_for_status()
    known = {u["id"] for u in (await client.get("/api/v1/users")).json()}
    now = datetime.now(UTC)
    for index, (user_id, name, group_id) in enumerate(USERS):
        if user_id in known:
            continue
        body = {
            "id": user_id,
            "display_name": name,
            "group": group_id,
            "teams_user_id": teams_id(user_id),
        }
        (await client.post("/api/v1/users", json=body)).raise_for_status()
        for profile in PROFILES:
            await client.post(f"/api/v1/users/{user_id}/profiles", json=profile)
        if index % 4 == 2:
            appointment = {
                "subject": "Projektbesprechung",
                "start": (now + timedelta(minutes=1)).isoformat(),
                "end": (now + timedelta(minutes=3)).isoformat(),
                "profile": "Kundentermin",
            }
            await client.post(f"/api/v1/users/{user_id}/appointments", json=appointment)
    return [user_id for user_id, _, _ in USERS]


class DemoDay:
    """Scenes of an office day, each taking one or two idle colleagues for a while."""

    def __init__(
        self,
        hub: httpx.AsyncClient,
        teams: httpx.AsyncClient | None,
        users: list[str],
        pace: float,
        seed: int | None = None,
    ) -> None:
        self.hub = hub
        self.teams = teams
        self.users = users
        self.pace = pace
        self.dice = random.Random(seed)  # noqa: S311 - a demo's dice, not cryptography
        self.pbx = SimulatedPbx(hub, self.dice, pace)
        self.busy: set[str] = set()

    async def run(self) -> None:
        # (weight, scene, how many colleagues it takes)
        scenes: list[tuple[int, Callable[[list[str]], Awaitable[None]], int]] = [
            (4, self.pbx_call, 1),
            (1, self.uc_dnd, 1),
        ]
        if self.teams is not None:
            scenes += [(3, self.teams_call, 2), (2, self.screen_sharing, 2), (1, self.teams_dnd, 1)]
        weights = [weight for weight, _, _ in scenes]
        running: set[asyncio.Task[None]] = set()
        while True:
            _, scene, people = self.dice.choices(scenes, weights)[0]
            idle = [u for u in self.users if u not in self.busy]
            if len(idle) >= people:
                cast = self.dice.sample(idle, people)
                task = asyncio.create_task(self._play(scene, cast))
                running.add(task)
                task.add_done_callback(running.discard)
            await asyncio.sleep(self.dice.uniform(1.5, 4.0) * self.pace)

    async def _play(self, scene: Callable[[list[str]], Awaitable[None]], cast: list[str]) -> None:
        self.busy.update(cast)
        try:
            await scene(cast)
        except httpx.HTTPError as error:
            log.warning("demo scene %s failed: %s", scene.__name__, error)
        finally:
            self.busy.difference_update(cast)

    async def _hold(self) -> None:
        await asyncio.sleep(self.dice.uniform(8.0, 20.0) * self.pace)

    async def _client(self, user: str, availability: str, activity: str) -> None:
        assert self.teams is not None
        body = {"availability": availability, "activity": activity}
        response = await self.teams.post(f"/_emulator/users/{teams_id(user)}/client", json=body)
        response.raise_for_status()

    async def pbx_call(self, cast: list[str]) -> None:
        await self.pbx.call(cast[0])

    async def uc_dnd(self, cast: list[str]) -> None:
        """A colleague concentrates: a DnD profile on the UC side (Teams follows in Berlin)."""
        user = cast[0]
        await self.hub.put(f"/api/v1/users/{user}/profile", json={"name": "Konzentriert"})
        try:
            await self._hold()
        finally:
            await self.hub.put(f"/api/v1/users/{user}/profile", json={"name": "Im Büro"})

    async def teams_call(self, cast: list[str]) -> None:
        """SPEC §3 rows 1 and 2: a Teams call between two colleagues."""
        for user in cast:
            await self._client(user, "Busy", "InACall")
        try:
            await self._hold()
        finally:
            for user in cast:
                await self._client(user, "Available", "Available")

    async def screen_sharing(self, cast: list[str]) -> None:
        """SPEC §3 rows 3 and 4: the first presents, the second watches in the call."""
        presenter, viewer = cast
        await self._client(presenter, "DoNotDisturb", "Presenting")
        await self._client(viewer, "Busy", "InACall")
        try:
            await self._hold()
        finally:
            await self._client(presenter, "Available", "Available")
            await self._client(viewer, "Available", "Available")

    async def teams_dnd(self, cast: list[str]) -> None:
        """A colleague sets DnD by hand in Teams."""
        assert self.teams is not None
        path = f"/_emulator/users/{teams_id(cast[0])}/preferred"
        body = {"availability": "DoNotDisturb", "activity": "DoNotDisturb"}
        (await self.teams.post(path, json=body)).raise_for_status()
        try:
            await self._hold()
        finally:
            await self.teams.delete(path)


def companion(pace: float = 1.0) -> Companion:
    async def run(runtime: Runtime) -> None:
        headers = {"Authorization": f"Bearer {runtime.admin_token}"}
        async with httpx.AsyncClient(base_url=runtime.base_url, headers=headers) as hub:
            users = await seed(hub)
            emulator = runtime.emulator
            if emulator is None:
                await DemoDay(hub, None, users, pace).run()
                return
            context = ssl.create_default_context(cafile=str(emulator.ca_file))
            async with httpx.AsyncClient(base_url=emulator.base_url, verify=context) as teams:
                log.info("demo: %d sample users; the office day begins", len(users))
                await DemoDay(hub, teams, users, pace).run()

    return run
