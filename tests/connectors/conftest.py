"""What the connector tests share: an Asterisk and a Graph emulator per test module.

Tests that break their Asterisk (restarts, cut links) make their own per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.asterisk import AsteriskProcess, ensure_chroot
from tests.support.teams import EmulatorProcess


@pytest.fixture(scope="module")
def asterisk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AsteriskProcess]:
    ensure_chroot()
    process = AsteriskProcess(tmp_path_factory.mktemp("asterisk"))
    process.start()
    yield process
    process.close()


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorProcess]:
    process = EmulatorProcess(tmp_path_factory.mktemp("emulator") / "tls")
    process.start()
    yield process
    process.stop()
