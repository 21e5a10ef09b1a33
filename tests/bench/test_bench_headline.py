"""`headline` (the summary printed after a run) over every committed result file."""

from __future__ import annotations

from pathlib import Path

import pytest

from presencebridge import bench

RESULTS = Path(__file__).resolve().parents[2] / "bench" / "results"
# Written before the throughput scenario measured batches.
OLDER_FORMAT = "throughput-20261128T235331Z.json"


def result_files() -> list[object]:
    return [pytest.param(path, id=path.name) for path in sorted(RESULTS.glob("*.json"))]


def test_a_result_from_before_the_batch_figure_says_it_has_none() -> None:
    lines = bench.headline(RESULTS / OLDER_FORMAT)
    assert any("- in batches" in line for line in lines)


def test_there_are_result_files() -> None:
    assert len(list(RESULTS.glob("*.json"))) >= len(bench.SCENARIOS)


@pytest.mark.parametrize("path", result_files())
def test_every_result_file_has_a_headline(path: Path) -> None:
    lines = bench.headline(path)
    assert lines
    assert all(isinstance(line, str) and line and "\n" not in line for line in lines)


def test_every_scenario_has_a_headline() -> None:
    # and the growth report, which plots the recorded runs
    assert set(bench.HEADLINES) == set(bench.SCENARIOS) | set(bench.LONG_SCENARIOS) | {"growth"}
