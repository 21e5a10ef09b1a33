"""Alembic migrations: from an empty database to head, down to base and up again."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from presencebridge.adapters.store import (
    HEAD_REVISION,
    GroupRecord,
    Store,
    current_revision,
    downgrade,
    migrate,
)
from presencebridge.adapters.store import tables as t
from presencebridge.adapters.store.audit import AuditEntry, AuditQuery
from presencebridge.core.model import User, UserState
from presencebridge.core.settings import GroupSettings
from tests.support.stored import stored_text

SCHEMA_TABLES = {
    "groups",
    "profile_templates",
    "users",
    "agent_tokens",
    "console_sessions",
    "presence_history",
    "cluster_nodes",
    "partition_leases",
    "user_addresses",
    "teams_releases",
    "directory_sources",
    "directory_people",
    "directory_disabled",
    "directory_rules",
    "webhook_outbox",
    "audit_log",
}
VERSION_TABLE = "alembic_version"
NOW = datetime(2024, 3, 4, 8, 30, tzinfo=UTC)


def table_names(engine: Engine) -> set[str]:
    # A new inspector each time: an inspector caches what it has reflected.
    return set(sa.inspect(engine).get_table_names())


def use_store(engine: Engine) -> None:
    """Write and read back a group and a user, as the service does at start."""
    store = Store(engine)
    store.create_group(GroupRecord("g1", "Group one", GroupSettings(), ()), NOW)
    state = UserState(User("alice", "Alice", "g1"))
    store.create_user(state, NOW)
    assert [g.id for g in store.load_groups()] == ["g1"]
    assert store.load_users() == [state]


def store_first_schema_user(engine: Engine) -> None:
    """A group and the user `alice` written as the first schema's store wrote them (the
    store of today writes columns that schema has not)."""
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO groups (id, name, settings, created_at) "
                "VALUES ('g1', 'Group one', '{}', :now)"
            ),
            {"now": NOW},
        )
        connection.execute(
            sa.text(
                "INSERT INTO users (id, display_name, group_id, teams_user_id, state, version,"
                " updated_at) VALUES ('alice', 'Alice', 'g1', NULL, :state, 1, :now)"
            ),
            {
                "state": stored_text(UserState(User("alice", "Alice", "g1"))),
                "now": NOW,
            },
        )


def test_schema_tables_are_the_ones_tables_py_describes() -> None:
    assert set(t.metadata.tables) == SCHEMA_TABLES


def test_migrate_creates_the_schema_on_an_empty_database(engine: Engine) -> None:
    assert table_names(engine) == set()
    assert current_revision(engine) is None

    migrate(engine)

    assert current_revision(engine) == HEAD_REVISION
    assert table_names(engine) == SCHEMA_TABLES | {VERSION_TABLE}
    use_store(engine)


def test_migrate_again_at_head_changes_nothing(engine: Engine) -> None:
    migrate(engine)
    use_store(engine)

    migrate(engine)

    assert current_revision(engine) == HEAD_REVISION
    store = Store(engine)
    assert [g.id for g in store.load_groups()] == ["g1"]
    assert [u.user.id for u in store.load_users()] == ["alice"]


def test_downgrade_to_base_removes_every_table_and_migrate_restores_them(
    engine: Engine,
) -> None:
    migrate(engine)
    use_store(engine)

    downgrade(engine, "base")

    assert current_revision(engine) is None
    # Alembic keeps its (now empty) version table; nothing of the schema may remain.
    assert table_names(engine) - {VERSION_TABLE} == set()
    if engine.dialect.name == "postgresql":
        # presence_history.id's sequence must go with its table.
        assert sa.inspect(engine).get_sequence_names() == []

    migrate(engine)

    assert current_revision(engine) == HEAD_REVISION
    assert table_names(engine) == SCHEMA_TABLES | {VERSION_TABLE}
    store = Store(engine)
    assert store.load_groups() == []
    assert store.load_users() == []
    use_store(engine)


def test_downgrade_then_upgrade_to_an_explicit_revision(engine: Engine) -> None:
    migrate(engine, HEAD_REVISION)
    assert current_revision(engine) == HEAD_REVISION

    downgrade(engine, "base")
    migrate(engine, HEAD_REVISION)

    assert current_revision(engine) == HEAD_REVISION
    use_store(engine)


def test_upgrade_from_the_first_schema_keeps_users_and_adds_the_cluster_tables(
    engine: Engine,
) -> None:
    migrate(engine, "0001")
    store_first_schema_user(engine)
    assert "partition_leases" not in table_names(engine)

    migrate(engine)

    assert current_revision(engine) == HEAD_REVISION
    assert table_names(engine) == SCHEMA_TABLES | {VERSION_TABLE}
    assert [u.user.id for u in Store(engine).load_users()] == ["alice"]
    # A user stored before issue 12 loads unchanged: no e-mail, extensions or numbers.
    assert Store(engine).load_users() == [UserState(User("alice", "Alice", "g1"))]


def test_upgrade_from_0008_keeps_the_data_and_adds_an_empty_audit_log(engine: Engine) -> None:
    """Issue 18: a database at 0008 with a group, a user and a token upgrades to one with
    the audit log (empty) and everything it held; a downgrade drops only the log."""
    migrate(engine, "0008")
    use_store(engine)
    Store(engine).add_agent_token("alice", "pba_before", NOW)
    assert "audit_log" not in table_names(engine)

    migrate(engine)

    assert current_revision(engine) == HEAD_REVISION == "0009"
    store = Store(engine)
    assert [u.user.id for u in store.load_users()] == ["alice"]
    assert store.agent_token_user("pba_before") == "alice"
    assert store.audit_page(AuditQuery()).total == 0
    store.append_audit(AuditEntry(NOW, "admin-token", "administrator", "user.created", "bob"))
    assert [e.target for e in store.audit_page(AuditQuery()).entries] == ["bob"]

    downgrade(engine, "0008")
    assert "audit_log" not in table_names(engine)
    assert [u.user.id for u in Store(engine).load_users()] == ["alice"]
