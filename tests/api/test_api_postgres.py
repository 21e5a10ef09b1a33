"""The server on PostgreSQL, chosen only through PRESENCEBRIDGE_DATABASE_URL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.postgres import scratch_database
from tests.support.server import ServerProcess, make_user, receive, receive_for

pytestmark = pytest.mark.postgres


@pytest.fixture
def database_url(postgres_server: str) -> Iterator[str]:
    with scratch_database(postgres_server) as url:
        yield url


def test_server_on_postgresql_streams_and_survives_kill_9(
    tmp_path: Path, database_url: str
) -> None:
    server = ServerProcess(tmp_path / "data", PRESENCEBRIDGE_DATABASE_URL=database_url)
    server.start()
    try:
        with server.client() as api:
            make_user(api)
            with server.stream() as ws:
                receive(ws)
                event = {"user": "alice", "call_id": "pg1", "state": "connected"}
                assert api.post("/api/v1/telephony/events", json=event).status_code == 200
                assert receive_for(ws, "alice")["telephony"] == "on_the_phone"
            before = api.get("/api/v1/users").json()
        server.kill9()
        server.start()
        with server.client() as api:
            assert api.get("/api/v1/users").json() == before
            event = {"user": "alice", "call_id": "pg1", "state": "ended"}
            assert api.post("/api/v1/telephony/events", json=event).json()["telephony"] == "idle"
        # Nothing went to the SQLite default: the URL alone chose the database.
        assert not (tmp_path / "data" / "presencebridge.db").exists()
    finally:
        server.stop()
