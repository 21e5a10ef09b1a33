"""`kind = "xmpp-account"`: the hub logs in as each user, with a resource of its own.

Each user's presence is then the server's own business: it answers probes, keeps the
subscriptions, and the user's contacts see the hub's resource beside the user's own
clients. The price is one client stream per user: one TCP connection and one SASL
login each (SCRAM makes the server hash the password every time), and the server
sends each stream the presence of all of that user's contacts. That is fine for a
few hundred users and wasteful beyond, hence `max_accounts` (500 by default, 5,000
at most) and a login rate; docs/xmpp.md recommends the component for large sites.

The password: the hub has one secret, used as every account's password. That suits
servers whose authentication can accept a service secret for any account (ejabberd
with `auth_method: [internal, external]` and a small external script, Prosody with an
auth module) and sites where these accounts exist for the hub only. ejabberd's admin
API was tried instead and does not do (shared/interop/README.md): `send_stanza` is a
directed presence that no later probe is answered from, and `set_presence` needs a
session of that user to exist already.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from dataclasses import dataclass
from typing import Any

from slixmpp import ClientXMPP
from slixmpp.basexmpp import BaseXMPP

from presencebridge.adapters.xmpp.addresses import Shown, Unshown, bare_jid, shown
from presencebridge.adapters.xmpp.settings import AccountSettings
from presencebridge.adapters.xmpp.stream import Link
from presencebridge.core.ports import ConnectorHealth, OutwardUser


class _Session(ClientXMPP):
    """A client stream that only sends: the presence of the user's contacts, which the
    server sends every available resource, is dropped unread. slixmpp would otherwise
    keep a roster node and item per contact and session, n² objects for a shared
    roster of n users (about 1.4 MB per stream measured at 300 users)."""

    def _handle_presence(self, presence: Any) -> None:
        return


class LoginGate:
    """Spaces logins out to `rate` per second over all accounts: after a server
    restart every stream comes back, and a burst of SASL logins is what servers
    throttle (ejabberd's shapers) or choke on."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate
        self._next = 0.0

    async def __call__(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        slot = max(now, self._next)
        self._next = slot + self.interval
        if slot > now:
            await asyncio.sleep(slot - now)


@dataclass
class _Account:
    jid: str
    link: Link
    current: Shown
    sent: Shown | None = None  # what the live session last sent


class XmppAccountOutlet:
    """`core.ports.PresenceOutlet` through each user's own account."""

    kind = "xmpp-account"

    def __init__(self, settings: AccountSettings) -> None:
        self.settings = settings
        self.name = settings.name
        self.language = settings.language
        self._accounts: dict[str, _Account] = {}  # user id -> account
        self._owner: dict[str, str] = {}  # bare JID -> user id
        self.unshown = Unshown(self.name)
        # One TLS context for all streams: slixmpp makes one per object otherwise, with
        # the system's CA store loaded into each (about 0.9 MB a stream). With `ca_file`
        # only that CA is trusted.
        cafile = None if settings.ca_file is None else str(settings.ca_file)
        self._tls = ssl.create_default_context(cafile=cafile)
        self._gate = LoginGate(settings.logins_per_second)

    async def start(self) -> None:
        """Nothing yet: each account's stream starts with the user's first publication."""

    async def stop(self) -> None:
        """Every stream closed politely: the server tells the contacts that the hub's
        resource went offline, and the user's own clients stay as they are."""
        accounts = list(self._accounts.values())
        self._accounts.clear()
        self._owner.clear()
        await asyncio.gather(*(a.link.close() for a in accounts))

    def health(self) -> ConnectorHealth:
        online = sum(1 for a in self._accounts.values() if a.link.up)
        refused = sum(1 for a in self._accounts.values() if a.link.refused)
        reconnects = sum(a.link.reconnects for a in self._accounts.values())
        parts = [f"{online} of {len(self._accounts)} accounts online"]
        if refused:
            parts.append(f"{refused} refused the login")
        unshown = self.unshown.counts()
        over_cap = unshown.get("over_cap", 0)
        if over_cap:
            parts.append(f"{over_cap} not served: max_accounts is {self.settings.max_accounts}")
        down = [a for a in self._accounts.values() if not a.link.up]
        if down:
            parts.append(f"e.g. {down[0].jid}: {down[0].link.detail}")
        counts = {
            "over_cap": 0,
            **unshown,
            "accounts": len(self._accounts),
            "online": online,
            "refused": refused,
            "reconnects": reconnects,
        }
        up = not down and not over_cap
        return ConnectorHealth(self.name, self.kind, up, "; ".join(parts), counts)

    async def publish(self, user: OutwardUser) -> None:
        """Taken as the account's wanted state; its stream sends it now if up, else
        as soon as it (re)connects. A publication is never refused."""
        s = self.settings
        jid = None if user.publication is None else bare_jid(user, s.address, s.domain)
        account = self._accounts.get(user.user_id)
        if account is not None and account.jid != jid:
            await self._drop(user.user_id)
            account = None
        if user.publication is None:
            self.unshown.clear(user.user_id)
            return
        if jid is None:
            self.unshown.mark(user.user_id, "unaddressable", "no valid JID (no e-mail?)")
            return
        found = shown(user.publication)
        if account is None:
            account = self._open(user.user_id, jid, found)
            if account is None:
                return
        account.current = found
        self._send(account)

    def _open(self, user_id: str, jid: str, found: Shown) -> _Account | None:
        owner = self._owner.setdefault(jid, user_id)
        if owner != user_id:
            self.unshown.mark(user_id, "address_taken", f"{owner} has {jid}")
            return None
        if len(self._accounts) >= self.settings.max_accounts:
            del self._owner[jid]
            limit = self.settings.max_accounts
            self.unshown.mark(user_id, "over_cap", f"max_accounts ({limit}) reached")
            return None
        self.unshown.clear(user_id)
        account: _Account

        def on_up(xmpp: BaseXMPP) -> None:
            account.sent = None
            self._send(account)

        full = f"{jid}/{self.settings.resource}"
        link = Link(
            self.name,
            full,
            lambda: self._make(full),
            on_up,
            (self.settings.host, self.settings.port),
            self.settings.reconnect_max_seconds,
            self._gate,
            logging.INFO,
        )
        account = _Account(jid, link, found)
        self._accounts[user_id] = account
        link.start()
        return account

    async def _drop(self, user_id: str) -> None:
        account = self._accounts.pop(user_id, None)
        if account is not None:
            self._owner.pop(account.jid, None)
            await account.link.close()

    def _make(self, full: str) -> BaseXMPP:
        s = self.settings
        xmpp = _Session(full, s.secret.get_secret_value(), ssl_context=self._tls)
        xmpp.enable_starttls = s.tls == "starttls"
        xmpp.enable_direct_tls = s.tls == "direct"
        xmpp.enable_plaintext = s.tls == "none"
        if s.tls == "none":
            # Loopback tests only (the settings say so): SCRAM still keeps the password
            # off the wire; PLAIN stays refused without TLS.
            xmpp.plugin["feature_mechanisms"].unencrypted_scram = True
        # Subscription requests are the user's to answer, never the hub's.
        xmpp.auto_authorize = None
        xmpp.auto_subscribe = False
        return xmpp

    def _send(self, account: _Account) -> None:
        xmpp = account.link.xmpp
        found = account.current
        if xmpp is None or account.sent == found:
            return
        xmpp.send_presence(
            pshow=found.show,
            pstatus=found.status or None,
            ppriority=self.settings.priority,
            ptype="unavailable" if found.type == "unavailable" else None,
        )
        account.sent = found
