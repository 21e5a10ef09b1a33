"""uc-to-teams: PBX events at a rate; how soon does Graph have the hub's session?

What is timed is the hub's share: from `time.monotonic()` right before the load
generator POSTs a PBX event, to the moment the emulator answers the hub's Graph write
for that user (`setPresence` for `connected`, `clearPresence` for `ended`), taken
from the emulator's request log (CLOCK_MONOTONIC is shared by all processes). It
covers the API, the durable commit, the writer's queue, the budget, the token and
the HTTPS request. It does not cover Teams clients catching up with Graph, which
Microsoft says can take minutes and which no hub can change.

Graph allows 1,500 presence requests per 30 s per tenant (50/s, reads included), so
an event rate whose Teams-relevant changes exceed that is bound by Graph, not the
hub. The scenario therefore runs three phases:

* `hub-share`: R events/s over a population where one user in five syncs with
  Teams (the rest are PBX extensions without Teams sync), so Graph's budget is not
  what limits;
* `near-budget`: R/4 events/s, every user synced (writes near Graph's limit);
* `over-budget`: R events/s, every user synced: more writes than Graph takes.
"""

from __future__ import annotations

import asyncio
import bisect
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from presencebridge.bench.procs import CpuMeter, EmulatorProcess, running
from presencebridge.bench.report import frame, summary
from presencebridge.bench.scenarios.common import (
    LogEntry,
    Options,
    Stack,
    bring_up,
    graph_traffic,
)
from presencebridge.bench.workload import PbxDriver, PbxEvent, create_group, create_hub_users

NAME = "uc-to-teams"
DEFAULT_USERS = [1_000, 10_000]
FULL_USERS = [1_000, 10_000]
DEFAULT_RATE = 200.0
DEFAULT_SECONDS = 15.0
OVER_SECONDS = 40.0
UNSYNCED_PER_SYNCED = 4
WRITES = ("setPresence", "clearPresence", "setUserPreferredPresence", "clearUserPreferredPresence")


def match_writes(
    events: Sequence[PbxEvent], entries: Sequence[LogEntry], teams_of: dict[str, str], end: float
) -> tuple[list[float], list[float], int]:
    """Per effective event, the time until the emulator answered the write it caused.

    The write must have arrived after the event was sent and before the user's next
    effective event; otherwise the writer coalesced the event with a later one.
    """
    writes: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
    for arrived, answered, method, path, status in entries:
        parts = path.split("/")  # /v1.0/users/{id}/presence/{action}
        if method == "POST" and len(parts) == 6 and parts[5] in WRITES and status < 300:
            writes[(parts[3], parts[5])].append((arrived, answered))
    for found in writes.values():
        found.sort()
    effective = [e for e in events if e.write is not None]
    by_user: dict[str, list[PbxEvent]] = defaultdict(list)
    for event in effective:
        by_user[event.user].append(event)
    latencies: list[float] = []
    at: list[float] = []
    coalesced = 0
    for user, own in by_user.items():
        own.sort(key=lambda e: e.at)
        for k, event in enumerate(own):
            assert event.write is not None
            limit = own[k + 1].at if k + 1 < len(own) else end
            found = writes.get((teams_of[user], event.write), [])
            j = bisect.bisect_left(found, (event.at, 0.0))
            if j < len(found) and found[j][0] < limit:
                latencies.append(found[j][1] - event.at)
                at.append(event.at)
            else:
                coalesced += 1
    return latencies, at, coalesced


async def drain(
    emulator: EmulatorProcess, mark: int, quiet: float = 2.0, cap: float = 180
) -> float:
    """Wait until the hub has sent no Graph write for `quiet` seconds; returns the wait."""
    started = time.monotonic()
    last_count = -1
    last_change = started
    while time.monotonic() - started < cap:
        _, entries = await asyncio.to_thread(emulator.request_log, mark)
        count = sum(1 for e in entries if e[3].rsplit("/", 1)[-1] in WRITES)
        if count != last_count:
            last_count, last_change = count, time.monotonic()
        elif time.monotonic() - last_change >= quiet:
            break
        await asyncio.sleep(0.25)
    return time.monotonic() - started


async def phase(
    name: str,
    emulator: EmulatorProcess,
    driver: PbxDriver,
    duration: float,
    teams_of: dict[str, str],
    server_pid: int,
    quiet: float,
) -> tuple[dict[str, Any], dict[str, Any]]:
    mark = await asyncio.to_thread(emulator.log_mark)
    meter = CpuMeter({"server": server_pid, "emulator": emulator.pid})
    started = time.monotonic()
    await driver.run(duration)
    sent = time.monotonic()
    cpu = meter.read()
    waited = await drain(emulator, mark, quiet)
    ended = time.monotonic()
    _, entries = await asyncio.to_thread(emulator.request_log, mark)
    latencies, at, coalesced = match_writes(driver.events, entries, teams_of, ended)
    traffic = graph_traffic(entries, started, ended)
    writes = sum(traffic["requests"].get(w, 0) for w in WRITES)
    effective = sum(1 for e in driver.events if e.write is not None)
    acks = [e.answered - e.at for e in driver.events if e.status == 200]
    figures = {
        "rate_per_second": driver.rate,
        "users": len(driver.users),
        "synced_users": sum(1 for _, synced in driver.users if synced),
        "events_sent": len(driver.events),
        "events_per_second_sent": round(len(driver.events) / (sent - started), 1),
        "event_errors": driver.errors,
        "effective_changes": effective,
        "graph_writes": writes,
        "graph_writes_per_effective_change": round(writes / effective, 4) if effective else None,
        "coalesced_changes": coalesced,
        "hub_share_seconds": summary(latencies),
        "api_ack_seconds": summary(acks),
        "drain_seconds": round(waited, 3),
        "graph": traffic,
        "cpu_cores_busy_while_sending": cpu,
    }
    await driver.finish_calls()
    await drain(emulator, await asyncio.to_thread(emulator.log_mark), quiet)
    return figures, {"at": [a - started for a in at], "latency": latencies, "name": name}


