"""Connected desktop agents: their settings, their reports, and client-side Teams.

One agent connection per user (the newest wins). After each hub change for a
connected user the relay sends what changed: the settings the agent needs, the
user's presence, and, in client-side Teams mode, the Teams writes the rules ask
for (the agent makes them with the user's own sign-in and acknowledges them).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from presencebridge.core import micsync, rules, teams
from presencebridge.core.model import TeamsSyncMode
from presencebridge.core.worklocation import network_entries

if TYPE_CHECKING:
    from presencebridge.service.hub import Hub

log = logging.getLogger(__name__)

# An intent not acknowledged within this long is sent again.
INTENT_RESEND_SECONDS = 10.0

Send = Callable[[dict[str, Any]], Awaitable[None]]


@dataclass(frozen=True)
class ClientSideTeams:
    """Where agents sign their users in when the server has no app permission."""

    authority: str
    tenant_id: str
    client_id: str
    graph_url: str


@dataclass
class AgentConnection:
    user_id: str
    send: Send
    last_settings: dict[str, Any] | None = None
    last_intent: dict[str, Any] | None = None
    intent_sent_at: float = 0.0
    queue: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)
    token: str | None = None  # what it signed in with; checked again when tokens change
    # Set when its token was revoked or its user deleted: the stream is closed.
    revoked: asyncio.Event = field(default_factory=asyncio.Event)


class AgentRelay:
    def __init__(
        self,
        hub: Hub,
        client_side: ClientSideTeams | None,
        forward: Callable[[str, dict[str, Any]], None] | None = None,
    ) -> None:
        self.hub = hub
        self.client_side = client_side
        self.connections: dict[str, AgentConnection] = {}
        # Several nodes: what an agent reports for a user another node handles goes there.
        self.forward = forward
        hub.add_change_listener(self.notify)
        hub.add_token_listener(self._tokens_changed)
        self._checks: set[asyncio.Task[None]] = set()

    # -- connections ---------------------------------------------------------------------

    def connect(self, user_id: str, send: Send, token: str | None = None) -> AgentConnection:
        connection = AgentConnection(user_id, send, token=token)
        self.connections[user_id] = connection  # the newest agent of a user wins
        self.notify(user_id)
        return connection

    def disconnect(self, connection: AgentConnection) -> None:
        if self.connections.get(connection.user_id) is connection:
            del self.connections[connection.user_id]

    def _tokens_changed(self, user_id: str) -> None:
        """A token of the user was revoked, or the user deleted: a connected agent whose
        token no longer names its user is let go at once."""
        connection = self.connections.get(user_id)
        if connection is None:
            return
        task = asyncio.get_running_loop().create_task(self._check_token(connection))
        self._checks.add(task)
        task.add_done_callback(self._checks.discard)

    async def _check_token(self, connection: AgentConnection) -> None:
        token = connection.token
        still = token is not None and await self.hub.agent_token_user(token)
        if still != connection.user_id:
            connection.revoked.set()

    def notify(self, user_id: str) -> None:
        connection = self.connections.get(user_id)
        if connection is None:
            return
        for message in self._messages(connection):
            connection.queue.put_nowait(message)

    # -- what the agent needs to know -------------------------------------------------------

    def settings_message(self, user_id: str) -> dict[str, Any]:
        state = self.hub.user(user_id).state
        group = self.hub.group(state.user.group)
        settings = group.settings
        reason = micsync.group_problem(settings, group.templates)
        mode = self.hub.mode_of(user_id)
        client = self.client_side
        client_side = client is not None and mode is not TeamsSyncMode.OFF
        # The work location is the user's own (delegated, /me only): only an agent that
        # signs its user in for client-side Teams can set it.
        office_networks = (
            network_entries(settings.teams_work_location_office_networks) if client_side else []
        )
        return {
            "type": "settings",
            "user": user_id,
            "microphone": {
                "enabled": bool(settings.microphone_sync_enable),
                "whitelist": sorted(
                    micsync.effective_whitelist(settings.microphone_sync_whitelist)
                ),
                "active": reason is None,
                "reason": reason,
            },
            "teams": {
                "client_side": client_side,
                "mode": mode.value,
                "remember_credentials": settings.remember_credentials,
                "authority": None if client is None else client.authority,
                "tenant_id": None if client is None else client.tenant_id,
                "client_id": None if client is None else client.client_id,
                "graph_url": None if client is None else client.graph_url,
                "office_networks": office_networks,
            },
        }

    def _messages(self, connection: AgentConnection) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        settings = self.settings_message(connection.user_id)
        if settings != connection.last_settings:
            connection.last_settings = settings
            messages.append(settings)
        intent = self._intent(connection.user_id)
        now = time.monotonic()
        if intent is None:
            connection.last_intent = None
        elif (
            intent != connection.last_intent
            or now - connection.intent_sent_at > INTENT_RESEND_SECONDS
        ):
            connection.last_intent = intent
            connection.intent_sent_at = now
            messages.append(intent)
        return messages

    def _intent(self, user_id: str) -> dict[str, Any] | None:
        """In client-side mode: the Teams writes the rules ask for, as one desired state."""
        if self.client_side is None:
            return None
        view = self.hub.user(user_id)
        if view.state.user.teams_user_id is None:
            return None
        settings = self.hub.group(view.state.user.group).settings
        now = self.hub.clock.now()
        want = teams.intent(
            view.state, view.presence, self.hub.mode_of(user_id), settings.reassert_dnd, now,
            settings.teams_status_message,
        )  # fmt: skip
        plan = teams.plan_writes(view.state, want, now)
        if not plan:
            return None
        minutes = None
        if plan.preferred_duration is not None:
            minutes = max(5, int(plan.preferred_duration.total_seconds() // 60))
        return {
            "type": "teams_intent",
            "session": want.session,
            "preferred_dnd": want.preferred_dnd,
            "preferred_dnd_minutes": minutes,
            "refresh": plan.set_session is not None,
            # The writes themselves, so the agent never has to guess (and never clears a
            # status the user set by hand).
            "set_session": plan.set_session,
            "clear_session": plan.clear_session,
            "set_preferred_dnd": plan.set_preferred_dnd,
            "clear_preferred": plan.clear_preferred,
            "set_message": plan.set_message,
            "message_until": None if plan.message_until is None else plan.message_until.isoformat(),
            "clear_message": plan.clear_message,
        }

    # -- what the agent tells us --------------------------------------------------------------

    async def receive(self, connection: AgentConnection, message: dict[str, Any]) -> None:
        """Apply one agent message; raises ValueError for a message that makes no sense."""
        user_id = connection.user_id
        kind = message.get("type")
        if kind == "microphone":
            processes = message.get("processes")
            if not isinstance(processes, list) or not all(isinstance(p, str) for p in processes):
                raise ValueError("microphone.processes must be a list of process names")
        elif kind not in ("hello", "teams_reading", "teams_written") or (
            kind != "hello" and self.client_side is None
        ):
            raise ValueError(f"unknown message type {kind!r}")
        if kind in ("hello", "teams_written"):
            connection.last_settings = None if kind == "hello" else connection.last_settings
            connection.last_intent = None  # what was acknowledged decides the next intent
        if self.forward is not None and not self.hub.owns(user_id):
            log.debug("agent message for %s goes to the node handling the user", user_id)
            self.forward(user_id, message)
        else:
            await self.apply(user_id, message)
        if kind == "hello":
            self.notify(user_id)  # the agent starts afresh: tell it everything

    async def apply(self, user_id: str, message: dict[str, Any]) -> None:
        """The hub's part of a (checked) agent message; on the node handling the user."""
        kind = message.get("type")
        if kind == "hello":
            await self.hub.handle(user_id, rules.AgentStarted(), "agent")
        elif kind == "microphone":
            processes = message["processes"]
            event = rules.MicrophoneReport(tuple(p[:128] for p in processes[:50]))
            await self.hub.handle(user_id, event, "microphone")
        elif kind == "teams_reading" and self.client_side is not None:
            extras = None
            if "status_message" in message:  # agents before 0.15 read no more than the status
                text = message["status_message"]
                text = None if text is None else " ".join(str(text).split())[:500] or None
                extras = teams.TeamsExtras(text, message.get("out_of_office") is True)
            reading = rules.TeamsObserved(
                str(message["availability"]),
                str(message["activity"]),
                None if message.get("sequence") is None else str(message["sequence"]),
                _time(message.get("requested_at")) or self.hub.clock.now(),
                extras,
            )
            self.hub.note_teams_sync(user_id, self.hub.clock.now())
            state = self.hub.user(user_id).state
            mode = self.hub.mode_of(user_id)
            if teams.needs_observation(
                state.teams, reading.availability, reading.activity, mode, extras
            ):
                await self.hub.handle(user_id, reading, "teams")
        elif kind == "teams_written" and self.client_side is not None:
            if "session" in message:
                session = message["session"]
                await self.hub.handle(
                    user_id,
                    rules.TeamsSessionWritten(None if session is None else str(session)),
                    "teams",
                )
            if "preferred_dnd_until" in message:
                until = _time(message["preferred_dnd_until"])
                written = rules.TeamsPreferredWritten(until, bool(message.get("default_expiry")))
                await self.hub.handle(user_id, written, "teams")
            if "message" in message:
                text = message["message"]
                acknowledged = rules.TeamsMessageWritten(
                    None if text is None else str(text), _time(message.get("message_until"))
                )
                await self.hub.handle(user_id, acknowledged, "teams")
            self.hub.note_teams_sync(user_id, self.hub.clock.now())


def _time(value: Any) -> datetime | None:
    if value is None:
        return None
    moment = datetime.fromisoformat(str(value))
    if moment.tzinfo is None:
        raise ValueError("times must carry a time zone")
    return moment
