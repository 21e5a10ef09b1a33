"""Putting the Teams sync together from the settings: Graph client, writer, readers.

Poll mode needs only the app registration. Notify mode adds service accounts,
their subscriptions and the webhook's keys, with a slow poll underneath.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from urllib.parse import quote

from presencebridge.adapters.graph.auth import AppTokenProvider, authority_url
from presencebridge.adapters.graph.budget import RequestBudget
from presencebridge.adapters.graph.client import GraphClient
from presencebridge.adapters.graph.notifications import NotificationKeys, ValidationTokenVerifier
from presencebridge.adapters.graph.subscriptions import ServiceAccounts, SubscriptionManager
from presencebridge.api.webhook import NotifyContext
from presencebridge.config import Settings
from presencebridge.service.agents import ClientSideTeams
from presencebridge.service.hub import Hub
from presencebridge.service.teams_sync import TeamsPoller, TeamsWriter

log = logging.getLogger(__name__)


@dataclass
class RunningTeamsSync:
    settings: Settings
    client: GraphClient
    budget: RequestBudget
    writer: TeamsWriter
    poller: TeamsPoller
    accounts: ServiceAccounts | None = None
    notify: NotifyContext | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def set_share(self, share: float) -> None:
        """Several nodes: spend only this node's share of the tenant's Graph budget."""
        self.budget.set_share(share)
        self.poller.reads_per_second = self.budget.reads_per_second()

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.client.aclose()


def client_side_teams(settings: Settings) -> ClientSideTeams | None:
    """An app registration without a secret: the agents sync their users (SPEC §5)."""
    if settings.client_secret is None and settings.tenant_id and settings.client_id:
        return ClientSideTeams(
            settings.authority, settings.tenant_id, settings.client_id, settings.graph_url
        )
    return None


def notification_url(settings: Settings) -> str:
    """Where Graph posts; with several nodes it names the node holding the keys."""
    assert settings.public_url is not None
    url = settings.public_url.rstrip("/") + "/graph/notifications"
    return url + f"?node={quote(settings.node_name())}" if settings.clustered else url


def start_teams_sync(settings: Settings, hub: Hub) -> RunningTeamsSync | None:
    """Connect the hub to Graph when an app registration is configured."""
    if not (settings.tenant_id and settings.client_id and settings.client_secret):
        log.info("Teams sync off: PRESENCEBRIDGE_TENANT_ID, _CLIENT_ID and _CLIENT_SECRET not set")
        return None
    tokens = AppTokenProvider(
        settings.authority,
        settings.tenant_id,
        settings.client_id,
        settings.client_secret.get_secret_value(),
        settings.ca_bundle,
    )
    budget = RequestBudget(
        settings.graph_budget, settings.graph_budget_window, settings.graph_read_share
    )
    client = GraphClient(settings.graph_url, tokens, budget, settings.client_id, settings.ca_bundle)
    writer = TeamsWriter(hub, client)
    hub.attach_teams_writer(writer)
    sync = RunningTeamsSync(settings, client, budget, writer, TeamsPoller(hub, client, 1.0))
    manager: SubscriptionManager | None = None
    if settings.read_mode == "notify":
        if not settings.public_url:
            raise ValueError("read mode notify needs PRESENCEBRIDGE_PUBLIC_URL (the webhook's URL)")
        secret = None if settings.secret_key is None else settings.secret_key.get_secret_value()
        accounts = ServiceAccounts(
            settings.data_dir / "service-accounts",
            secret,
            settings.authority,
            settings.tenant_id,
            settings.client_id,
            settings.ca_bundle,
        )
        keys = NotificationKeys.generate()
        manager = SubscriptionManager(
            accounts,
            client.http,
            settings.graph_url,
            budget,
            notification_url(settings),
            keys,
            lambda: [teams_id for _, teams_id in hub.synced_users()],
            hub.clock.now,
        )
        accounts.on_signed_in = manager.wake
        jwks = authority_url(settings.authority, settings.tenant_id) + "/discovery/v2.0/keys"
        verifier = ValidationTokenVerifier(jwks, settings.client_id, settings.ca_bundle)
        sync.accounts = accounts
        sync.notify = NotifyContext(manager, keys, verifier)
    sync.poller = TeamsPoller(
        hub,
        client,
        budget.reads_per_second(),
        settings.poll_min_interval,
        covered=None if manager is None else manager.covered,
        slow_interval=settings.notify_poll_interval,
    )
    sync.tasks = [
        asyncio.create_task(writer.run(), name="teams-writer"),
        asyncio.create_task(sync.poller.run(), name="teams-poller"),
    ]
    if manager is not None and sync.accounts is not None:
        accounts = sync.accounts

        async def subscriptions() -> None:
            await accounts.load()
            await manager.run()

        sync.tasks.append(asyncio.create_task(subscriptions(), name="teams-subscriptions"))
    log.info("Teams sync on: %s, read mode %s", settings.graph_url, settings.read_mode)
    return sync
