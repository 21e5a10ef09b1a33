"""What the SIP connectors are tested against in-process: a `TelephonyLines` that
records, and waiting on a condition inside an event loop."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Collection, Sequence
from typing import TypeVar

from presencebridge.core.model import CallState

T = TypeVar("T")


class RecordingLines:
    """`core.ports.TelephonyLines` as the hub would be: the lines to watch, and every
    report and settle kept, with each extension's calls as the hub would hold them."""

    def __init__(self, lines: Sequence[str]) -> None:
        self._lines = sorted(lines)
        self.listeners: list[Callable[[], None]] = []
        self.events: list[tuple[str, str, CallState]] = []
        self.calls: dict[str, dict[str, CallState]] = {}

    def lines(self) -> Sequence[str]:
        return self._lines

    def set_lines(self, lines: Sequence[str]) -> None:
        self._lines = sorted(lines)
        for listener in self.listeners:
            listener()

    def add_lines_listener(self, listener: Callable[[], None]) -> None:
        self.listeners.append(listener)

    async def report(self, extension: str, call_id: str, state: CallState) -> None:
        self.events.append((extension, call_id, state))
        self.calls.setdefault(extension, {})[call_id] = state

    async def settle(self, extension: str, active: Collection[str]) -> None:
        for call_id, state in self.calls.get(extension, {}).items():
            if call_id not in active and state is not CallState.ENDED:
                self.events.append((extension, call_id, CallState.ENDED))
                self.calls[extension][call_id] = CallState.ENDED

    def states(self, extension: str) -> list[CallState]:
        """The states the extension went through, repeats folded."""
        found: list[CallState] = []
        for ext, _, state in self.events:
            if ext == extension and (not found or found[-1] is not state):
                found.append(state)
        return found

    def on_the_phone(self, extension: str) -> bool:
        return any(s is not CallState.ENDED for s in self.calls.get(extension, {}).values())


async def until(probe: Callable[[], T], bound: float = 30.0, what: str = "") -> T:
    """Wait (in the loop) until `probe()` is truthy; its value. Only a bound: the wait
    ends as soon as it holds."""
    deadline = time.monotonic() + bound
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {bound} s: {what}")
        await asyncio.sleep(0.05)
