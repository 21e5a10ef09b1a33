"""The hostile-input suite: its request counts are printed at the end of the run."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.hostile.tally import TALLY
from tests.hostile.world import NotifyWorld, start_world, stop_world


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not TALLY.sent:
        return
    terminalreporter.section("hostile input")
    for line in TALLY.lines():
        terminalreporter.write_line(line)


@pytest.fixture(scope="package")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NotifyWorld]:
    """One hub in notify mode with the Graph emulator, shared by the hostile tests."""
    started = start_world(tmp_path_factory.mktemp("world"))
    yield started
    stop_world(started)
