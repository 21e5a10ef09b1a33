"""Shared fixtures: a real `presencebridge serve` process on a free port."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.postgres import throwaway_postgres
from tests.support.server import ServerProcess


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path / "server", ("--allow-clock-control",))
    process.start()
    yield process
    process.stop()


@pytest.fixture
def api(server: ServerProcess) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """The admin URL of a throw-away PostgreSQL server that lives as long as the session."""
    with throwaway_postgres() as admin_url:
        yield admin_url
