"""teams-to-uc: Teams clients change in the emulator; how soon does the hub's stream say so?

Latency: from `time.monotonic()` taken right before the control POST that changes a
user's Teams client in the emulator, to the arrival of the stream message that shows
the change (both in the load generator). Poll mode, the product's defaults.
"""

from __future__ import annotations

import asyncio
from typing import Any

from presencebridge.bench.procs import running
from presencebridge.bench.scenarios.common import (
    Options,
    bring_up,
    cold_start,
    measure_hub,
)
from presencebridge.bench.workload import auto_rate, wait_for_rounds

NAME = "teams-to-uc"
DEFAULT_USERS = [1_000, 10_000]
FULL_USERS = [1_000, 10_000, 100_000]
DEFAULT_SECONDS = 20.0


async def measure_size(options: Options, size: int) -> tuple[dict[str, Any], dict[str, Any]]:
    folder = options.work / f"n{size}"
    stack = await bring_up(folder, size, options.server("poll"))
    emulator, server = stack.emulator, stack.server
    with running(emulator, server):
        figures: dict[str, Any] = {"users": size, "creation": stack.creation}
        if "first_start_full_round_seconds" in stack.creation:
            figures["first_start_full_round_seconds"] = stack.creation[
                "first_start_full_round_seconds"
            ]
        await wait_for_rounds(server, options.warm_rounds, within=600)
        interval = server.teams_sync()["poll"]["interval_seconds"]
        rate = options.rate or auto_rate(size)
        measured, samples = await measure_hub(
            stack, rate, options.duration, settle=options.settle(interval)
        )
        figures |= measured
        rounds = measured["poll"]["rounds"]
        reads = measured["graph"]["requests"].get("getPresencesByUserId", 0)
        figures["poll"] |= {
            "graph_requests_per_round": round(reads / rounds, 2) if rounds else None,
            "expected_requests_per_round": -(-size // 650),
        }
        figures["graph_writes"] = sum(
            v for k, v in measured["graph"]["requests"].items() if k.startswith(("set", "clear"))
        )
        figures["emulator_budget"] = (await asyncio.to_thread(emulator.stats))["budget"]
        figures["cold_start"] = await cold_start(server)
        return figures, samples


async def run(options: Options) -> tuple[dict[str, Any], dict[str, Any], Any]:
    sizes: dict[str, Any] = {}
    samples: dict[int, dict[str, Any]] = {}
    for size in options.users:
        figures, samples[size] = await measure_size(options, size)
        sizes[str(size)] = figures
    parameters = {
        "users": options.users,
        "rate_per_second": options.rate or {str(n): auto_rate(n) for n in options.users},
        "duration_seconds": options.duration,
        "read_mode": "poll",
        "changes": "each user's Teams client alternates Busy/InACall and Available/Available",
    }

    def plot(figure: Any) -> None:
        left, right = figure.subplots(1, 2)
        for size, s in samples.items():
            values = sorted(s["latency"])
            if values:
                fractions = [(i + 1) / len(values) for i in range(len(values))]
                left.plot(values, fractions, label=f"{size:,} users")
            right.scatter(s["at"], s["latency"], s=4, label=f"{size:,} users")
        left.set_xlabel("Teams change -> stream message (s)")
        left.set_ylabel("fraction of changes")
        left.set_title("Teams -> UC latency (CDF), poll mode")
        left.grid(True, alpha=0.3)
        left.legend()
        right.set_xlabel("time into the run (s)")
        right.set_ylabel("latency (s)")
        right.set_title("latency of each change")
        right.grid(True, alpha=0.3)
        right.legend()

    return parameters, {"sizes": sizes}, plot
