"""Every store test runs on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from presencebridge.adapters.store import GroupRecord, Store, create_engine, migrate
from presencebridge.core.settings import GroupSettings
from tests.support.postgres import scratch_database

NOW = datetime(2024, 3, 4, 8, 30, tzinfo=UTC)


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
    ]
)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of an empty database: a new SQLite file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.sqlite3'}"
        return
    admin_url: str = request.getfixturevalue("postgres_server")
    with scratch_database(admin_url) as url:
        yield url


@pytest.fixture
def engine(store_url: str) -> Iterator[Engine]:
    """An engine on the empty database, made the way the service makes it."""
    engine = create_engine(store_url)
    yield engine
    engine.dispose()


@pytest.fixture
def store(engine: Engine) -> Store:
    """A store on a freshly migrated database."""
    migrate(engine)
    return Store(engine)


@pytest.fixture
def group(store: Store) -> GroupRecord:
    """One group with default settings, already in the store."""
    record = GroupRecord("sales", "Sales", GroupSettings(), ())
    store.create_group(record, NOW)
    return record
