"""The migrations build exactly the schema that tables.py describes."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Engine

from presencebridge.adapters.store import migrate
from presencebridge.adapters.store import tables as t

# Compare everything alembic can: column types and server defaults too, not only its
# defaults (types are compared by default since alembic 1.12; say so all the same).
COMPARE_OPTIONS: dict[str, Any] = {"compare_type": True, "compare_server_default": True}


def schema_diff(engine: Engine, metadata: sa.MetaData) -> list[Any]:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts=COMPARE_OPTIONS)
        return list(compare_metadata(context, metadata))


def test_migrated_database_matches_tables_py(engine: Engine) -> None:
    migrate(engine)

    assert schema_diff(engine, t.metadata) == []


def changed_metadata() -> sa.MetaData:
    """tables.py's schema with a few changes a forgotten migration would leave behind."""
    metadata = sa.MetaData(naming_convention=t.metadata.naming_convention)
    for table in t.metadata.sorted_tables:
        table.to_metadata(metadata)
    users = metadata.tables["users"]
    users.append_column(sa.Column("nickname", sa.String(200), nullable=True))
    users.c.display_name.type = sa.String(100)
    sa.Index("ix_groups_name", metadata.tables["groups"].c.name)
    return metadata


def test_the_comparison_sees_a_schema_that_differs(engine: Engine) -> None:
    """Guards the test above: an empty diff must mean "same schema", not "compared nothing"."""
    migrate(engine)

    diff = schema_diff(engine, changed_metadata())

    kinds = {entry[0][0] if isinstance(entry, list) else entry[0] for entry in diff}
    assert kinds == {"add_column", "modify_type", "add_index"}, diff


def test_json_and_time_columns_have_each_dialects_native_types(engine: Engine) -> None:
    migrate(engine)

    columns = {c["name"]: c["type"] for c in sa.inspect(engine).get_columns("users")}

    if engine.dialect.name == "postgresql":
        assert isinstance(columns["state"], JSONB)
        assert isinstance(columns["updated_at"], sa.DateTime)
        assert columns["updated_at"].timezone is True
    else:
        assert isinstance(columns["state"], sa.JSON)
        assert not isinstance(columns["state"], JSONB)
        assert isinstance(columns["updated_at"], sa.DateTime)
