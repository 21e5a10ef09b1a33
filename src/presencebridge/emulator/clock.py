"""The emulator's clock: wall time plus an offset the control API moves forward."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

MAX_ADVANCE = timedelta(days=366)


class EmulatorClock:
    def __init__(self) -> None:
        self._offset = timedelta(0)

    def now(self) -> datetime:
        return datetime.now(UTC) + self._offset

    def advance(self, seconds: float) -> None:
        step = timedelta(seconds=seconds)
        if step < timedelta(0):
            raise ValueError("the clock only moves forward")
        if step > MAX_ADVANCE:
            raise ValueError("advance_seconds above one year")
        self._offset += step

    @property
    def offset_seconds(self) -> float:
        return self._offset.total_seconds()
