"""A simulated PBX for the demo: places calls through the public telephony API.

It speaks to the server exactly as a PBX connector would (HTTP, admin token), so
what the demo shows is what a real installation does.
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid

import httpx

log = logging.getLogger(__name__)


class SimulatedPbx:
    def __init__(self, client: httpx.AsyncClient, dice: random.Random, pace: float = 1.0) -> None:
        self.client = client  # base URL and admin token set
        self.dice = dice
        self.pace = pace

    async def call(self, user: str) -> None:
        """One call: it rings, is mostly answered, lasts a while, ends."""
        call_id = uuid.uuid4().hex[:12]
        await self.event(user, call_id, "ringing")
        await asyncio.sleep(self.dice.uniform(1.0, 3.0) * self.pace)
        if self.dice.random() < 0.15:  # nobody answered
            await self.event(user, call_id, "ended")
            return
        await self.event(user, call_id, "connected")
        try:
            await asyncio.sleep(self.dice.uniform(6.0, 20.0) * self.pace)
        finally:
            await self.event(user, call_id, "ended")

    async def event(self, user: str, call_id: str, state: str) -> None:
        try:
            response = await self.client.post(
                "/api/v1/telephony/events", json={"user": user, "call_id": call_id, "state": state}
            )
            response.raise_for_status()
        except httpx.HTTPError as error:
            log.warning("simulated PBX: %s for %s failed: %s", state, user, error)
