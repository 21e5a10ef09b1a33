"""`presencebridge demo`: the product on its embedded defaults with sample users.

The sample company is created through the public REST API, and a simulated PBX
places calls through it, so presence visibly changes with no input.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from presencebridge.adapters.pbx.simulator import SimulatedPbx

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


async def seed(base_url: str, admin_token: str) -> list[str]:
    """Create the sample company unless it exists; returns the user ids."""
    headers = {"Authorization": f"Bearer {admin_token}"}
    async with httpx.AsyncClient(base_url=base_url, headers=headers) as client:
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
                "teams_user_id": f"00000000-0000-4000-8000-{index:012d}",
            }
            (await client.post("/api/v1/users", json=body)).raise_for_status()
            for profile in PROFILES:
                await client.post(f"/api/v1/users/{user_id}/profiles", json=profile)
            if index % 4 == 1:
                await client.put(f"/api/v1/users/{user_id}/profile", json={"name": "Konzentriert"})
            if index % 4 == 2:
                appointment = {
                    "subject": "Projektbesprechung",
                    "start": (now + timedelta(minutes=1)).isoformat(),
                    "end": (now + timedelta(minutes=3)).isoformat(),
                    "profile": "Kundentermin",
                }
                await client.post(f"/api/v1/users/{user_id}/appointments", json=appointment)
    return [user_id for user_id, _, _ in USERS]


def companion(admin_token: str, pace: float = 1.0) -> Any:
    async def run(base_url: str) -> None:
        users = await seed(base_url, admin_token)
        log.info("demo: %d sample users ready; the simulated PBX starts calling", len(users))
        await SimulatedPbx(base_url, admin_token, users, pace=pace).run()

    return run
