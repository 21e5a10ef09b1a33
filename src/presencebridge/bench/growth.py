"""How cost grows with the number of users (`presencebridge bench growth`).

Runs nothing: it reads the recorded runs (`<scenario>-<time>.json` and
`latest-<scenario>.json` in the results folder; for each size the newest run that
measured it) and plots each resource over the sizes they were measured at — server RSS,
server CPU per PBX event, Graph requests per user-hour, cold start — one panel each,
every point named by the run (commit, date) it comes from. A size that was not
measured is missing from the plot and listed as missing in the JSON, never
interpolated.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from presencebridge.bench import report

SIZES = (1_000, 10_000, 100_000)
MiB = 1024 * 1024

Series = dict[str, dict[int, float]]  # line label -> users -> value


def _sizes(data: dict[str, Any] | None) -> Iterator[tuple[int, dict[str, Any]]]:
    for size, figures in (data or {}).get("figures", {}).get("sizes", {}).items():
        yield int(size), figures


def _rss(runs: dict[str, Any]) -> Series:
    series: Series = {"after the first poll round": {}, "peak under load": {}}
    for size, f in _sizes(runs.get("memory")):
        series["after the first poll round"][size] = f["rss"]["synced"]["VmRSS"] / MiB
        series["peak under load"][size] = f["rss"]["working"]["VmHWM"] / MiB
    return series


def _cpu_per_event(runs: dict[str, Any]) -> Series:
    """µs of server CPU per acknowledged event, at the most efficient load level."""
    series: Series = {"one event per request": {}, "batches": {}}
    for size, f in _sizes(runs.get("throughput")):
        for level in f.get("sqlite", {}).get("levels", []):
            per_second = level.get("events_per_second") or 0
            busy = level.get("cpu_cores_busy", {}).get("server")
            if not per_second or busy is None:
                continue
            line = "one event per request" if level["events_per_request"] == 1 else "batches"
            micros = busy / per_second * 1e6
            series[line][size] = min(series[line].get(size, micros), micros)
    return series


def _graph_requests(runs: dict[str, Any]) -> Series:
    series: Series = {"poll": {}, "notify": {}}
    for size, f in _sizes(runs.get("teams-to-uc")):
        series["poll"][size] = f["graph_requests_per_user_hour"]
    for size, f in _sizes(runs.get("poll-vs-notify")):
        series["notify"][size] = f["notify"]["graph_requests_per_user_hour"]
        series["poll"].setdefault(size, f["poll"]["graph_requests_per_user_hour"])
    return series


def _cold_start(runs: dict[str, Any]) -> Series:
    series: Series = {"/healthz answers": {}, "first full poll round": {}}
    for size, f in _sizes(runs.get("teams-to-uc")):
        cold = f.get("cold_start")
        if cold:
            series["/healthz answers"][size] = cold["healthz_seconds"]
            series["first full poll round"][size] = cold["first_full_round_seconds"]
    return series


# resource -> (axis label, where it is measured, how it is read)
RESOURCES: dict[str, tuple[str, tuple[str, ...], Callable[[dict[str, Any]], Series]]] = {
    "server RSS": ("MiB", ("memory",), _rss),
    "server CPU per PBX event": ("µs of CPU per event", ("throughput",), _cpu_per_event),
    "Graph requests per user-hour": (
        "requests per user-hour",
        ("teams-to-uc", "poll-vs-notify"),
        _graph_requests,
    ),
    "cold start": ("seconds", ("teams-to-uc",), _cold_start),
}


def _recorded(results: Path, scenario: str) -> dict[str, Any] | None:
    """The scenario's figures for each size from the newest run that measured it (a
    run at 1,000 and 10,000 users does not hide an older one at 100,000); `runs` names
    the commit each size comes from."""
    paths = sorted(results.glob(f"{scenario}-2*.json"))  # time-stamped: oldest first
    if (results / f"latest-{scenario}.json").exists():
        paths.append(results / f"latest-{scenario}.json")
    sizes: dict[str, Any] = {}
    commits: dict[str, str] = {}
    newest: dict[str, Any] | None = None
    for path in paths:
        data = json.loads(path.read_text())
        commit = (data.get("machine", {}).get("git_commit") or "")[:7]
        for size, figures in data.get("figures", {}).get("sizes", {}).items():
            if int(size) in SIZES:
                sizes[size], commits[size] = figures, commit
                newest = data
    if newest is None:
        return None
    return {"figures": {"sizes": sizes}, "machine": newest["machine"], "runs": commits,
            "started": newest.get("started")}  # fmt: skip


def collect(results: Path) -> dict[str, Any]:
    runs: dict[str, Any] = {}
    for scenario in {s for _, sources, _ in RESOURCES.values() for s in sources}:
        found = _recorded(results, scenario)
        if found is not None:
            runs[scenario] = found
    figures: dict[str, Any] = {}
    for resource, (unit, sources, read) in RESOURCES.items():
        series = read(runs)
        measured = {size for values in series.values() for size in values}
        figures[resource] = {
            "unit": unit,
            "series": {
                label: {str(size): round(v, 3) for size, v in sorted(values.items())}
                for label, values in series.items()
            },
            "missing_sizes": [size for size in SIZES if size not in measured],
            "from": {
                s: {
                    "commit": (runs[s]["machine"].get("git_commit") or "")[:7],
                    "started": runs[s].get("started"),
                    "commit_by_size": runs[s]["runs"],
                }
                for s in sources
                if s in runs
            },
        }
    return figures


def write(results: Path = Path("bench/results")) -> Path:
    figures = collect(results)

    def plot(figure: Any) -> None:
        panels = figure.subplots(2, 2).flatten()
        for axis, (resource, found) in zip(panels, figures.items(), strict=True):
            for label, values in found["series"].items():
                if values:
                    sizes = [int(s) for s in values]
                    axis.plot(sizes, list(values.values()), marker="o", label=label)
            axis.set_xscale("log")
            axis.set_xlim(SIZES[0] * 0.7, SIZES[-1] * 1.4)
            axis.set_xticks(list(SIZES), [f"{s:,}" for s in SIZES])
            axis.set_xlabel("users")
            axis.set_ylabel(found["unit"])
            runs = ", ".join(
                f"{s} {'/'.join(sorted(set(r['commit_by_size'].values())))}"
                for s, r in found["from"].items()
            )
            axis.set_title(f"{resource}\n({runs or 'not measured'})", fontsize=9)
            axis.grid(True, alpha=0.3)
            axis.legend(fontsize=7)

    parameters = {"sizes": list(SIZES), "source": str(results)}
    return report.write(results, "growth", parameters, figures, plot)
