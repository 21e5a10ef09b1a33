"""The reliability suite's size, seed and report.

`PRESENCEBRIDGE_RELIABILITY_EVENTS` sets how many events the crash suite sends
(short by default, so the suite runs inside `make test`; `make reliability` sets
10,000); the fault storm scales with it. `PRESENCEBRIDGE_RELIABILITY_SEED` replays a
run's random choices (timing still differs). Each test's real counts are printed at
the end of the run, whatever its outcome.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.reliability.report import SEED_VAR, SHORT_EVENTS, Report, Size
from tests.support.summary import RELIABILITY
from tests.support.teams import EmulatorProcess

EVENTS_VAR = "PRESENCEBRIDGE_RELIABILITY_EVENTS"


@pytest.fixture(scope="session")
def size() -> Size:
    events = int(os.environ.get(EVENTS_VAR, SHORT_EVENTS))
    seed_text = os.environ.get(SEED_VAR)
    seed = int(seed_text) if seed_text else random.SystemRandom().randrange(1, 10**9)
    return Size(events, seed)


@pytest.fixture
def report(request: pytest.FixtureRequest, size: Size) -> Iterator[Report]:
    entry = Report(request.node.name, size.seed)
    yield entry
    entry.seconds = time.monotonic() - entry.started
    # On the test's report, for the summary at the end (`tests/support/summary.py`).
    request.node.user_properties.append((RELIABILITY, entry.data()))


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[EmulatorProcess]:
    process = EmulatorProcess(tmp_path / "tls")
    process.start()
    yield process
    process.stop()
