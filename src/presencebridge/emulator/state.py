"""The emulator's whole state and the bookkeeping around it.

Everything runs on one asyncio loop, so state changes need no locks: a handler
reads and writes without awaiting in between. Presence changes, whether caused
by a request or by time (expiry, fade, a preferred presence running out), go
through `touch`, which bumps the sequence number and queues notifications.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from presencebridge.emulator.budget import Budget, Faults
from presencebridge.emulator.clock import EmulatorClock
from presencebridge.emulator.directory import Directory
from presencebridge.emulator.identity import IdentityProvider, TokenSigner
from presencebridge.emulator.model import Sequencer, UserPresence, graph_time, presence_json
from presencebridge.emulator.signin import Profile
from presencebridge.emulator.subscriptions import Delivery, Subscription

log = logging.getLogger(__name__)

TICK_SECONDS = 1.0
DIRECTORY_UNITS = 3500
DEFAULT_DOMAIN = "presencebridge.test"
# Entra object ids are GUIDs; tests and demos like readable ids, so any such token.
USER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
WRITE_ACTIONS = (
    "setPresence",
    "clearPresence",
    "setUserPreferredPresence",
    "clearUserPreferredPresence",
    "setStatusMessage",
    "setManualLocation",
    "setAutomaticLocation",
    "clearAutomaticLocation",
    "clearLocation",
)


@dataclass
class EmulatedUser:
    id: str
    upn: str
    federated: bool
    presence: UserPresence
    writes: Counter[str] = field(default_factory=Counter)

    def describe(self, now: datetime) -> dict[str, Any]:
        return {
            "id": self.id,
            "upn": self.upn,
            "federated": self.federated,
            **self.presence.describe(now),
            "presence": presence_json(self.id, self.presence.shown, self.presence.sequence),
        }


@dataclass
class Stats:
    requests: Counter[str] = field(default_factory=Counter)
    statuses: Counter[str] = field(default_factory=Counter)
    throttled: int = 0
    injected: Counter[str] = field(default_factory=Counter)
    subscriptions: Counter[str] = field(default_factory=Counter)


class Emulator:
    """Users and their presence, the identity provider, budget, faults, subscriptions."""

    def __init__(
        self,
        signer: TokenSigner,
        *,
        strict: bool = False,
        clock: EmulatorClock | None = None,
        sequencer: Callable[[], str] | None = None,
    ) -> None:
        self.clock = clock or EmulatorClock()
        self.strict = strict
        self.sequencer = sequencer or Sequencer()
        self.identity = IdentityProvider(signer, strict=strict)
        self.identity.profile_of = self.profile
        self.budget = Budget()
        self.directory = Directory()
        # Identity and access: resource units per app and tenant in 10 s (a small tenant).
        self.directory_budget = Budget(DIRECTORY_UNITS, 10.0)
        self.faults = Faults()
        self.stats = Stats()
        self.users: dict[str, EmulatedUser] = {}
        self._by_upn: dict[str, str] = {}
        self.subscriptions: dict[str, Subscription] = {}
        self._watchers: dict[str, set[str]] = {}
        # Each user's next deadline; stale heap entries are skipped when popped.
        self._deadlines: list[tuple[datetime, str]] = []
        self._scheduled: dict[str, datetime] = {}
        self.delivery = Delivery(self._validation_tokens, self._delivering)
        self._ticker: asyncio.Task[None] | None = None

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        await self.delivery.start()
        self._ticker = asyncio.create_task(self._tick_forever())

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            await asyncio.gather(self._ticker, return_exceptions=True)
        await self.delivery.stop()

    async def _tick_forever(self) -> None:
        while True:
            await asyncio.sleep(TICK_SECONDS)
            try:
                self.tick()
            except Exception:  # the ticker must survive any one bad tick
                log.exception("emulator tick failed")

    def now(self) -> datetime:
        return self.clock.now()

    def reset(self) -> None:
        """Forget users, subscriptions, grants, apps, stats, budget and faults.

        The clock and the signing key stay: tokens already issued remain valid.
        """
        self.delivery.cancel_all()
        self.users.clear()
        self._by_upn.clear()
        self.subscriptions.clear()
        self._watchers.clear()
        self._deadlines.clear()
        self._scheduled.clear()
        self.identity.reset()
        self.budget.reset()
        self.directory = Directory()
        self.directory_budget.reset()
        self.faults = Faults()
        self.stats = Stats()
        self.delivery.counts = type(self.delivery.counts)()

    # -- users ---------------------------------------------------------------------------

    def find_user(self, key: str) -> EmulatedUser | None:
        """A user by object id or by user principal name."""
        user = self.users.get(key)
        if user is None and (by_upn := self._by_upn.get(key.lower())) is not None:
            user = self.users.get(by_upn)
        return user

    def create_user(
        self, user_id: str, upn: str | None, federated: bool
    ) -> tuple[EmulatedUser, bool]:
        """Idempotent: an existing user is returned as it is (created False)."""
        if not USER_ID.fullmatch(user_id):
            raise ValueError(f"user id {user_id!r} is not letters, digits, '.', '_' or '-'")
        existing = self.users.get(user_id)
        if existing is not None:
            return existing, False
        upn = upn or f"{user_id}@{DEFAULT_DOMAIN}"
        taken = self._by_upn.get(upn.lower())
        if taken is not None:
            raise ValueError(f"upn {upn!r} belongs to user {taken!r}")
        user = EmulatedUser(user_id, upn, federated, UserPresence(self.now(), self.sequencer))
        self.users[user_id] = user
        self._by_upn[upn.lower()] = user_id
        return user, True

    def profile(self, key: str) -> Profile | None:
        """Who signs in as `key` (object id or UPN): a Teams user, a directory user or both
        under one id; the directory gives name, mail, groups and whether sign-in is allowed."""
        entry = self.directory.find(key)
        user = self.users.get(entry.id) if entry is not None else self.find_user(key)
        if entry is None and user is not None:
            entry = self.directory.users.get(user.id)
        if entry is not None:
            groups = sorted(g.id for g in self.directory.groups.values() if entry.id in g.members)
            return Profile(entry.id, entry.userPrincipalName, entry.displayName, entry.mail,
                           tuple(groups), entry.accountEnabled)  # fmt: skip
        if user is None:
            return None
        return Profile(user.id, user.upn, user.upn.split("@")[0], None, ())

    def domain_federated(self, domain: str) -> bool | None:
        """Home-realm discovery: None if no user has this domain."""
        flags = {u.federated for u in self.users.values() if u.upn.lower().endswith("@" + domain)}
        return (True in flags) if flags else None

    def touch(self, user: EmulatedUser) -> None:
        """Apply what time did to `user`; notify watchers if what readers see changed."""
        now = self.now()
        if user.presence.refresh(now):
            self._notify(user)
        self._schedule(user, now)

    def update(self, user: EmulatedUser, change: Callable[[UserPresence, datetime], None]) -> None:
        """Run a write against `user`'s presence; exceptions from `change` leave it as it was."""
        self.touch(user)  # time's own changes first, so watchers see them as their own step
        change(user.presence, self.now())
        self.touch(user)

    def read(self, user: EmulatedUser, own: bool = True) -> dict[str, Any]:
        """The presence resource; `own`: the reader is the user themself."""
        self.touch(user)
        return presence_json(user.id, user.presence.shown, user.presence.sequence, own)

    def _schedule(self, user: EmulatedUser, now: datetime) -> None:
        deadline = user.presence.next_deadline(now)
        if deadline is None:
            return
        current = self._scheduled.get(user.id)
        if current is None or current <= now or deadline < current:
            self._scheduled[user.id] = deadline
            heapq.heappush(self._deadlines, (deadline, user.id))

    def tick(self) -> None:
        """Apply expiries that are due: sessions, fades, preferences, subscriptions."""
        now = self.now()
        while self._deadlines and self._deadlines[0][0] <= now:
            deadline, user_id = heapq.heappop(self._deadlines)
            if self._scheduled.get(user_id) != deadline:
                continue
            del self._scheduled[user_id]
            user = self.users.get(user_id)
            if user is not None:
                self.touch(user)
        for subscription in list(self.subscriptions.values()):
            if subscription.expires_at <= now:
                self.remove_subscription(subscription.id)
                self.stats.subscriptions["expired"] += 1

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self.tick()

    # -- subscriptions -------------------------------------------------------------------

    def live_subscription(self, subscription_id: str) -> Subscription | None:
        subscription = self.subscriptions.get(subscription_id)
        if subscription is not None and subscription.expires_at <= self.now():
            self.remove_subscription(subscription_id)
            self.stats.subscriptions["expired"] += 1
            return None
        return subscription

    def add_subscription(self, subscription: Subscription) -> None:
        self.subscriptions[subscription.id] = subscription
        for user_id in subscription.user_ids:
            self._watchers.setdefault(user_id, set()).add(subscription.id)
        self.stats.subscriptions["created"] += 1

    def remove_subscription(self, subscription_id: str) -> Subscription | None:
        subscription = self.subscriptions.pop(subscription_id, None)
        if subscription is not None:
            for user_id in subscription.user_ids:
                watchers = self._watchers.get(user_id)
                if watchers is not None:
                    watchers.discard(subscription_id)
                    if not watchers:
                        del self._watchers[user_id]
        return subscription

    def owned_subscription(self, app_id: str, creator_id: str) -> Subscription | None:
        for subscription in list(self.subscriptions.values()):
            if (
                subscription.app_id == app_id
                and subscription.creator_id == creator_id
                and self.live_subscription(subscription.id) is not None
            ):
                return subscription
        return None

    def lifecycle(self, subscription: Subscription, event: str) -> bool:
        """Send a lifecycle notification; False if the subscription has no lifecycle URL."""
        if event == "reauthorizationRequired":
            subscription.reauthorization_required = True
        if subscription.lifecycle_url is None:
            return False
        self.delivery.post(subscription, subscription.lifecycle_item(event), lifecycle=True)
        return True

    def _delivering(self, subscription: Subscription) -> bool:
        return (
            self.subscriptions.get(subscription.id) is subscription
            and not subscription.dropped
            and subscription.expires_at > self.now()
        )

    def _validation_tokens(self, subscription: Subscription) -> list[str]:
        # Dated by wall time, not the emulator clock: the receiver checks them against its
        # own clock, which moving the emulator's does not move.
        return [
            self.identity.validation_token(
                subscription.issuer, subscription.app_id, subscription.tenant_id, datetime.now(UTC)
            )
        ]

    def _notify(self, user: EmulatedUser) -> None:
        watchers = self._watchers.get(user.id)
        if not watchers:
            return
        now = self.now()
        for subscription_id in sorted(watchers):
            subscription = self.subscriptions[subscription_id]
            # Only the user themself sees the status message's expiry and publication.
            own = subscription.creator_id == user.id
            presence = presence_json(user.id, user.presence.shown, user.presence.sequence, own)
            if subscription.expires_at <= now:
                continue
            if subscription.dropped:
                self.delivery.counts.suppressed += 1
                continue
            self.delivery.post(subscription, subscription.change_item(presence), lifecycle=False)

    # -- statistics ----------------------------------------------------------------------

    def stats_json(self) -> dict[str, Any]:
        now = self.now()
        live = [s for s in self.subscriptions.values() if s.expires_at > now]
        return {
            "requests": dict(sorted(self.stats.requests.items())),
            "responses": dict(sorted(self.stats.statuses.items())),
            "users": {
                user.id: {action: user.writes[action] for action in WRITE_ACTIONS}
                for user in self.users.values()
            },
            "user_count": len(self.users),
            "throttled": self.stats.throttled,
            "injected": {
                "429": self.stats.injected["429"],
                "503": self.stats.injected["503"],
            },
            "budget": self.budget.to_json(now.timestamp()),
            "faults": self.faults.to_json(),
            "notifications": self.delivery.counts.to_json(),
            "subscriptions": {
                "active": len(live),
                "dropped": sum(1 for s in live if s.dropped),
                "watched_users": len(self._watchers),
                "created": self.stats.subscriptions["created"],
                "renewed": self.stats.subscriptions["renewed"],
                "deleted": self.stats.subscriptions["deleted"],
                "expired": self.stats.subscriptions["expired"],
                "removed": self.stats.subscriptions["removed"],
            },
            "tokens": self.identity.issued.to_json(),
            "authorization_codes": {
                "issued": self.identity.web.counts.issued,
                "redeemed": self.identity.web.counts.redeemed,
                "refused": self.identity.web.counts.refused,
                "sessions": len(self.identity.web.sessions),
            },
            "clock": {"now": graph_time(now), "offset_seconds": self.clock.offset_seconds},
        }
