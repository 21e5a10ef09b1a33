"""A simulated PBX for the demo: places calls through the public telephony API.

It speaks to the server exactly as a PBX connector would (HTTP, admin token), so
what the demo shows is what a real installation does.
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from collections.abc import Sequence

import httpx

log = logging.getLogger(__name__)


class SimulatedPbx:
    def __init__(
        self,
        base_url: str,
        admin_token: str,
        users: Sequence[str],
        *,
        seed: int | None = None,
        pace: float = 1.0,
    ) -> None:
        self.base_url = base_url
        self.headers = {"Authorization": f"Bearer {admin_token}"}
        self.users = list(users)
        self.random = random.Random(seed)  # noqa: S311 - a demo's dice, not cryptography
        self.pace = pace
        self.busy: set[str] = set()

    async def run(self) -> None:
        async with httpx.AsyncClient(base_url=self.base_url, headers=self.headers) as client:
            calls: set[asyncio.Task[None]] = set()
            while True:
                idle = [u for u in self.users if u not in self.busy]
                if idle:
                    user = self.random.choice(idle)
                    task = asyncio.create_task(self._call(client, user))
                    calls.add(task)
                    task.add_done_callback(calls.discard)
                await asyncio.sleep(self.random.uniform(2.0, 5.0) * self.pace)

    async def _call(self, client: httpx.AsyncClient, user: str) -> None:
        self.busy.add(user)
        call_id = uuid.uuid4().hex[:12]
        try:
            await self._event(client, user, call_id, "ringing")
            await asyncio.sleep(self.random.uniform(1.0, 3.0) * self.pace)
            if self.random.random() < 0.15:  # nobody answered
                await self._event(client, user, call_id, "ended")
                return
            await self._event(client, user, call_id, "connected")
            await asyncio.sleep(self.random.uniform(6.0, 20.0) * self.pace)
            await self._event(client, user, call_id, "ended")
        finally:
            self.busy.discard(user)

    async def _event(self, client: httpx.AsyncClient, user: str, call_id: str, state: str) -> None:
        try:
            response = await client.post(
                "/api/v1/telephony/events", json={"user": user, "call_id": call_id, "state": state}
            )
            response.raise_for_status()
        except httpx.HTTPError as error:
            log.warning("simulated PBX: %s for %s failed: %s", state, user, error)
