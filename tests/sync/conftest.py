"""What the end-to-end sync tests share: a Graph emulator and a server joined to it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.server import ServerProcess
from tests.support.teams import EmulatorProcess, sync_server


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[EmulatorProcess]:
    """One emulator per test: its faults and clock do not leak into others."""
    process = EmulatorProcess(tmp_path / "emulator" / "tls")
    process.start()
    yield process
    process.stop()


@pytest.fixture
def server(tmp_path: Path, emulator: EmulatorProcess) -> Iterator[ServerProcess]:
    """A server that knows the emulator only by its configuration (`api` is tests/conftest's)."""
    process = sync_server(tmp_path / "server", emulator)
    process.start()
    yield process
    process.stop()
