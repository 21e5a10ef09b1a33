"""One emulator process per module (reset before each test) and a webhook receiver."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.emulator.support import EmulatorProcess, Receiver


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorProcess]:
    process = EmulatorProcess(tmp_path_factory.mktemp("emulator") / "tls")
    process.start()
    yield process
    process.stop()


@pytest.fixture
def control(emulator: EmulatorProcess) -> Iterator[httpx.Client]:
    """A client of the control API (and anything else), on a freshly reset emulator."""
    with emulator.client() as client:
        assert client.post("/_emulator/reset").status_code == 200
        yield client


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    hook = Receiver()
    hook.start()
    yield hook
    hook.stop()
