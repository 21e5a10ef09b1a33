"""`presencebridge bench growth`: the recorded runs plotted by size; a size never
measured is listed as missing, never made up."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

RESULTS = Path(__file__).parents[2] / "bench" / "results"
CLI = str(Path(sys.executable).parent / "presencebridge")


def test_growth_reads_the_recorded_runs_and_names_what_is_missing(tmp_path: Path) -> None:
    for scenario in ("memory", "teams-to-uc", "throughput", "poll-vs-notify"):
        shutil.copy(RESULTS / f"latest-{scenario}.json", tmp_path)
    memory = json.loads((tmp_path / "latest-memory.json").read_text())
    command = [CLI, "bench", "growth", "--out", str(tmp_path)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    data = json.loads((tmp_path / "latest-growth.json").read_text())
    rss = data["figures"]["server RSS"]
    for size, figures in memory["figures"]["sizes"].items():
        expected = figures["rss"]["synced"]["VmRSS"] / 1024 / 1024
        assert rss["series"]["after the first poll round"][size] == round(expected, 3)
    assert rss["from"]["memory"]["commit"] == memory["machine"]["git_commit"][:7]
    measured = {
        int(size) for values in data["figures"]["cold start"]["series"].values() for size in values
    }
    assert (
        set(data["figures"]["cold start"]["missing_sizes"]) == {1_000, 10_000, 100_000} - measured
    )
    assert (tmp_path / data["plot"]).read_bytes().startswith(b"\x89PNG")


def test_growth_without_runs_plots_nothing_and_says_every_size_is_missing(tmp_path: Path) -> None:
    command = [CLI, "bench", "growth", "--out", str(tmp_path)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    data = json.loads((tmp_path / "latest-growth.json").read_text())
    for found in data["figures"].values():
        assert found["missing_sizes"] == [1_000, 10_000, 100_000]
        assert all(not values for values in found["series"].values())


def test_a_newer_run_at_fewer_sizes_does_not_hide_an_older_one_at_more(tmp_path: Path) -> None:
    """`make bench` runs 1,000 and 10,000 users; the 100,000-user figures of an earlier
    `--full` run stay in the plot, named by their own commit."""
    recorded = json.loads((RESULTS / "latest-teams-to-uc.json").read_text())
    one_size = next(iter(recorded["figures"]["sizes"].values()))
    older = {**recorded, "machine": {**recorded["machine"], "git_commit": "0ldc0mmit"}}
    older["figures"] = {"sizes": {"100000": one_size, "1000": one_size}}
    newer = {**recorded, "machine": {**recorded["machine"], "git_commit": "newc0mmit"}}
    newer["figures"] = {"sizes": {"1000": one_size}}
    (tmp_path / "teams-to-uc-20260101T000000Z.json").write_text(json.dumps(older))
    (tmp_path / "teams-to-uc-20260202T000000Z.json").write_text(json.dumps(newer))
    (tmp_path / "latest-teams-to-uc.json").write_text(json.dumps(newer))
    command = [CLI, "bench", "growth", "--out", str(tmp_path)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    data = json.loads((tmp_path / "latest-growth.json").read_text())
    requests = data["figures"]["Graph requests per user-hour"]
    assert set(requests["series"]["poll"]) == {"1000", "100000"}
    assert requests["from"]["teams-to-uc"]["commit_by_size"] == {
        "1000": "newc0mm",
        "100000": "0ldc0mm",
    }
    assert 10_000 in requests["missing_sizes"]
