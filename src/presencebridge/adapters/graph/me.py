"""`/me/presence` with the signed-in user's delegated token (the agent's client-side Teams).

The same client as the server's (`GraphClient`: one retry policy, one per-user write
fence), pointed at the user's own presence and with no tenant budget: each user's
agent makes only its own few requests.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from presencebridge.adapters.graph.client import GraphClient

ME = "me"  # the Teams user id the agent's writes are made for: always the signed-in user


class DelegatedTokens:
    """The agent's token source: a fresh token is asked for once after a 401."""

    def __init__(self, token: Callable[[bool], Awaitable[str]]) -> None:
        self._token = token
        self._fresh = False

    async def token(self) -> str:
        fresh, self._fresh = self._fresh, False
        return await self._token(fresh)

    def invalidate(self) -> None:
        self._fresh = True  # revoked, or our clock is off: a new token, once

    def close(self) -> None:
        """The agent's sign-in owns its connections."""


class MeGraph(GraphClient):
    def __init__(
        self,
        graph_url: str,
        token: Callable[[bool], Awaitable[str]],
        session_id: str,
        ca_bundle: Path | None,
        max_attempts: int = 6,
    ) -> None:
        super().__init__(
            graph_url,
            DelegatedTokens(token),
            None,
            session_id,
            ca_bundle,
            max_attempts=max_attempts,
        )

    def presence_path(self, teams_user_id: str) -> str:
        return "/me/presence"

    async def read_own(self) -> dict[str, Any]:
        response = await self._request("getPresence", "GET", "/me/presence", None, read=True)
        self._check(response)
        body: dict[str, Any] = response.json()
        return body

    async def set_automatic_location(self, work_location_type: str) -> None:
        """The automatic work-location layer (a manual one the user set still wins)."""
        body = {"workLocationType": work_location_type}
        op = "setAutomaticLocation"
        path = "/me/presence/setAutomaticLocation"
        self._check(await self._request(op, "POST", path, body, False, ME))

    async def clear_automatic_location(self) -> None:
        """Only the automatic layer: the user's manual choice and the schedule stay."""
        op, path = "clearAutomaticLocation", "/me/presence/clearAutomaticLocation"
        # No body: the action takes no parameters (Microsoft's examples send none).
        self._check(await self._request(op, "POST", path, None, False, ME))
