"""Shared by the scenarios: bring up emulator + server with N users, read Graph traffic."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from presencebridge.bench.procs import CpuMeter, EmulatorProcess, ServerOptions, ServerProcess
from presencebridge.bench.workload import (
    Population,
    StreamListener,
    TeamsDriver,
    arrivals_from,
    backoff,
    create_emulator_users,
    create_group,
    create_hub_users,
    emulator_pool,
    latency_figures,
    match,
    seed_store,
)

# Up to this many users are created through the REST API; above it the rest are written
# into the store before the server starts and the last REST_SAMPLE go through the API.
REST_LIMIT = 20_000
REST_SAMPLE = 2_000
GRAPH_LIMIT = 1500  # Graph's presence budget per app and tenant, per 30 s
GRAPH_WINDOW = 30.0
QUICK_POLL = 0.25

LogEntry = tuple[float, float, str, str, int]


@dataclass
class Options:
    users: list[int]
    rate: float | None
    duration: float
    quick: bool
    out: Path
    work: Path  # scratch folder for data, logs, TLS material
    # A scenario's own settings from its command line (e.g. sip-dialog's clean period).
    extra: dict[str, Any] = field(default_factory=dict)

    def settle(self, interval: float) -> float:
        """Seconds to wait after the last change so that it can still arrive."""
        return 0.5 + 1.5 * interval if self.quick else max(3.0, 3 * interval)

    @property
    def warm_rounds(self) -> int:
        """Poll rounds to let pass before measuring."""
        return 1 if self.quick else 2

    def server(self, read_mode: str = "poll", **settings: Any) -> ServerOptions:
        """Server options for this run; quick runs poll every 0.25 s to finish sooner."""
        extra = {"PRESENCEBRIDGE_POLL_MIN_INTERVAL": str(QUICK_POLL)} if self.quick else {}
        return ServerOptions(read_mode=read_mode, extra_env=extra, **settings)

    @property
    def pause(self) -> float:
        """A short quiet moment (before a memory reading, between phases)."""
        return 0.5 if self.quick else 2.0


@dataclass
class Stack:
    emulator: EmulatorProcess
    server: ServerProcess
    population: Population
    creation: dict[str, Any] = field(default_factory=dict)


def new_run_id() -> str:
    return secrets.token_hex(3)


async def bring_up(
    folder: Path,
    size: int,
    options: ServerOptions | None = None,
    mode: str = "telephony_and_presence",
    emulator: EmulatorProcess | None = None,
) -> Stack:
    """Emulator (unless given) and server, the same N users in both, the group in `mode`."""
    if emulator is None:
        # one CA and signing key for all emulators of a run: made once, reused
        emulator = EmulatorProcess(folder / "emulator", folder.parent / "emulator-tls")
        await asyncio.to_thread(emulator.start)
    population = Population(size, new_run_id())
    server = ServerProcess(folder / "server", emulator, options or ServerOptions())
    try:
        creation = await _populate(emulator, server, population, mode)
    except BaseException:
        server.stop()
        emulator.stop()
        raise
    return Stack(emulator, server, population, creation)


async def _populate(
    emulator: EmulatorProcess, server: ServerProcess, population: Population, mode: str
) -> dict[str, Any]:
    size = population.size
    creation: dict[str, Any] = {}
    creation["emulator"] = await create_emulator_users(emulator, population.teams_ids())
    if size <= REST_LIMIT:
        creation["server_start_seconds"] = round(await asyncio.to_thread(server.start), 3)
        create_group(server, mode)
        creation["hub"] = await create_hub_users(server, population, range(size))
    else:
        seeded = size - REST_SAMPLE
        url = server.options.database_url or f"sqlite:///{server.folder / 'data'}/presencebridge.db"
        (server.folder / "data").mkdir(parents=True, exist_ok=True)
        creation["hub_seeded"] = await asyncio.to_thread(seed_store, url, population, seeded, mode)
        creation["server_start_seconds"] = round(await asyncio.to_thread(server.start), 3)
        if mode != "off":
            # a first start: none of these users has been read from Teams yet
            creation["first_start_full_round_seconds"] = round(
                await first_round_after_start(server), 3
            )
        creation["hub"] = await create_hub_users(server, population, range(seeded, size))
        creation["hub"]["population_before"] = seeded
    return creation


async def first_round_after_start(server: ServerProcess, within: float = 900) -> float:
    """Seconds from the server's start until its first full poll round has finished."""
    pause = backoff()
    while time.monotonic() - server.started_at < within:
        status = await asyncio.to_thread(server.teams_sync)
        if status.get("poll", {}).get("rounds", 0) >= 1:
            return time.monotonic() - server.started_at
        await asyncio.sleep(next(pause))
    raise TimeoutError("no poll round finished after the start")


