"""What tests hand to the summary at the end of the run.

A test appends `(key, data)` to its `user_properties`; the data travels on its report,
also from pytest-xdist's worker processes to the one that prints the summary, where
`tests/conftest.py` collects it. Module state would stay in the worker that ran it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

RELIABILITY = "reliability"  # one dict per test: tests/reliability/report.py
HOSTILE = "hostile-tally"  # one tally share per test: tests/hostile/tally.py


def collected(reporter: pytest.TerminalReporter, key: str) -> Iterator[Any]:
    """Every value stored under `key` by the run's tests, once per test."""
    for reports in reporter.stats.values():
        for report in reports:
            if getattr(report, "when", None) != "teardown":
                continue
            for name, value in getattr(report, "user_properties", ()):
                if name == key:
                    yield value