@dataclass(frozen=True)
class Users:
    """Who the PBX events go to: only the synced users have a Teams id to write to."""

    teams_of: dict[str, str]  # hub id -> Teams id, synced users only
    synced: list[tuple[str, bool]]
    mixed: list[tuple[str, bool]]  # one synced user, then UNSYNCED_PER_SYNCED without sync


async def add_unsynced(stack: Stack) -> Users:
    """Give every synced user UNSYNCED_PER_SYNCED PBX extensions without Teams sync, so
    that the hub-share phase is not bound by Graph's budget."""
    server, population = stack.server, stack.population
    size = population.size
    create_group(server, "off", "bench-off")
    extra = range(size, size * (1 + UNSYNCED_PER_SYNCED))
    stack.creation["hub_unsynced"] = await create_hub_users(
        server, population, extra, group="bench-off", teams=False
    )
    teams_of = {population.hub_id(i): population.teams_id(i) for i in range(size)}
    synced = [(population.hub_id(i), True) for i in range(size)]
    unsynced = [(population.hub_id(i), False) for i in extra]
    # Interleaved, so that one event in five goes to a synced user.
    mixed = []
    for i, user in enumerate(synced):
        mixed.append(user)
        mixed += unsynced[i * UNSYNCED_PER_SYNCED : (i + 1) * UNSYNCED_PER_SYNCED]
    return Users(teams_of, synced, mixed)


async def run_size(
    options: Options, size: int, rate: float
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The three phases against one server; the samples are keyed for the plot's legend."""
    stack = await bring_up(options.work / f"n{size}", size, options.server("poll"))
    emulator, server = stack.emulator, stack.server
    samples: dict[str, Any] = {}
    with running(emulator, server):
        users = await add_unsynced(stack)
        figures: dict[str, Any] = {"creation": stack.creation, "phases": {}}
        # Graph's budget is a 30 s window: over-budget must run longer to meet it
        long = options.duration if options.quick else max(options.duration, OVER_SECONDS)
        plan = [
            ("hub-share", users.mixed, rate, options.duration),
            ("near-budget", users.synced, rate / 4, options.duration),
            ("over-budget", users.synced, rate, long),
        ]
        for name, targets, phase_rate, seconds in plan:
            driver = PbxDriver(server, targets, phase_rate)
            try:
                result, sample = await phase(
                    name, emulator, driver, seconds, users.teams_of, server.pid, options.pause
                )
            finally:
                driver.close()
            figures["phases"][name] = result
            samples[f"{size:,} users, {name} ({phase_rate:g}/s)"] = sample
        figures["server_rss_bytes"] = server.rss()
    return figures, samples


async def run(options: Options) -> tuple[dict[str, Any], dict[str, Any], Any]:
    rate = options.rate or (20.0 if options.quick else DEFAULT_RATE)
    sizes: dict[str, Any] = {}
    samples: dict[str, Any] = {}
    for size in options.users:
        sizes[str(size)], size_samples = await run_size(options, size, rate)
        samples |= size_samples
    parameters = {
        "users_synced": options.users,
        "users_unsynced_per_synced": UNSYNCED_PER_SYNCED,
        "rate_per_second": rate,
        "duration_seconds_per_phase": options.duration,
        "cycle": ["ringing", "connected", "ended"],
        "phases": {
            "hub-share": f"{rate:g}/s over all users (1 in {1 + UNSYNCED_PER_SYNCED} synced)",
            "near-budget": f"{rate / 4:g}/s over synced users",
            "over-budget": f"{rate:g}/s over synced users, at least {OVER_SECONDS:g} s",
        },
        "read_mode": "poll",
    }

    def plot(figure: Any) -> None:
        plot_latencies(figure, samples)

    return parameters, {"sizes": sizes}, plot


def plot_latencies(figure: Any, samples: dict[str, Any]) -> None:
    """The CDF shows the spread; the scatter shows whether latency grows during a phase."""
    left, right = figure.subplots(1, 2)
    for label, s in samples.items():
        values = sorted(s["latency"])
        if values:
            fractions = [(i + 1) / len(values) for i in range(len(values))]
            left.plot(values, fractions, label=label)
        right.scatter(s["at"], s["latency"], s=3, label=label)
    frame(left, "UC -> Teams, the hub's share (CDF)",
          "PBX event POST -> Graph write answered (s, log)", "fraction of effective changes",
          xscale="log")  # fmt: skip
    frame(right, "each effective change", "time into the phase (s)", "latency (s, log)",
          yscale="log")  # fmt: skip
