"""Prometheus metrics of the hub, served at /metrics."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

EVENTS = Counter(
    "presencebridge_events_total",
    "Events handled by the hub, by kind and result",
    ["kind", "result"],
    registry=REGISTRY,
)
PRESENCE_CHANGES = Counter(
    "presencebridge_presence_changes_total",
    "Effective-presence changes published",
    registry=REGISTRY,
)
REJECTED_REQUESTS = Counter(
    "presencebridge_rejected_requests_total",
    "API requests answered with a 4xx, by status code",
    ["status"],
    registry=REGISTRY,
)
USERS = Gauge("presencebridge_users", "Users known to the hub", registry=REGISTRY)
STREAM_CLIENTS = Gauge(
    "presencebridge_stream_clients", "Connected presence-stream clients", registry=REGISTRY
)
EVENT_SECONDS = Histogram(
    "presencebridge_event_seconds",
    "Time from an event's arrival to its durable commit",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
    registry=REGISTRY,
)
GRAPH_REQUESTS = Counter(
    "presencebridge_graph_requests_total",
    "Requests sent to Microsoft Graph, by operation and HTTP status",
    ["operation", "status"],
    registry=REGISTRY,
)
GRAPH_SECONDS = Histogram(
    "presencebridge_graph_request_seconds",
    "Graph request latency",
    ["operation"],
    registry=REGISTRY,
)
TEAMS_HELD_BY_USER = Counter(
    "presencebridge_teams_held_by_user_total",
    "Times a user's own Teams status was found overriding the hub's",
    registry=REGISTRY,
)
NOTIFICATIONS = Counter(
    "presencebridge_graph_notifications_total",
    "Graph change notifications received, by result",
    ["result"],
    registry=REGISTRY,
)
SYNC_LAG = Histogram(
    "presencebridge_teams_sync_seconds",
    "Time from starting a Teams read to the hub applying what it showed",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0),
    registry=REGISTRY,
)
# PBX and presence connectors (issue 13): `up` is set when /metrics or /healthz is read.
CONNECTOR_UP = Gauge(
    "presencebridge_connector_up",
    "1 when a PBX or presence connector is connected and doing its work",
    ["name", "kind"],
    registry=REGISTRY,
)
CONNECTOR_MESSAGES = Counter(
    "presencebridge_connector_messages_total",
    "Messages a connector received from its system, by result (applied, ignored, malformed)",
    ["name", "result"],
    registry=REGISTRY,
)
OUTLET_PUBLICATIONS = Counter(
    "presencebridge_outlet_publications_total",
    "Presence publications to an outlet, by result",
    ["name", "result"],
    registry=REGISTRY,
)
OUTLET_PENDING = Gauge(
    "presencebridge_outlet_pending",
    "Users whose newest presence an outlet has still to publish",
    ["name"],
    registry=REGISTRY,
)
CONNECTOR_RECONNECTS = Counter(
    "presencebridge_connector_reconnects_total",
    "Times a connector's connection to its system came up again after it had been lost",
    ["name"],
    registry=REGISTRY,
)
# Signed outgoing webhooks (issue 17 part 4).
WEBHOOK_ATTEMPTS = Counter(
    "presencebridge_webhook_attempts_total",
    "POSTs to a webhook's receiver, by result (delivered, retry, dead)",
    ["name", "result"],
    registry=REGISTRY,
)
WEBHOOK_PENDING = Gauge(
    "presencebridge_webhook_pending",
    "Changes in a webhook's outbox not yet delivered (dead letters not counted)",
    ["name"],
    registry=REGISTRY,
)
# The hub's share of a PBX notification: from the NOTIFY's arrival at the host (over UDP
# the kernel's receive time: a datagram that waited for a busy event loop counts) to its
# calls applied (committed and on the bus, so a stream message is under way).
CONNECTOR_APPLY_SECONDS = Histogram(
    "presencebridge_connector_apply_seconds",
    "From a PBX notification received to the calls it carries applied by the hub",
    ["name"],
    buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0),
    registry=REGISTRY,
)

# Console sign-in (issue 14): every attempt's outcome, and why a refused one was refused.
SIGN_INS = Counter(
    "presencebridge_sign_ins_total",
    "Console sign-ins, by method (oidc, admin-token) and outcome (ok, refused)",
    ["method", "outcome"],
    registry=REGISTRY,
)
SIGN_INS_REFUSED = Counter(
    "presencebridge_sign_ins_refused_total",
    "Refused console sign-ins by reason (state, code, id_token, tenant, no_user, provider, "
    "expired, token, disabled)",
    ["reason"],
    registry=REGISTRY,
)
GC_FULL_SECONDS = Histogram(
    "presencebridge_gc_full_seconds",
    "Duration of CPython's full (generation 2) garbage collections, which stop the loop",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
    registry=REGISTRY,
)
GC_FROZEN_OBJECTS = Gauge(
    "presencebridge_gc_frozen_objects",
    "Objects kept out of the garbage collections (frozen as long-lived)",
    registry=REGISTRY,
)
