"""Shared fixtures: a real `presencebridge serve` process on a free port."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.hostile.tally import Tally
from tests.reliability.report import summary_lines
from tests.support.postgres import throwaway_postgres
from tests.support.server import ServerProcess
from tests.support.summary import HOSTILE, RELIABILITY, collected


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


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The reliability tests' seeds and counts, and the hostile suite's request counts,
    gathered from the tests' reports (whichever worker process ran them)."""
    reliability = list(collected(terminalreporter, RELIABILITY))
    if reliability:
        terminalreporter.section("reliability")
        for data in reliability:
            for line in summary_lines(data):
                terminalreporter.write_line(line)
    tally = Tally()
    for share in collected(terminalreporter, HOSTILE):
        tally.add(share)
    if tally.sent:
        terminalreporter.section("hostile input")
        for line in tally.lines():
            terminalreporter.write_line(line)
