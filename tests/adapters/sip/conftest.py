from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.kamailio import Kamailio, Sipp


@pytest.fixture
def kamailio(tmp_path: Path) -> Iterator[Kamailio]:
    """A started Kamailio presence server on free ports; gone after the test."""
    server = Kamailio(tmp_path / "kamailio")
    server.start()
    yield server
    server.stop(kill=True)


@pytest.fixture
def sipp(kamailio: Kamailio, tmp_path: Path) -> Iterator[Sipp]:
    phones = Sipp(kamailio, tmp_path / "sipp")
    yield phones
    phones.kill()
