"""memory: the server's resident memory (VmRSS) at N users.

Per N, a fresh server: `idle` (started, no users; the fixed base), `created` (N users
in a group whose Teams sync is off), `synced` (the group switched to
telephony_and_presence, a few poll rounds done), `working` (after Teams clients
changed at the usual rate for a while). The figure the issue asks for is bytes per
synced user above the base: (working - idle) / N, and, free of the base, the slope
between two sizes. VmHWM (the peak) is reported beside it.
"""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path
from typing import Any

from presencebridge.bench.procs import running
from presencebridge.bench.scenarios.common import Options, bring_up, measure_hub
from presencebridge.bench.workload import auto_rate, set_group_mode, wait_for_rounds

NAME = "memory"
DEFAULT_USERS = [1_000, 10_000]
FULL_USERS = [1_000, 10_000, 100_000]
DEFAULT_SECONDS = 10.0


def vm(pid: int) -> dict[str, int]:
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
            values[key] = int(rest.split()[0]) * 1024
    return values


async def one_size(options: Options, size: int) -> dict[str, Any]:
    folder = options.work / f"n{size}"
    stack = await bring_up(folder, size, options.server(), mode="off")
    emulator, server = stack.emulator, stack.server
    with running(emulator, server):
        readings: dict[str, Any] = {}
        await asyncio.sleep(options.pause)
        readings["created"] = vm(server.pid)
        await asyncio.to_thread(set_group_mode, server, "telephony_and_presence")
        await wait_for_rounds(server, options.warm_rounds + 1, within=600)
        await asyncio.sleep(options.pause)
        readings["synced"] = vm(server.pid)
        interval = server.teams_sync()["poll"]["interval_seconds"]
        measured, _ = await measure_hub(
            stack, options.rate or auto_rate(size), options.duration, options.settle(interval)
        )
        await asyncio.sleep(options.pause)
        readings["working"] = vm(server.pid)
        return {
            "users": size,
            "creation": stack.creation,
            "rss": readings,
            "workload": {
                "changes": measured["changes_sent"],
                "latency_p95": measured["latency_seconds"]["p95"],
            },
        }


async def idle_base(options: Options) -> dict[str, int]:
    """A server configured for Teams (the emulator running) but without users."""
    stack = await bring_up(options.work / "idle", 0, options.server(), mode="off")
    with running(stack.emulator, stack.server):
        await wait_for_rounds(stack.server, options.warm_rounds, within=60)
        await asyncio.sleep(options.pause)
        return vm(stack.server.pid)


async def run(options: Options) -> tuple[dict[str, Any], dict[str, Any], Any]:
    base = await idle_base(options)
    sizes: dict[str, Any] = {}
    for size in options.users:
        result = await one_size(options, size)
        working = result["rss"]["working"]["VmRSS"]
        result["bytes_per_user_above_idle"] = {
            stage: round((result["rss"][stage]["VmRSS"] - base["VmRSS"]) / size)
            for stage in ("created", "synced", "working")
        }
        result["working_rss_bytes"] = working
        sizes[str(size)] = result
    ordered = sorted(int(n) for n in sizes)
    slopes = {}
    for low, high in itertools.pairwise(ordered):
        grown = sizes[str(high)]["working_rss_bytes"] - sizes[str(low)]["working_rss_bytes"]
        slopes[f"{low}->{high}"] = round(grown / (high - low))
    figures = {"idle": base, "sizes": sizes, "bytes_per_user_slope": slopes}
    parameters = {
        "users": options.users,
        "workload_seconds": options.duration,
        "database": "sqlite",
        "stages": ["idle", "created (sync off)", "synced (3 rounds)", "working (Teams changes)"],
    }

    def plot(figure: Any) -> None:
        axis = figure.subplots(1, 1)
        stages = ("created", "synced", "working")
        xs = [int(n) for n in sizes]
        for stage in stages:
            axis.plot(
                xs,
                [sizes[str(n)]["rss"][stage]["VmRSS"] / 2**20 for n in xs],
                marker="o",
                label=stage,
            )
        axis.axhline(base["VmRSS"] / 2**20, color="grey", linestyle="--", label="idle")
        axis.plot(
            xs,
            [(base["VmRSS"] + 2048 * n) / 2**20 for n in xs],
            color="red",
            linestyle=":",
            label="target: idle + 2 KB / user",
        )
        axis.set_xscale("log")
        axis.set_xlabel("users")
        axis.set_ylabel("server RSS (MiB)")
        axis.set_title("server memory")
        axis.grid(True, alpha=0.3)
        axis.legend()

    return parameters, figures, plot
