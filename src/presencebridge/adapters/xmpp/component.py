"""`kind = "xmpp-component"`: the hub as an XEP-0114 external component.

Every hub user appears as `{local}@{component domain}` (a "telephony contact" that
colleagues have in their rosters). The component is the presence authority for these
JIDs, the XMPP server keeps nothing: it answers the probes the server sends when a
watcher comes online, approves subscription requests, and pushes every change to the
watchers it knows.

Watchers are kept in memory only. They are learnt from probes (every watcher's server
sends one when the watcher logs in), subscription requests and any presence a watcher
sends a contact (a shared roster with subscription `both` makes its server do that on
every status change of the watcher). After a restart of the hub, a watcher that stays
logged in is unknown until one of those arrives; the stop before it told them all
`unavailable`, so they see the contact offline, never a stale call (docs/xmpp.md).
Presence only ever goes to JIDs of the allowed domains: a directed presence from
anywhere else teaches the component nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from typing import Any

from slixmpp import ComponentXMPP, Presence
from slixmpp.basexmpp import BaseXMPP

from presencebridge import metrics
from presencebridge.adapters.xmpp.addresses import OFFLINE, Shown, Unshown, local_part, shown
from presencebridge.adapters.xmpp.roster import EjabberdRoster
from presencebridge.adapters.xmpp.settings import ComponentSettings
from presencebridge.adapters.xmpp.stream import Link
from presencebridge.core.ports import ConnectorHealth, OutwardUser

log = logging.getLogger(__name__)

_AVAILABLE_EVENTS = ("presence_available", "presence_chat", "presence_away", "presence_xa")


class XmppComponentOutlet:
    """`core.ports.PresenceOutlet` as an XEP-0114 component."""

    kind = "xmpp-component"

    def __init__(self, settings: ComponentSettings) -> None:
        self.settings = settings
        self.name = settings.name
        self.language = settings.language
        self.domain = settings.domain.lower()
        self.allowed = settings.watcher_domains()
        self._shown: dict[str, Shown] = {}  # local part -> what that user shows
        self._owner: dict[str, str] = {}  # local part -> user id
        self._local: dict[str, str] = {}  # user id -> local part
        self._watchers: dict[str, set[str]] = {}  # local part -> bare JIDs
        self._nick: dict[str, str] = {}  # local part -> display name (roster provisioning)
        self.counts: Counter[str] = Counter()
        self.unshown = Unshown(self.name)
        self.link = Link(
            self.name,
            f"component {self.domain}",
            self._make,
            self._on_up,
            (settings.host, settings.port),
            settings.reconnect_max_seconds,
        )
        self.roster: EjabberdRoster | None = None
        if settings.roster == "ejabberd":
            self.roster = EjabberdRoster(settings, self._contacts, self._learn)
        self._roster_task: asyncio.Task[None] | None = None

    # -- the outlet ----------------------------------------------------------------

    async def start(self) -> None:
        self.link.start()
        if self.roster is not None:
            self._roster_task = asyncio.create_task(self.roster.run(), name="xmpp-roster")
            self.roster.changed()

    async def stop(self) -> None:
        task, self._roster_task = self._roster_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.link.close(before=self._goodbye)

    def health(self) -> ConnectorHealth:
        watchers = sum(len(w) for w in self._watchers.values())
        detail = f"{self.link.detail}; {len(self._shown)} users, {watchers} watchers"
        counts = {
            **self.counts,
            **self.unshown.counts(),
            "watchers": watchers,
            "reconnects": self.link.reconnects,
        }
        if self.roster is not None:
            # The stream is what `up` says; the provisioning's trouble is in the detail.
            detail += f"; {self.roster.detail}"
            counts |= self.roster.counts
        return ConnectorHealth(self.name, self.kind, self.link.up, detail, counts)

    async def publish(self, user: OutwardUser) -> None:
        """Taken into the component's state and pushed to the known watchers; while the
        stream is down the state waits for the next session (pushed then, and probes
        answer it), so a publication is never refused."""
        old = self._local.get(user.user_id)
        new = None if user.publication is None else local_part(user, self.settings.address)
        if old is not None and old != new:
            self._forget(user.user_id, old)
        if user.publication is None:
            self.unshown.clear(user.user_id)
            return
        if new is None:
            self.unshown.mark(user.user_id, "unaddressable", "no valid JID local part")
            return
        owner = self._owner.setdefault(new, user.user_id)
        if owner != user.user_id:
            self.unshown.mark(user.user_id, "address_taken", f"{owner} has {new}@{self.domain}")
            return
        self.unshown.clear(user.user_id)
        self._local[user.user_id] = new
        if self._nick.get(new) != user.display_name:
            self._nick[new] = user.display_name
            if self.roster is not None:
                self.roster.changed()
        found = shown(user.publication)
        if self._shown.get(new) != found:
            self._shown[new] = found
            self._push(new)

    # -- the stream ----------------------------------------------------------------

    def _make(self) -> BaseXMPP:
        secret = self.settings.secret.get_secret_value()
        xmpp = ComponentXMPP(  # type: ignore[no-untyped-call]  # slixmpp leaves it untyped
            self.domain, secret, self.settings.host, self.settings.port
        )
        # slixmpp's own roster logic answers a probe from a JID it has no subscription
        # for with `unsubscribed`, which after a restart would cancel every watcher's
        # subscription; and it keeps a roster node per contact. Ours replaces it.
        builtin: list[tuple[str, Any]] = [
            ("presence_probe", xmpp._handle_probe),
            ("presence_subscribe", xmpp._handle_subscribe),
            ("presence_subscribed", xmpp._handle_subscribed),
            ("presence_unsubscribe", xmpp._handle_unsubscribe),
            ("presence_unsubscribed", xmpp._handle_unsubscribed),
            ("presence_unavailable", xmpp._handle_unavailable),
            ("roster_subscription_request", xmpp._handle_new_subscription),
            *((event, xmpp._handle_available) for event in (*_AVAILABLE_EVENTS, "presence_dnd")),
        ]
        for event, handler in builtin:
            xmpp.del_event_handler(event, handler)
        xmpp.add_event_handler("presence_probe", self._on_probe)
        xmpp.add_event_handler("presence_subscribe", self._on_subscribe)
        xmpp.add_event_handler("presence_unsubscribe", self._on_unsubscribe)
        for event in (*_AVAILABLE_EVENTS, "presence_dnd"):
            xmpp.add_event_handler(event, self._on_watcher_presence)
        return xmpp

    def _on_up(self, xmpp: BaseXMPP) -> None:
        """A new session: the watchers still known hear the current state (the stream
        may have been down through changes)."""
        log.info("%s: component %s connected", self.name, self.domain)
        for local, watchers in self._watchers.items():
            for watcher in watchers:
                self._send(xmpp, local, watcher)

    def _send(self, xmpp: BaseXMPP, local: str, to: str, what: Shown | None = None) -> None:
        found = what or self._shown.get(local, OFFLINE)
        xmpp.send_presence(
            pfrom=f"{local}@{self.domain}",
            pto=to,
            pshow=found.show,
            pstatus=found.status or None,
            ptype="unavailable" if found.type == "unavailable" else None,
        )

    def _push(self, local: str) -> None:
        xmpp = self.link.xmpp
        if xmpp is None:
            return
        for watcher in self._watchers.get(local, ()):
            self._send(xmpp, local, watcher)
            self.counts["pushed"] += 1

    def _forget(self, user_id: str, local: str) -> None:
        """The user left, or their address changed: the old JID goes offline."""
        xmpp = self.link.xmpp
        if xmpp is not None:
            for watcher in self._watchers.get(local, ()):
                self._send(xmpp, local, watcher, OFFLINE)
        self._shown.pop(local, None)
        self._watchers.pop(local, None)
        self._nick.pop(local, None)
        if self.roster is not None:
            self.roster.changed()
        self._local.pop(user_id, None)
        if self._owner.get(local) == user_id:
            del self._owner[local]

    def _goodbye(self, xmpp: BaseXMPP) -> None:
        """At stop: every watcher sees every contact offline rather than a state that
        nobody updates any more."""
        for local, watchers in self._watchers.items():
            for watcher in watchers:
                self._send(xmpp, local, watcher, OFFLINE)

    def _contacts(self) -> dict[str, str]:
        return {local: self._nick.get(local, local) for local in self._owner}

    def _learn(self, local: str, watcher: str) -> None:
        """A user with the contact in their roster (provisioning read it): a watcher."""
        if local not in self._owner:
            return
        known = self._watchers.setdefault(local, set())
        if watcher not in known:
            known.add(watcher)
            xmpp = self.link.xmpp
            if xmpp is not None:
                self._send(xmpp, local, watcher)

    # -- what watchers send ----------------------------------------------------------

    def _addressed(self, pres: Presence, event: str) -> tuple[str, str] | None:
        """(local part, watcher's bare JID) of a presence to one of our JIDs from an
        allowed domain, else None (counted)."""
        metrics.CONNECTOR_MESSAGES.labels(self.name, event).inc()
        to, sender = pres["to"], pres["from"]
        local = str(to.user).lower()
        if not local or str(to.domain).lower() != self.domain:
            return None
        if str(sender.domain).lower() not in self.allowed:
            self.counts["not_allowed"] += 1
            return None
        return local, str(sender.bare).lower()

    def _on_probe(self, pres: Presence) -> None:
        found = self._addressed(pres, "probe")
        xmpp = self.link.xmpp
        if found is None or xmpp is None:
            return
        local, watcher = found
        self._watchers.setdefault(local, set()).add(watcher)
        self._send(xmpp, local, watcher)
        self.counts["probes_answered"] += 1

    def _on_subscribe(self, pres: Presence) -> None:
        found = self._addressed(pres, "subscribe")
        xmpp = self.link.xmpp
        if found is None or xmpp is None:
            return
        local, watcher = found
        me = f"{local}@{self.domain}"
        if not self.settings.approve_subscriptions or local not in self._owner:
            xmpp.send_presence(pfrom=me, pto=watcher, ptype="unsubscribed")
            self.counts["subscriptions_refused"] += 1
            return
        xmpp.send_presence(pfrom=me, pto=watcher, ptype="subscribed")
        self._watchers.setdefault(local, set()).add(watcher)
        self._send(xmpp, local, watcher)
        self.counts["subscriptions_approved"] += 1

    def _on_unsubscribe(self, pres: Presence) -> None:
        found = self._addressed(pres, "unsubscribe")
        xmpp = self.link.xmpp
        if found is None or xmpp is None:
            return
        local, watcher = found
        xmpp.send_presence(pfrom=f"{local}@{self.domain}", pto=watcher, ptype="unsubscribed")
        self._watchers.get(local, set()).discard(watcher)

    def _on_watcher_presence(self, pres: Presence) -> None:
        """A watcher's own presence (shared rosters with `both`): it is online and
        subscribed, so it learns the state it may have missed."""
        found = self._addressed(pres, "presence")
        xmpp = self.link.xmpp
        if found is None or xmpp is None:
            return
        local, watcher = found
        if local not in self._owner:
            return  # no such user: nothing to keep for it
        known = self._watchers.setdefault(local, set())
        if watcher not in known:
            known.add(watcher)
            self._send(xmpp, local, watcher)