async def cold_start(server: ServerProcess, kill: bool = False) -> dict[str, Any]:
    """Restart the server; how long until it answers and until it has read everyone."""
    await asyncio.to_thread(server.stop, kill)
    healthy = await asyncio.to_thread(server.start)
    reconciled = await first_round_after_start(server)
    return {
        "signal": "SIGKILL" if kill else "SIGTERM",
        "healthz_seconds": round(healthy, 3),
        "first_full_round_seconds": round(reconciled, 3),
        "rss_bytes_after": server.rss(),
    }


HUB_HISTOGRAMS = {
    "event_seconds": "presencebridge_event_seconds",  # one event: lock, rules, durable commit
    "teams_apply_seconds": "presencebridge_teams_sync_seconds",  # one read's readings applied
}


def hub_histograms(server: ServerProcess) -> dict[str, Any]:
    return {key: server.histogram(name) for key, name in HUB_HISTOGRAMS.items()}


def histogram_delta(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """Count, mean and bucket-bound quantiles of what a histogram saw between two readings."""
    count = after["count"] - before["count"]
    if count <= 0:
        return {"count": 0}
    cumulative = sorted(
        (bound, n - before["buckets"].get(bound, 0.0)) for bound, n in after["buckets"].items()
    )

    def bound_of(q: float) -> float | None:
        for bound, n in cumulative:
            if n >= q * count:
                return None if bound == float("inf") else bound
        return None

    return {
        "count": int(count),
        "mean": round((after["sum"] - before["sum"]) / count, 6),
        "p50_at_most": bound_of(0.5),
        "p95_at_most": bound_of(0.95),
        "p99_at_most": bound_of(0.99),
    }


def classify(path: str) -> str:
    """The Graph operation a logged request path stands for."""
    if path.endswith("/getPresencesByUserId"):
        return "getPresencesByUserId"
    if "/presence/" in path:
        return path.rsplit("/", 1)[1]
    if path.endswith("/presence"):
        return "getPresence"
    if "/subscriptions" in path:
        return "subscriptions"
    return "other"


def graph_traffic(entries: Sequence[LogEntry], start: float, end: float) -> dict[str, Any]:
    """Requests per operation in [start, end), and the busiest 30 s of presence requests."""
    inside = [e for e in entries if start <= e[0] < end]
    operations = Counter(classify(e[3]) for e in inside)
    statuses = Counter(str(e[4]) for e in inside)
    presence = [e[0] for e in inside if classify(e[3]) != "subscriptions"]
    reads = [e[0] for e in inside if classify(e[3]) in ("getPresencesByUserId", "getPresence")]
    seconds = max(1e-9, end - start)
    return {
        "window_seconds": round(seconds, 3),
        "requests": dict(operations),
        "statuses": dict(statuses),
        "presence_requests": len(presence),
        "reads": len(reads),
        "reads_per_30s": round(len(reads) / seconds * GRAPH_WINDOW, 1),
        "presence_per_30s": round(len(presence) / seconds * GRAPH_WINDOW, 1),
        "read_share_of_budget": round(len(reads) / seconds * GRAPH_WINDOW / GRAPH_LIMIT, 4),
        "share_of_budget": round(len(presence) / seconds * GRAPH_WINDOW / GRAPH_LIMIT, 4),
        "peak_30s_presence_requests": _peak(presence, GRAPH_WINDOW),
        "peak_30s_reads": _peak(reads, GRAPH_WINDOW),
        "throttled_429": statuses.get("429", 0),
    }


def _peak(times: Sequence[float], window: float) -> int:
    ordered = sorted(times)
    best = low = 0
    for high, t in enumerate(ordered):
        while ordered[low] <= t - window:
            low += 1
        best = max(best, high - low + 1)
    return best


# -- a Teams workload against a running hub -----------------------------------------------------


async def measure_hub(
    stack: Stack, rate: float, duration: float, settle: float
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Teams clients change at `rate`/s for `duration` s; latency to the stream message,
    Graph traffic and CPU meanwhile. `settle` s after the last change count too."""
    emulator, server, population = stack.emulator, stack.server, stack.population
    size = population.size
    listener = StreamListener(server)
    await listener.start()
    key_of = {population.teams_id(i): population.hub_id(i) for i in range(size)}
    driver = TeamsDriver(emulator, population.teams_ids(), key_of, rate)
    before = await asyncio.to_thread(server.teams_sync)
    internals_before = await asyncio.to_thread(hub_histograms, server)
    emulator_before = await asyncio.to_thread(emulator.stats)
    mark = emulator_before["log_length"]
    meter = CpuMeter({"server": server.pid, "emulator": emulator.pid})
    started = time.monotonic()
    await driver.run(duration)
    await asyncio.sleep(settle)
    ended = time.monotonic()
    cpu = meter.read()
    after = await asyncio.to_thread(server.teams_sync)
    internals_after = await asyncio.to_thread(hub_histograms, server)
    emulator_after = await asyncio.to_thread(emulator.stats)
    _, entries = await asyncio.to_thread(emulator.request_log, mark)
    await listener.stop()
    await driver.reset()  # every Teams client idle again, for whatever runs next
    driver.pool.close()
    matched = match(driver.changes, arrivals_from(listener.observations), ended)
    traffic = graph_traffic(entries, started, ended)
    figures = _hub_figures(
        size,
        rate,
        driver,
        listener,
        (before, after),
        (internals_before, internals_after),
        (emulator_before, emulator_after),
        latency_figures(matched),
        traffic,
        ended - started,
    )
    figures["cpu_cores_busy"] = cpu
    figures["window_seconds"] = round(ended - started, 3)
    figures["server_rss_bytes"] = server.rss()
    samples = {
        "at": [a - started for a in matched.at],
        "latency": matched.latencies,
        "started": started,  # time.monotonic() at the first change, for later analysis
    }
    return figures, samples


def _hub_figures(
    size: int,
    rate: float,
    driver: TeamsDriver,
    listener: StreamListener,
    sync: tuple[dict[str, Any], dict[str, Any]],
    internals: tuple[dict[str, Any], dict[str, Any]],
    emulator_stats: tuple[dict[str, Any], dict[str, Any]],
    latency: dict[str, Any],
    traffic: dict[str, Any],
    seconds: float,
) -> dict[str, Any]:
    """What `measure_hub` saw, from the hub's, the emulator's and the stream's counts
    before and after the run."""
    before, after = sync
    emulator_before, emulator_after = emulator_stats
    delivered = {
        k: emulator_after["notifications"][k] - emulator_before["notifications"].get(k, 0)
        for k in ("sent", "failed", "posts")
    }
    figures: dict[str, Any] = {
        "users": size,
        "rate_per_second": rate,
        "changes_sent": len(driver.changes),
        "control_errors": driver.errors,
        "latency_seconds": latency,
        "graph": traffic,
        "graph_requests_per_user_hour": round(
            traffic["presence_requests"] / seconds * 3600 / size, 3
        ),
        "poll": {
            "interval_seconds": after["poll"]["interval_seconds"],
            "rounds": after["poll"]["rounds"] - before["poll"]["rounds"],
            "round_seconds_last": after["poll"]["last_round_seconds"],
        },
        "notifications": delivered,
        "hub_internals": {
            key: histogram_delta(internals[0][key], internals[1][key]) for key in HUB_HISTOGRAMS
        },
        "hub_budget": after["budget"],
        "stream_closed": listener.closed,
        "stream_snapshot": {
            "users": listener.snapshot_users,
            "seconds": round(listener.snapshot_seconds, 3),
        },
    }
    if "subscriptions" in after:
        figures["subscriptions"] = {
            "count": len(after["subscriptions"]),
            "users_covered": sum(s["users"] for s in after["subscriptions"]),
            "errors": after.get("errors", []),
        }
    return figures


async def sign_in_service_accounts(stack: Stack, count: int) -> dict[str, Any]:
    """Notify mode: `count` service accounts, each signed in by device code (SPEC §7a)."""
    emulator, server = stack.emulator, stack.server
    started = time.monotonic()
    pool = emulator_pool(emulator, 4)
    try:
        with server.client() as api:
            for k in range(count):
                account = f"svc-{stack.population.run}-{k}"
                upn = f"{account}@contoso.example"
                await pool.json("POST", "/_emulator/users", {"id": account, "upn": upn})
                begun = api.post("/api/v1/admin/service-accounts", json={"name": f"svc{k}"})
                if begun.status_code != 202:
                    raise RuntimeError(f"service account svc{k}: {begun.status_code} {begun.text}")
                approve = {"user_code": begun.json()["user_code"], "user": account}
                await pool.json("POST", "/_emulator/device/approve", approve)
            deadline = time.monotonic() + 120
            while True:
                accounts = api.get("/api/v1/admin/service-accounts").json()
                if sum(1 for a in accounts if a["status"] == "active") >= count:
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"service accounts not signed in: {accounts}")
                await asyncio.sleep(0.2)
    finally:
        pool.close()
    signed_in = time.monotonic() - started
    covered = await wait_subscribed(server, stack.population.size)
    return {
        "accounts": count,
        "sign_in_seconds": round(signed_in, 3),
        "subscribed_seconds": round(covered, 3),
    }


async def wait_subscribed(server: ServerProcess, users: int, within: float = 600) -> float:
    """Seconds until the hub's subscriptions cover `users` users."""
    started = time.monotonic()
    pause = backoff()
    while time.monotonic() - started < within:
        status = await asyncio.to_thread(server.teams_sync)
        if sum(s["users"] for s in status.get("subscriptions", [])) >= users:
            return time.monotonic() - started
        await asyncio.sleep(next(pause))
    raise TimeoutError(f"subscriptions did not cover {users} users within {within} s")
