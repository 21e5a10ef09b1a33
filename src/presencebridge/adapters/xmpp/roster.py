"""Optional roster provisioning for the component through ejabberd's admin API.

With `roster = "ejabberd"`, every registered user of `roster_host` gets every
published user's telephony contact (`alice@presence.example.com`, subscription `both`,
in the group `roster_group`) through `mod_http_api` (`registered_users`, `get_roster`,
`add_rosteritem`, `delete_rosteritem`), and loses the contacts of users who left.
Shared roster groups would be one call instead of n², but ejabberd 23.01 does not keep
a component's JIDs as members (docs/xmpp.md), hence the pairs and `roster_max_users`.

The rosters read are also the component's most reliable source of watchers: every
user with the contact in their roster is one, so a restarted hub pushes the current
state to everyone at its first run instead of waiting for their next login.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from presencebridge.adapters.xmpp.settings import ComponentSettings

log = logging.getLogger(__name__)

# Several changes in a row (the start, a directory sync) make one run.
SETTLE_SECONDS = 2.0


class RosterApiError(Exception):
    """The admin API did not do what was asked."""


class EjabberdRoster:
    """Keeps the rosters of `roster_host`'s users in step with the published users.

    `contacts()` gives the wanted contacts (local part -> nick); `learn(local, watcher)`
    is told of every user who has a contact, so the component pushes to them.
    """

    def __init__(
        self,
        settings: ComponentSettings,
        contacts: Callable[[], Mapping[str, str]],
        learn: Callable[[str, str], None],
    ) -> None:
        assert settings.roster_api is not None
        self.url = settings.roster_api.rstrip("/")
        self.host = settings.roster_host or next(iter(settings.watcher_domains()))
        self.domain = settings.domain.lower()
        self.group = settings.roster_group
        self.max_users = settings.roster_max_users
        self.interval = settings.roster_interval_minutes * 60
        self.contacts = contacts
        self.learn = learn
        self.detail = "roster: not run yet"
        self.ok = True
        self.counts = {"roster_added": 0, "roster_removed": 0, "roster_runs": 0}
        self._wake = asyncio.Event()

    def changed(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        """Runs after each change (settled) and every `roster_interval_minutes`."""
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), self.interval)
                await asyncio.sleep(SETTLE_SECONDS)
            except TimeoutError:
                pass
            self._wake.clear()
            try:
                await self.sync()
            except (RosterApiError, httpx.HTTPError) as error:
                self.ok = False
                self.detail = f"roster: {error}"
                log.warning("xmpp roster provisioning at %s: %s", self.url, error)

    async def sync(self) -> None:
        async with httpx.AsyncClient(timeout=30) as client:
            users = await self._call(client, "registered_users", {"host": self.host})
            if not isinstance(users, list):
                raise RosterApiError("registered_users: unexpected answer")
            if len(users) > self.max_users:
                self.ok = False
                self.detail = (
                    f"roster: {len(users)} users at {self.host}, more than roster_max_users "
                    f"({self.max_users}); not provisioned"
                )
                return
            wanted = dict(self.contacts())
            for user in users:
                await self._one(client, str(user), wanted)
        self.ok = True
        self.counts["roster_runs"] += 1
        self.detail = f"roster: {len(users)} users at {self.host} have {len(wanted)} contacts"

    async def _one(self, client: httpx.AsyncClient, user: str, wanted: Mapping[str, str]) -> None:
        """One user's roster: the missing contacts added, those of users gone removed."""
        items = await self._call(client, "get_roster", {"user": user, "host": self.host})
        have = set()
        for item in items if isinstance(items, list) else ():
            local, _, domain = str(item.get("jid", "")).partition("@")
            groups = re.split(r"[;,]", str(item.get("group", "")))
            if domain.lower() == self.domain and self.group in groups:
                have.add(local.lower())
        watcher = f"{user}@{self.host}"
        for local, nick in wanted.items():
            if local == user:
                continue  # nobody needs their own telephony contact
            if local not in have:
                body = {"localuser": user, "localhost": self.host, "user": local,
                        "host": self.domain, "nick": nick, "group": self.group,
                        "subs": "both"}  # fmt: skip
                await self._call(client, "add_rosteritem", body)
                self.counts["roster_added"] += 1
            self.learn(local, watcher)
        for local in have - set(wanted):
            body = {"localuser": user, "localserver": self.host, "user": local,
                    "server": self.domain}  # fmt: skip
            await self._call(client, "delete_rosteritem", body)
            self.counts["roster_removed"] += 1

    async def _call(self, client: httpx.AsyncClient, command: str, body: dict[str, Any]) -> Any:
        response = await client.post(f"{self.url}/{command}", json=body)
        if response.status_code != 200:
            raise RosterApiError(f"{command}: HTTP {response.status_code}")
        result = response.json()
        if command in ("add_rosteritem", "delete_rosteritem") and result != 0:
            raise RosterApiError(f"{command}: refused ({result!r})")
        return result
