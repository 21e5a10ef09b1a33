"""Results: the machine, the parameters, the figures; JSON and a PNG per run."""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from presencebridge import __version__
from presencebridge.bench.procs import repo_root

PACKAGES = (
    "fastapi",
    "uvicorn",
    "starlette",
    "pydantic",
    "sqlalchemy",
    "psycopg",
    "httpx",
    "websockets",
    "msal",
    "cryptography",
    "uvloop",
    "httptools",
)


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0..100), linear between the nearest ranks."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low, high = math.floor(position), math.ceil(position)
    value = ordered[low] + (ordered[high] - ordered[low]) * (position - low)
    return round(value, 6)


def summary(values: Sequence[float]) -> dict[str, Any]:
    """Count, mean, p50/p95/p99 and max of latencies in seconds."""
    return {
        "count": len(values),
        "mean": round(sum(values) / len(values), 6) if values else None,
        "p50": percentile(values, 50),
        "p95": percentile(values, 95),
        "p99": percentile(values, 99),
        "max": round(max(values), 6) if values else None,
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_bytes() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _git(*args: str) -> str | None:
    root = repo_root()
    if root is None:
        return None
    try:
        result = subprocess.run(  # noqa: S603
            ["git", *args],  # noqa: S607
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip()


def machine() -> dict[str, Any]:
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {
        "cpu_model": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_bytes": _memory_bytes(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "presencebridge": __version__,
        "packages": versions,
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty": None if status is None else bool(status),
        # other work on the machine skews every figure: the 1/5/15 min load when written
        "load_average": load_average(),
    }


def load_average() -> list[float] | None:
    try:
        return [float(v) for v in Path("/proc/loadavg").read_text().split()[:3]]
    except (OSError, ValueError):
        return None


def write(
    out: Path,
    scenario: str,
    parameters: dict[str, Any],
    figures: dict[str, Any],
    plot: Callable[[Any], None] | None,
    notes: Sequence[str] = (),
) -> Path:
    """bench/results/<scenario>-<timestamp>.{json,png} and latest-<scenario>.json."""
    out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    base = out / f"{scenario}-{stamp}"
    result: dict[str, Any] = {
        "scenario": scenario,
        "started": parameters.pop("_started", None),
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "parameters": parameters,
        "figures": figures,
        "notes": list(notes),
    }
    if plot is not None:
        png = base.with_suffix(".png")
        _plot(plot, png)
        result["plot"] = png.name
    text = json.dumps(result, indent=2, sort_keys=False, default=str) + "\n"
    path = base.with_suffix(".json")
    path.write_text(text)
    (out / f"latest-{scenario}.json").write_text(text)
    return path


def _plot(draw: Callable[[Any], None], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure = plt.figure(figsize=(11, 6), dpi=100)
    try:
        draw(figure)
        figure.tight_layout()
        figure.savefig(path)
    finally:
        plt.close(figure)


def frame(
    axes: Any,
    title: str,
    xlabel: str,
    ylabel: str,
    *,
    xscale: str | None = None,
    yscale: str | None = None,
    legend: int = 7,
) -> None:
    """One panel's title, labels, scales, grid and legend, as every plot here has them."""
    if xscale is not None:
        axes.set_xscale(xscale)
    if yscale is not None:
        axes.set_yscale(yscale)
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.set_title(title)
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize=legend)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
