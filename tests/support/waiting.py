"""Waiting on conditions: poll until something holds, or fail after a timeout.

Tests wait for what they need (a status shown, a counter reached), never for a
fixed time: on a busy machine things take longer, not differently.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def eventually_timed(
    probe: Callable[[], T], accept: Callable[[T], bool], timeout: float, step: float = 0.05
) -> tuple[T, float]:
    """Poll `probe` until `accept` holds; the value and how long it took.

    The last value is in the failure message.
    """
    started = time.monotonic()
    value = probe()
    while not accept(value):
        if time.monotonic() - started > timeout:
            raise AssertionError(f"not reached within {timeout} s; last value: {value!r}")
        time.sleep(step)
        value = probe()
    return value, time.monotonic() - started


def eventually(
    probe: Callable[[], T], accept: Callable[[T], bool], timeout: float = 30.0, step: float = 0.05
) -> T:
    """Poll `probe` until `accept` holds; the value that was accepted."""
    return eventually_timed(probe, accept, timeout, step)[0]
