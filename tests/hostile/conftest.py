"""The hostile-input suite: its request counts are printed at the end of the run
(by `tests/conftest.py`, from what each test's report carries)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.hostile.tally import TALLY
from tests.hostile.world import NotifyWorld, start_world, stop_world
from tests.support.summary import HOSTILE


@pytest.fixture(autouse=True)
def count_requests(request: pytest.FixtureRequest) -> Iterator[None]:
    """The requests this test sent, on its report (see `tests/support/summary.py`)."""
    before = TALLY.copy()
    yield
    request.node.user_properties.append((HOSTILE, TALLY.since(before)))


@pytest.fixture(scope="package")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NotifyWorld]:
    """One hub in notify mode with the Graph emulator, shared by the hostile tests."""
    started = start_world(tmp_path_factory.mktemp("world"))
    yield started
    stop_world(started)
