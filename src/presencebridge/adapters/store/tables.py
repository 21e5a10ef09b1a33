"""The database schema. Alembic migrations create it; this module describes it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect


class UtcDateTime(sa.TypeDecorator[datetime]):
    """An instant, stored in UTC and handed out timezone-aware on every database.

    SQLite has no time zones: without this it keeps the wall-clock text and drops
    the offset, so times compare wrongly and come back naive.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: the store keeps instants only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

Json = sa.JSON().with_variant(JSONB(), "postgresql")
Time = UtcDateTime()

groups = sa.Table(
    "groups",
    metadata,
    sa.Column("id", sa.String(128), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("settings", Json, nullable=False),
    sa.Column("created_at", Time, nullable=False),
)

profile_templates = sa.Table(
    "profile_templates",
    metadata,
    sa.Column("group_id", sa.String(128), sa.ForeignKey("groups.id"), primary_key=True),
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("text", sa.String(200), nullable=False),
    sa.Column("color", sa.String(7), nullable=False),
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("call_forwarding", sa.String(128), nullable=True),
)

# One row per user: directory data in columns, the rest of the user's state as one
# JSON document, so an event is one row update (the user is the unit of consistency).
users = sa.Table(
    "users",
    metadata,
    sa.Column("id", sa.String(128), primary_key=True),
    sa.Column("display_name", sa.String(200), nullable=False),
    sa.Column("group_id", sa.String(128), sa.ForeignKey("groups.id"), nullable=False, index=True),
    sa.Column("teams_user_id", sa.String(128), nullable=True, unique=True),
    sa.Column("state", Json, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("updated_at", Time, nullable=False),
    sa.Column("email", sa.String(254), nullable=True),
    # "<source>:<key>" of a user a directory made (migration 0004); NULL: made by hand.
    sa.Column("directory_key", sa.String(300), nullable=True, unique=True),
)

# The directory sync (issue 12, migration 0004): per source the delta cursor and the
# last run; the people it listed (what a delta is merged into); since when a directory
# user is disabled (deleted after the grace period).
directory_sources = sa.Table(
    "directory_sources",
    metadata,
    sa.Column("source", sa.String(64), primary_key=True),
    sa.Column("cursor", sa.Text, nullable=True),
    sa.Column("last_run", Json, nullable=True),
    sa.Column("updated_at", Time, nullable=False),
)

directory_people = sa.Table(
    "directory_people",
    metadata,
    sa.Column("source", sa.String(64), primary_key=True),
    sa.Column("key", sa.String(256), primary_key=True),
    sa.Column("person", Json, nullable=False),
)

directory_disabled = sa.Table(
    "directory_disabled",
    metadata,
    sa.Column("user_id", sa.String(128), primary_key=True),
    sa.Column("since", Time, nullable=False),
)

# Rules edited in the console or the API (migration 0005): they replace the config file's
# rules of that source until reset. `rules` is {"rules": [...], "default_group": ...}.
directory_rules = sa.Table(
    "directory_rules",
    metadata,
    sa.Column("source", sa.String(64), primary_key=True),
    sa.Column("rules", Json, nullable=False),
    sa.Column("changed_by", sa.String(200), nullable=False),
    sa.Column("changed_at", Time, nullable=False),
)

# A user's PBX extensions and E.164 numbers: (kind, value) is unique across users.
user_addresses = sa.Table(
    "user_addresses",
    metadata,
    sa.Column("kind", sa.String(16), primary_key=True),  # "extension" or "number"
    sa.Column("value", sa.String(64), primary_key=True),
    sa.Column("user_id", sa.String(128), sa.ForeignKey("users.id"), nullable=False, index=True),
    sa.Column("position", sa.Integer, nullable=False),
)

# What the hub must still clear in Teams for a Teams id it no longer syncs
# (docs/rules.md, "The user lifecycle"); deleted once Graph acknowledged it.
teams_releases = sa.Table(
    "teams_releases",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("teams_user_id", sa.String(128), nullable=False),
    sa.Column("user_id", sa.String(128), nullable=False),  # who had it (partition owner)
    sa.Column("clear_session", sa.Boolean, nullable=False),
    sa.Column("clear_preferred", sa.Boolean, nullable=False),
    sa.Column("created_at", Time, nullable=False),
    sa.Column("clear_message", sa.Boolean, nullable=False, server_default=sa.false()),
)

agent_tokens = sa.Table(
    "agent_tokens",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("user_id", sa.String(128), sa.ForeignKey("users.id"), nullable=False, index=True),
    # SHA-256 of a 256-bit random token: the token itself is never stored.
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("created_at", Time, nullable=False),
    # "agent" (the desktop agent) or "personal" (a script of the user's, issue 14).
    sa.Column("kind", sa.String(16), nullable=False, server_default="agent"),
    sa.Column("name", sa.String(64), nullable=True),
)

# Signed-in console sessions (issue 14): the cookie holds a random id, this table its
# SHA-256. `user_id` is null for an administrator without a hub user; no foreign key,
# so a session of a user deleted on another node is simply found gone.
console_sessions = sa.Table(
    "console_sessions",
    metadata,
    sa.Column("id_hash", sa.String(64), primary_key=True),
    sa.Column("role", sa.String(16), nullable=False),  # "admin" or "user"
    sa.Column("user_id", sa.String(128), nullable=True, index=True),
    sa.Column("method", sa.String(16), nullable=False),  # "oidc" or "admin-token"
    sa.Column("subject", sa.String(256), nullable=False),  # who, as the provider named them
    sa.Column("provider", sa.String(512), nullable=True),  # the issuer, for sign-out
    # An admin-token session: an HMAC of the token it was opened with (never the token).
    sa.Column("admin_fingerprint", sa.String(64), nullable=True),
    sa.Column("created_at", Time, nullable=False),
    sa.Column("expires_at", Time, nullable=False),
)

presence_history = sa.Table(
    "presence_history",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("user_id", sa.String(128), sa.ForeignKey("users.id"), nullable=False),
    sa.Column("at", Time, nullable=False),
    sa.Column("source", sa.String(32), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("telephony", sa.String(16), nullable=False),
    sa.Column("text", sa.String(200), nullable=False),
    sa.Column("change", sa.String(200), nullable=True),  # what a lifecycle change did
    sa.Index("ix_presence_history_user_at", "user_id", "at"),
)

# Several nodes (docs/cluster.md): each node says it is alive here, and owns
# partitions of the users through leases that it renews; an expired lease is free.
cluster_nodes = sa.Table(
    "cluster_nodes",
    metadata,
    sa.Column("id", sa.String(128), primary_key=True),
    sa.Column("url", sa.String(400), nullable=False),
    sa.Column("seen_at", Time, nullable=False),
)

partition_leases = sa.Table(
    "partition_leases",
    metadata,
    sa.Column("partition", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("node_id", sa.String(128), nullable=False),
    sa.Column("expires_at", Time, nullable=False),
    # Raised on every change of owner: a node can tell its lease was taken meanwhile.
    sa.Column("epoch", sa.Integer, nullable=False),
)

# Signed outgoing webhooks (issue 17 part 4, migration 0006): one row per change and
# webhook until the receiver took it (then deleted); `dead_at` set: a dead letter,
# kept until an administrator sends it again or discards it. `id` is the order.
webhook_outbox = sa.Table(
    "webhook_outbox",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("webhook", sa.String(32), nullable=False),
    sa.Column("user_id", sa.String(128), nullable=False),  # no foreign key: deletions too
    sa.Column("event_id", sa.String(36), nullable=False, unique=True),  # Idempotency-Key
    sa.Column("event", sa.String(32), nullable=False),
    sa.Column("body", sa.Text, nullable=False),  # the exact bytes signed and sent
    sa.Column("created_at", Time, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("last_error", sa.String(300), nullable=True),
    sa.Column("dead_at", Time, nullable=True),
    sa.Index("ix_webhook_outbox_webhook_user_id", "webhook", "user_id", "id"),
)

# The audit log (issue 18, migration 0009): one row per administrative change, appended
# only; pruned after `audit_retention_days`. `details` is short JSON text and never holds
# a secret (a token, a password): only that it changed.
audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", Time, nullable=False, index=True),
    sa.Column("actor_kind", sa.String(16), nullable=False),  # "admin-token", "session", ...
    sa.Column("actor", sa.String(256), nullable=False),  # a name, e-mail or user id
    sa.Column("action", sa.String(64), nullable=False),  # e.g. "group.settings.changed"
    sa.Column("target", sa.String(300), nullable=False),  # a group id, user id, ...
    sa.Column("details", sa.Text, nullable=False),
)
