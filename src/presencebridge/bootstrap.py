"""The one place that wires the application together (cosmicpython's bootstrap).

settings -> store -> hub -> Graph connector (writer, poller, subscriptions) ->
directories -> PBX connectors and presence outlets -> agent relay -> cluster, every
dependency passed in when an object is made. What runs is a list of components,
started in that order and stopped the other way round; the API and console
(`api/app.py`) only read what is built here.

A new outside system plugs in as one more component: build it from the settings
and the hub in `build`, append it to `components`, done (see `Component`).

Poll mode needs only the app registration. Notify mode adds service accounts,
their subscriptions and the webhook's keys, with a slow poll underneath.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Protocol
from urllib.parse import quote

from presencebridge.adapters.connectors import DELIVERY_KINDS, OUTLET_KINDS, PBX_KINDS
from presencebridge.adapters.graph.auth import AppTokenProvider, authority_url
from presencebridge.adapters.graph.budget import RequestBudget
from presencebridge.adapters.graph.client import GraphClient
from presencebridge.adapters.graph.directory import EntraDirectory, GraphTeamsLookup
from presencebridge.adapters.graph.notifications import NotificationKeys, ValidationTokenVerifier
from presencebridge.adapters.graph.subscriptions import ServiceAccounts, SubscriptionManager
from presencebridge.adapters.graph.webhook import NotifyContext
from presencebridge.adapters.oidc import OidcClient, ProviderSettings
from presencebridge.adapters.store import Store, create_engine, migrate
from presencebridge.adapters.store.leases import LeaseFence, LeaseStore
from presencebridge.adapters.store.sessions import SessionStore
from presencebridge.adapters.store.webhooks import WebhookOutbox
from presencebridge.adapters.webhook import WebhookSender, WebhookSettings
from presencebridge.api import views
from presencebridge.config import DirectoryConfig, Settings
from presencebridge.core import directory as directory_rules
from presencebridge.core.ports import DirectorySource
from presencebridge.core.signin import SignInPolicy
from presencebridge.service.agents import AgentRelay, ClientSideTeams
from presencebridge.service.cluster import Cluster
from presencebridge.service.connectors import (
    Connectors,
    HistoryNotes,
    PresenceFeed,
    TelephonyFeed,
)
from presencebridge.service.directory import DirectorySync
from presencebridge.service.heap import HeapKeeper
from presencebridge.service.hub import Hub
from presencebridge.service.sign_in import SignIns, admin_fingerprint
from presencebridge.service.sync_health import SyncHealth
from presencebridge.service.teams_sync import TeamsPoller, TeamsWriter
from presencebridge.service.webhooks import Webhooks, WebhookWorker

log = logging.getLogger(__name__)


class Component(Protocol):
    """Something that runs beside the hub: started after it, stopped before it."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


# -- the Teams sync (Graph connector) --------------------------------------------------------


@dataclass
class RunningTeamsSync:
    """The server's Teams sync: Graph client and budget, writer, poller, subscriptions."""

    settings: Settings
    client: GraphClient
    budget: RequestBudget
    writer: TeamsWriter
    poller: TeamsPoller
    health: SyncHealth
    accounts: ServiceAccounts | None = None
    notify: NotifyContext | None = None
    manager: SubscriptionManager | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def set_share(self, share: float) -> None:
        """Several nodes: spend only this node's share of the tenant's Graph budget."""
        self.budget.set_share(share)
        self.poller.reads_per_second = self.budget.reads_per_second()

    async def start(self) -> None:
        self.writer.compare_everyone()
        self.tasks = [
            asyncio.create_task(self.writer.run(), name="teams-writer"),
            asyncio.create_task(self.poller.run(), name="teams-poller"),
        ]
        if self.manager is not None and self.accounts is not None:
            self.tasks.append(
                asyncio.create_task(
                    _subscriptions(self.accounts, self.manager), name="teams-subscriptions"
                )
            )
        log.info(
            "Teams sync on: %s, read mode %s", self.settings.graph_url, self.settings.read_mode
        )

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.client.aclose()


async def _subscriptions(accounts: ServiceAccounts, manager: SubscriptionManager) -> None:
    await accounts.load()
    await manager.run()


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


def connect_graph(settings: Settings, hub: Hub) -> RunningTeamsSync | None:
    """The Teams sync, when an app registration with a secret is configured."""
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
    health = SyncHealth()
    client.on_answer = health.answer
    accounts, notify = None, None
    if settings.read_mode == "notify":
        accounts, notify = _notify_mode(settings, hub, client, budget)
    poller = TeamsPoller(
        hub,
        client,
        budget.reads_per_second(),
        settings.poll_min_interval,
        covered=None if notify is None else notify.manager.covered,
        slow_interval=settings.notify_poll_interval,
    )
    writer = TeamsWriter(hub, client)
    manager = None if notify is None else notify.manager
    return RunningTeamsSync(
        settings, client, budget, writer, poller, health, accounts, notify, manager
    )


