"""A user's Teams sync as the console says it: the last sync, why it does not run, what fails.

Shared by the user page's sync section and the sync page's list of users that need
attention. The facts come from the service layer (`service.sync_health.not_synced`,
the writer's failing users, the hub's last sync per user); this module only words them.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from presencebridge.service import sync_health
from presencebridge.web.labels import N_
from presencebridge.web.page import Page

# The reasons a user is not synced, in the reader's language.
NOT_SYNCED: dict[str, str] = {
    sync_health.NO_TEAMS_ID: N_("No Teams user ID: the user is not linked to a Teams account."),
    sync_health.SERVER_SYNC_OFF: N_(
        "This server has no Teams sync (no app registration for Microsoft Graph)."
    ),
    sync_health.GROUP_MODE_OFF: N_("The group's Teams sync mode is off."),
    sync_health.OWN_MODE_OFF: N_("The user's own Teams sync mode is off."),
    sync_health.AGENT_NOT_CONNECTED: N_(
        "Client-side Teams sync: the user's desktop agent is not connected."
    ),
}
# Short forms for the counts on the sync page.
NOT_SYNCED_SHORT: dict[str, str] = {
    sync_health.NO_TEAMS_ID: N_("no Teams user ID"),
    sync_health.SERVER_SYNC_OFF: N_("no Teams sync on this server"),
    sync_health.GROUP_MODE_OFF: N_("group's mode off"),
    sync_health.OWN_MODE_OFF: N_("own mode off"),
    sync_health.AGENT_NOT_CONNECTED: N_("agent not connected"),
}


@dataclass(frozen=True, slots=True)
class Sides:
    """What this node can say about syncing: its own Graph sync, the agents'."""

    teams_sync: Any  # bootstrap.RunningTeamsSync | None (the web layer does not import it)
    agents: Any  # service.agents.AgentRelay | None

    @classmethod
    def of(cls, page: Page) -> Sides:
        state = page.request.app.state
        return cls(getattr(state, "teams_sync", None), getattr(state, "agents", None))

    @property
    def client_side(self) -> bool:
        return self.agents is not None and self.agents.client_side is not None

    def reason(self, page: Page, user_id: str) -> str | None:
        connected = self.agents is not None and user_id in self.agents.connections
        return sync_health.not_synced(
            page.hub, user_id, self.teams_sync is not None, self.client_side, connected
        )

    def failure(self, user_id: str) -> Any:
        """The writer's `WriteFailure` of the user, if their writes fail."""
        if self.teams_sync is None:
            return None
        return self.teams_sync.writer.failing.get(user_id)


def user_sync(page: Page, user_id: str) -> dict[str, Any]:
    """The user page's sync section: last sync, and why not / what fails / held."""
    sides = Sides.of(page)
    view = page.hub.user(user_id)
    reason = sides.reason(page, user_id)
    failure = sides.failure(user_id) if reason is None else None
    return {
        "last_sync": page.hub.teams_last_sync(user_id),
        "reason": None if reason is None else page._(NOT_SYNCED[reason]),
        "failure": None if failure is None else _failure(page, failure),
        "held": reason is None and view.presence.teams.held_by_user,
    }


def _failure(page: Page, failure: Any) -> dict[str, Any]:
    return {
        "since": datetime.fromtimestamp(failure.since).astimezone(),
        "count": failure.failures,
        "error": failure.error,
        "retry_in": max(0.0, failure.retry_at - time.time()),
    }


def _stale_after(sides: Sides, synced: int) -> float | None:
    """None when this server does not read Graph itself."""
    sync = sides.teams_sync
    if sync is None:
        return None
    notify = None if sync.notify is None else float(sync.settings.notify_poll_interval)
    return sync_health.stale_after(float(sync.poller.interval(synced)), notify)


def attention(page: Page, shown: int = 50) -> dict[str, Any]:
    """The sync page: users whose sync fails or is held by the user (at most `shown`),
    and how many users are not synced, by reason."""
    sides = Sides.of(page)
    hub = page.hub
    rows: list[dict[str, Any]] = []
    not_synced: Counter[str] = Counter()
    name: Callable[[str], str] = lambda uid: hub.user(uid).state.user.display_name  # noqa: E731
    stale_after = _stale_after(sides, len(hub.synced_users()))
    now = hub.clock.now()
    running_for = 0.0 if sides.teams_sync is None else time.time() - sides.teams_sync.health.started
    for user_id in hub.user_ids():
        reason = sides.reason(page, user_id)
        if reason is not None:
            not_synced[reason] += 1
            continue
        failure = sides.failure(user_id)
        if failure is not None:
            rows.append(
                {
                    "user": user_id,
                    "name": name(user_id),
                    "kind": "failing",
                    "failure": _failure(page, failure),
                    "since": datetime.fromtimestamp(failure.since).astimezone(),
                }
            )
        elif hub.user(user_id).presence.teams.held_by_user:
            rows.append({"user": user_id, "name": name(user_id), "kind": "held", "since": None})
        elif stale_after is not None and hub.owns(user_id):
            last = hub.teams_last_sync(user_id)
            if sync_health.is_stale(last, now, running_for, stale_after):
                age = None if last is None else (now - last).total_seconds()
                row = {"user": user_id, "name": name(user_id), "kind": "stale", "since": last}
                rows.append({**row, "age": age})
    order = {"failing": 0, "stale": 1, "held": 2}
    rows.sort(key=lambda r: (order[r["kind"]], r["name"].lower(), r["user"]))
    return {
        "rows": rows[:shown],
        "more": max(0, len(rows) - shown),
        "failing": sum(1 for r in rows if r["kind"] != "held"),
        "held": sum(1 for r in rows if r["kind"] == "held"),
        "not_synced": [
            (page._(NOT_SYNCED_SHORT[code]), count) for code, count in sorted(not_synced.items())
        ],
    }
