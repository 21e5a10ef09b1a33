"""One emulator process for the whole conformance suite (per xdist worker); every test
registers its own app and users under fresh ids, so nothing is reset between tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.emulator.conformance.sdk import Tenant
from tests.emulator.support import EmulatorProcess


@pytest.fixture(scope="package")
def conformance_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorProcess]:
    process = EmulatorProcess(tmp_path_factory.mktemp("conformance") / "tls")
    process.start()
    yield process
    process.stop()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def tenant(conformance_emulator: EmulatorProcess) -> Iterator[Tenant]:
    with Tenant(conformance_emulator) as made:
        yield made
