"""How create_engine connects: the right driver, and on SQLite a durable journal."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from presencebridge.adapters.store import create_engine, migrate, normalise_url

# PRAGMA synchronous: 0 OFF, 1 NORMAL, 2 FULL, 3 EXTRA.
SYNCHRONOUS_FULL = 2


def pragma(connection: sa.Connection, name: str) -> object:
    return connection.exec_driver_sql(f"PRAGMA {name}").scalar_one()


def test_sqlite_connections_use_wal_full_sync_and_foreign_keys(tmp_path: Path) -> None:
    path = tmp_path / "durable.sqlite3"
    engine = create_engine(f"sqlite:///{path}")
    try:
        # Two connections open at once: both come from the pool's connect hook.
        with engine.connect() as first, engine.connect() as second:
            for connection in (first, second):
                assert str(pragma(connection, "journal_mode")).lower() == "wal"
                assert pragma(connection, "synchronous") == SYNCHRONOUS_FULL
                assert pragma(connection, "foreign_keys") == 1
        migrate(engine)
        assert path.with_name(path.name + "-wal").exists()
    finally:
        engine.dispose()

    # WAL is a property of the file: a plain connection sees it too.
    plain = sa.create_engine(f"sqlite:///{path}")
    try:
        with plain.connect() as connection:
            assert str(pragma(connection, "journal_mode")).lower() == "wal"
    finally:
        plain.dispose()


def test_engine_uses_the_expected_driver(store_url: str, engine: Engine) -> None:
    expected = {"sqlite": "pysqlite", "postgresql": "psycopg"}
    assert engine.dialect.driver == expected[engine.dialect.name]
    assert engine.dialect.name == ("sqlite" if store_url.startswith("sqlite") else "postgresql")
    with engine.connect() as connection:
        assert connection.execute(sa.select(sa.literal(1))).scalar_one() == 1


def test_postgres_urls_are_read_with_psycopg_3() -> None:
    assert normalise_url("postgres://u:p@h:5432/db") == "postgresql+psycopg://u:p@h:5432/db"
    assert normalise_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalise_url("postgresql+psycopg://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalise_url("sqlite:///x.db") == "sqlite:///x.db"