def _notify_mode(
    settings: Settings, hub: Hub, client: GraphClient, budget: RequestBudget
) -> tuple[ServiceAccounts, NotifyContext]:
    """Service accounts, their subscriptions, and what the webhook checks against."""
    if not settings.public_url:
        raise ValueError("read mode notify needs PRESENCEBRIDGE_PUBLIC_URL (the webhook's URL)")
    assert settings.tenant_id and settings.client_id
    secret = None if settings.secret_key is None else settings.secret_key.get_secret_value()
    keys = NotificationKeys.generate()
    accounts = ServiceAccounts(
        settings.data_dir / "service-accounts",
        secret,
        settings.authority,
        settings.tenant_id,
        settings.client_id,
        settings.ca_bundle,
    )
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
    jwks = authority_url(settings.authority, settings.tenant_id) + "/discovery/v2.0/keys"
    verifier = ValidationTokenVerifier(jwks, settings.client_id, settings.ca_bundle)
    return accounts, NotifyContext(manager, keys, verifier)


# -- directory sources (issue 12) -------------------------------------------------------------


def _directory_graph(settings: Settings, config: DirectoryConfig) -> GraphClient:
    """A Graph client for directory reads: the app registration's token, the directory's
    own throttling (not the presence budget), few attempts (a failed run is retried at the
    next one; it changed nothing)."""
    secret = config.client_secret() or settings.client_secret
    if not (settings.tenant_id and settings.client_id and secret):
        raise ValueError(
            f"directory {config.source_name}: Entra ID needs PRESENCEBRIDGE_TENANT_ID, "
            "_CLIENT_ID and a client secret (PRESENCEBRIDGE_CLIENT_SECRET, or "
            "client_secret_env / client_secret_file in the [[directory]] table)"
        )
    tokens = AppTokenProvider(
        settings.authority,
        settings.tenant_id,
        settings.client_id,
        secret.get_secret_value(),
        settings.ca_bundle,
    )
    return GraphClient(
        settings.graph_url, tokens, None, settings.client_id, settings.ca_bundle,
        timeout=30.0, max_attempts=4,
    )  # fmt: skip


def directory_policy(settings: Settings, config: DirectoryConfig) -> directory_rules.Policy:
    return directory_rules.Policy(
        config.source_name,
        config.rules_config().to_rules(),
        config.max_removal_share,
        timedelta(days=config.disabled_grace_days),
        settings.default_country,
    )


def _directory_source(settings: Settings, config: DirectoryConfig) -> DirectorySource:
    if config.kind == "entra":
        rules = config.rules_config().to_rules()
        return EntraDirectory(
            _directory_graph(settings, config), config.source_name,
            config.extension_attribute, sorted(rules.attributes_named()),
            sorted(rules.groups_named()),
        )  # fmt: skip
    # Imported here: a server that reads no LDAP directory does not carry ldap3.
    from presencebridge.adapters.ldap.settings import LdapSettings
    from presencebridge.adapters.ldap.source import LdapDirectorySource

    return LdapDirectorySource(LdapSettings.from_mapping(config.ldap_table()))


def connect_directories(settings: Settings, hub: Hub) -> dict[str, DirectorySync]:
    syncs = {}
    for config in settings.directory:
        source = _directory_source(settings, config)
        lookup = None
        if config.kind != "entra" and settings.tenant_id and settings.client_id:
            lookup = GraphTeamsLookup(_directory_graph(settings, config))
        syncs[config.source_name] = DirectorySync(
            hub, source, directory_policy(settings, config), lookup, config.schedule_minutes
        )
    return syncs


# -- PBX connectors and presence outlets (issue 13) ------------------------------------------


def connect_connectors(settings: Settings, hub: Hub) -> Connectors | None:
    """The `[[pbx]]` connectors and the `[[publish]]` outlets and webhooks, when any is
    configured."""
    if not settings.pbx and not settings.publish:
        return None
    pbx = []
    for config in settings.pbx:
        kind = PBX_KINDS[config.kind]
        lines = TelephonyFeed(hub, config.connector_name)
        pbx.append(kind.make(kind.parse(config.table()), lines))
    outlets = []
    hooks: list[WebhookSettings] = []
    for config in settings.publish:
        if config.kind in DELIVERY_KINDS:
            hooks.append(DELIVERY_KINDS[config.kind].parse(config.table()))
            continue
        outlet_kind = OUTLET_KINDS[config.kind]
        settings_ = outlet_kind.parse(config.table())
        if outlet_kind.make_noting is not None:
            notes = HistoryNotes(hub, f"publish:{config.connector_name}")
            outlets.append(outlet_kind.make_noting(settings_, notes))
        else:
            outlets.append(outlet_kind.make(settings_))
    feed = PresenceFeed(hub, outlets) if outlets else None
    return Connectors(pbx, feed, connect_webhooks(hub, hooks) if hooks else None)


