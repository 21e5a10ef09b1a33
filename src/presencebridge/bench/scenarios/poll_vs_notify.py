"""poll-vs-notify: the same Teams workload with the hub reading by poll and by notification.

Poll mode reads everyone with getPresencesByUserId in rounds; notify mode signs in
ceil(N / 650) service accounts by device code, each watching up to 650 users through
one rich (encrypted) subscription, with a slow poll (every 60 s) underneath. Latency
is measured as in teams-to-uc; Graph requests per user-hour are what the emulator
counted during the run (subscription upkeep adds a renewal per subscription every
35 min in notify mode, not in the window of a short run).
"""

from __future__ import annotations

import asyncio
from typing import Any

from presencebridge.adapters.graph.subscriptions import LIFETIME, RENEW_BEFORE
from presencebridge.bench.procs import running
from presencebridge.bench.scenarios.common import (
    Options,
    bring_up,
    measure_hub,
    sign_in_service_accounts,
)
from presencebridge.bench.workload import auto_rate, wait_for_rounds

NAME = "poll-vs-notify"
DEFAULT_USERS = [1_000, 10_000]
FULL_USERS = [1_000, 10_000, 100_000]
DEFAULT_SECONDS = 20.0
SHARD = 650


async def one_mode(options: Options, size: int, mode: str) -> tuple[dict[str, Any], Any]:
    folder = options.work / f"{mode}-n{size}"
    stack = await bring_up(folder, size, options.server(mode))
    with running(stack.emulator, stack.server):
        figures: dict[str, Any] = {"read_mode": mode, "creation": stack.creation}
        if mode == "notify":
            figures["service_accounts"] = await sign_in_service_accounts(stack, -(-size // SHARD))
        # the first full round after subscribing (notify: the slow poll's start) passes
        rounds = 1 if mode == "notify" else options.warm_rounds
        await wait_for_rounds(stack.server, rounds, within=600)
        interval = stack.server.teams_sync()["poll"]["interval_seconds"]
        rate = options.rate or auto_rate(size)
        measured, samples = await asyncio.wait_for(
            measure_hub(stack, rate, options.duration, settle=options.settle(interval)), 900
        )
        figures |= measured
        if mode == "notify":
            figures |= notify_costs(figures, size)
        return figures, samples


def notify_costs(figures: dict[str, Any], size: int) -> dict[str, Any]:
    """What notify mode costs beyond the changes themselves.

    The server's CPU over the window per notification the emulator delivered (an upper
    bound: the slow poll underneath and the stream are in it too), and the renewals
    per user-hour, derived from the subscriptions held and the hub's renewal timing (a
    renewal every LIFETIME - RENEW_BEFORE, 35 min: no short run sees one)."""
    cpu_seconds = figures["cpu_cores_busy"]["server"] * figures["window_seconds"]
    delivered = figures["notifications"]
    renew_every = (LIFETIME - RENEW_BEFORE).total_seconds()
    subscriptions = figures.get("subscriptions", {}).get("count", 0)
    return {
        "server_cpu_us_per_notification": _per(cpu_seconds * 1e6, delivered["sent"]),
        "server_cpu_us_per_notification_post": _per(cpu_seconds * 1e6, delivered["posts"]),
        "renewals_per_user_hour": round(subscriptions * 3600 / renew_every / size, 5),
    }


def _per(total: float, count: int) -> float | None:
    return round(total / count, 1) if count else None


async def run(options: Options) -> tuple[dict[str, Any], dict[str, Any], Any]:
    sizes: dict[str, Any] = {}
    samples: dict[str, Any] = {}
    for size in options.users:
        result: dict[str, Any] = {}
        for mode in ("poll", "notify"):
            result[mode], samples[f"{mode}, {size:,} users"] = await one_mode(options, size, mode)
        poll, notify = result["poll"], result["notify"]
        result["ratios_notify_to_poll"] = {
            "latency_p50": _ratio(notify["latency_seconds"]["p50"], poll["latency_seconds"]["p50"]),
            "latency_p95": _ratio(notify["latency_seconds"]["p95"], poll["latency_seconds"]["p95"]),
            "graph_requests_per_user_hour": _ratio(
                notify["graph_requests_per_user_hour"], poll["graph_requests_per_user_hour"]
            ),
            "server_cpu": _ratio(
                notify["cpu_cores_busy"]["server"], poll["cpu_cores_busy"]["server"]
            ),
        }
        sizes[str(size)] = result
    parameters = {
        "users": options.users,
        "rate_per_second": options.rate or {str(n): auto_rate(n) for n in options.users},
        "duration_seconds": options.duration,
        "service_accounts": {str(n): -(-n // SHARD) for n in options.users},
        "notify_poll_interval_seconds": 60,
    }

    def plot(figure: Any) -> None:
        left, right = figure.subplots(1, 2)
        for label, s in samples.items():
            values = sorted(s["latency"])
            if values:
                fractions = [(i + 1) / len(values) for i in range(len(values))]
                left.plot(values, fractions, label=label)
        left.set_xlabel("Teams change -> stream message (s)")
        left.set_ylabel("fraction of changes")
        left.set_title("Teams -> UC latency by read mode (CDF)")
        left.grid(True, alpha=0.3)
        left.legend()
        labels, values = [], []
        for size, result in sizes.items():
            for mode in ("poll", "notify"):
                labels.append(f"{mode}\n{int(size):,}")
                values.append(result[mode]["graph_requests_per_user_hour"])
        right.bar(labels, values, color=["#4c72b0", "#dd8452"] * len(sizes))
        right.set_ylabel("Graph requests per user-hour (measured)")
        right.set_title("Graph requests")
        right.grid(True, axis="y", alpha=0.3)

    return parameters, {"sizes": sizes}, plot


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or not b:
        return None
    return round(a / b, 3)
