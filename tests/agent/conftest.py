"""A real PulseAudio daemon per test (it starts in well under a second)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.agent.pulse import PulseDaemon, pulse_daemon


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def pulse(tmp_path: Path) -> Iterator[PulseDaemon]:
    with pulse_daemon(tmp_path / "pulse") as daemon:
        yield daemon


@pytest.fixture
def pulse_env(pulse: PulseDaemon, monkeypatch: pytest.MonkeyPatch) -> PulseDaemon:
    """The daemon, with this test process as its client (for detectors made in-process)."""
    for key, value in pulse.env.items():
        if key in ("XDG_RUNTIME_DIR", "PULSE_SERVER", "PULSE_RUNTIME_PATH"):
            monkeypatch.setenv(key, value)
    return pulse