def connect_webhooks(hub: Hub, hooks: list[WebhookSettings]) -> Webhooks:
    """Signed outgoing webhooks (issue 17): a worker per webhook on the store's outbox;
    the body carries the presence resource as the API renders it."""
    outbox = WebhookOutbox(hub.store.engine)
    workers = [WebhookWorker(h, WebhookSender(h), outbox, hub) for h in hooks]
    return Webhooks(hub, outbox, workers, views.presence)


# -- the application -------------------------------------------------------------------------


@dataclass
class Application:
    """Everything `build` made; `components` run in order (the hub's first)."""

    settings: Settings
    hub: Hub
    agents: AgentRelay
    teams_sync: RunningTeamsSync | None = None
    cluster: Cluster | None = None
    components: list[Component] = field(default_factory=list)
    directories: dict[str, DirectorySync] = field(default_factory=dict)
    connectors: Connectors | None = None
    sign_ins: SignIns | None = None
    oidc: OidcClient | None = None

    @property
    def notify(self) -> NotifyContext | None:
        return None if self.teams_sync is None else self.teams_sync.notify

    async def start(self) -> None:
        await self.hub.start()
        started: list[Component] = []
        try:
            for component in self.components:
                await component.start()
                started.append(component)
        except BaseException:
            for component in reversed(started):
                await component.stop()
            await self.hub.stop()
            raise

    async def stop(self) -> None:
        # The cluster first: give the partitions back before anything stops.
        for component in reversed(self.components):
            await component.stop()
        await self.hub.stop()


async def open_store(settings: Settings) -> Store:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = create_engine(settings.resolved_database_url())
    await asyncio.to_thread(migrate, engine)
    if settings.redis_url is None:
        return Store(engine)
    # Several nodes: every commit checks, inside its transaction, that this node still
    # holds the users' partitions.
    fence = LeaseFence(LeaseStore(engine), settings.node_name(), settings.partitions)
    return Store(engine, fence)


def _cluster(settings: Settings, hub: Hub) -> Cluster | None:
    """Several nodes: leases and fan-out (the hub handles no one until then)."""
    if settings.redis_url is None:
        return None
    # Imported here: a single node does not carry the Redis client.
    from presencebridge.adapters.fanout import Fanout

    return Cluster(
        hub,
        LeaseStore(hub.store.engine),
        Fanout(settings.redis_url.get_secret_value(), settings.node_name()),
        settings.node_name(),
        settings.node_url or f"http://{settings.host}:{settings.port}",
        settings.partitions,
        settings.lease_seconds,
    )


def connect_sign_in(settings: Settings, hub: Hub) -> tuple[SignIns, OidcClient | None]:
    """Console sessions (always: the break-glass admin token signs in too) and, with a
    `[sign_in]` table, the OpenID Connect provider every employee signs in at."""
    assert settings.admin_token is not None
    config = settings.sign_in
    policy = SignInPolicy()
    oidc = None
    if config is not None:
        policy = SignInPolicy(frozenset(config.admin_groups), frozenset(config.admin_roles))
        secret = config.client_secret()
        oidc = OidcClient(
            ProviderSettings(
                issuer=config.issuer,
                client_id=config.client_id,
                client_secret=None if secret is None else secret.get_secret_value(),
                scopes=tuple(config.scopes),
                allowed_tenants=frozenset(config.allowed_tenants),
                ca_bundle=config.ca_bundle or settings.ca_bundle,
            )
        )
    fingerprint = admin_fingerprint(settings.admin_token.get_secret_value())
    return SignIns(hub, SessionStore(hub.store.engine), policy, fingerprint), oidc


def build(settings: Settings, hub: Hub) -> Application:
    """Wire everything around the hub; nothing runs yet (`Application.start`)."""
    cluster = _cluster(settings, hub)
    sync = connect_graph(settings, hub)
    forward = None if cluster is None else cluster.relay_agent_message
    agents = AgentRelay(hub, client_side_teams(settings), forward=forward)
    application = Application(settings, hub, agents, sync, cluster)
    application.components.append(HeapKeeper())
    if sync is not None:
        application.components.append(sync)
    application.directories = connect_directories(settings, hub)
    application.components.extend(application.directories.values())
    application.connectors = connect_connectors(settings, hub)
    if application.connectors is not None:
        application.components.append(application.connectors)
    application.sign_ins, application.oidc = connect_sign_in(settings, hub)
    # New adapters go here: made from the settings and the hub (or the Graph client),
    # appended as components.
    if cluster is not None:
        cluster.attach(agents, None if sync is None else sync.set_share)
        application.components.append(cluster)  # last: it starts handing users over
    return application


@asynccontextmanager
async def running(settings: Settings, hub: Hub | None = None) -> AsyncIterator[Application]:
    """The application, started; stopped when the block ends."""
    if hub is None:
        hub = Hub(
            await open_store(settings),
            default_country=settings.default_country,
            audit_retention=timedelta(days=settings.audit_retention_days),
        )
    application = build(settings, hub)
    await application.start()
    try:
        yield application
    finally:
        await application.stop()
