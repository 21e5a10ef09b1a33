"""soak: a steady PBX load for a long time; does the server's memory or error rate creep?

N users (default 10,000) sit in one group with `telephony_and_presence` and a Teams id
each; the Graph emulator and the server run as separate processes, the Teams sync in
poll mode. For `--minutes` (default 30) a PBX posts `connected` / `ended` per user
(`POST /api/v1/telephony/events`) at R events/s (default 100), open loop with Poisson
gaps: an event is sent at its moment whether or not earlier ones were answered. Users
take turns in a shuffled order, so each user's calls last about N / R seconds. Beside
it, a slow stream of Teams-client changes in the emulator (1/s) gives the poller
something to read, and one presence stream is held open as a console would.

Every 30 s (quick: 1.25 s; a short run has at least eight windows) one sample: the
server's RSS (and VmHWM), the events sent and how they ended (2xx, other status,
connection error, timeout), the API's answer latency in that window, the server's
/metrics counters (rejected requests, Graph requests and failed Teams writes), the
warnings and errors the server logged, the hub's Graph budget in use and the
emulator's `throttled` count. The verdicts: RSS growth
from the first sample after the warm-up (3 min; at most a fifth of the run) to the end,
target <= 5 %; errors per window, target: no growth. They are reported, never asserted.

Every event is a real change for a synced user, so every event wants a Graph write:
at 100/s that is twice what Graph's budget (1,500 requests per 30 s, 50/s, reads
included) takes. The writer coalesces (it writes a user's latest state, never a stale
one), so Graph's budget stays in full use all run long: the soak runs the hub at the
budget's ceiling on purpose, the place where queues would grow if they could.

`presencebridge bench all` does not run it (it is long); run it with `make soak` or

    python -m presencebridge.bench.scenarios.soak [--minutes M] [--rate R] [--users N] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from presencebridge.bench.procs import (
    ADMIN_TOKEN,
    EmulatorProcess,
    ServerProcess,
    cpu_seconds,
    rss_bytes,
    running,
)
from presencebridge.bench.rawhttp import Pool
from presencebridge.bench.report import summary
from presencebridge.bench.scenarios.common import (
    Options,
    first_round_after_start,
    histogram_delta,
    new_run_id,
)
from presencebridge.bench.scenarios.memory import vm
from presencebridge.bench.workload import (
    Population,
    StreamListener,
    TeamsDriver,
    create_emulator_users,
    seed_store,
    server_pool,
)

NAME = "soak"
DEFAULT_USERS = [10_000]
FULL_USERS = [10_000]
DEFAULT_MINUTES = 30.0
DEFAULT_SECONDS = DEFAULT_MINUTES * 60
DEFAULT_RATE = 100.0
SAMPLE_SECONDS = 30.0
WARMUP_SECONDS = 180.0
TEAMS_RATE = 1.0  # Teams-client changes per second in the emulator
REQUEST_TIMEOUT = 30.0  # an unanswered event counts as an error after this long
RSS_TARGET_PERCENT = 5.0
QUICK_USERS = 500
QUICK_SECONDS = 10.0
QUICK_RATE = 50.0
QUICK_SAMPLE_SECONDS = 1.25
QUICK_TIMEOUT = 10.0
WRITES = ("setPresence", "clearPresence", "setUserPreferredPresence", "clearUserPreferredPresence")
READS = ("getPresencesByUserId", "getPresence")
NOTES = (
    "Targets (RSS growth after warm-up <= 5 %, errors per window not growing) are "
    "reported in figures.verdict, never asserted.",
    "Every event is a change for a synced user; at 100/s the wanted Graph writes are "
    "about twice what Graph's budget takes, so the budget is in full use by design.",
)


# -- the PBX load ---------------------------------------------------------------------------


@dataclass
class Window:
    """What happened to the events of one sampling window (by the time they ended)."""

    sent: int = 0
    ok: int = 0
    statuses: Counter[str] = field(default_factory=Counter)  # non-2xx answers
    connection_errors: int = 0
    timeouts: int = 0
    latencies: list[float] = field(default_factory=list)  # sent -> answered, 2xx only
    late: list[float] = field(default_factory=list)  # how late the generator sent

    @property
    def errors(self) -> int:
        return sum(self.statuses.values()) + self.connection_errors + self.timeouts


class PbxLoad:
    """Open loop: `connected` / `ended` per user at `rate` events/s, Poisson gaps.

    Users take turns in a shuffled (seeded) order; each user alternates between a
    call and idle, with a new call id per call. In-flight requests are only bounded by
    the pool's connections; what waits for a connection is timed from its moment, so
    a stalling server shows in the latency, not in a lower rate.
    """

    def __init__(
        self, pool: Pool, users: list[str], rate: float, timeout: float, seed: int = 13
    ) -> None:
        self.pool = pool
        self.users = list(users)
        random.Random(seed).shuffle(self.users)  # noqa: S311 - load shape, not security
        self.rate = rate
        self.timeout = timeout
        self.seed = seed
        self.window = Window()
        self.calls: dict[str, int] = {}
        self.in_flight: set[asyncio.Task[None]] = set()
        self._next = 0

    def take_window(self) -> Window:
        done, self.window = self.window, Window()
        return done

    async def run(self, duration: float) -> None:
        chance = random.Random(self.seed)  # noqa: S311 - load timing, not security
        started = time.monotonic()
        at = 0.0
        while True:
            at += chance.expovariate(self.rate)
            if at >= duration:
                break
            delay = started + at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(self._event(started + at))
            self.in_flight.add(task)
            task.add_done_callback(self.in_flight.discard)
        if self.in_flight:
            await asyncio.gather(*self.in_flight)

    async def _event(self, due: float) -> None:
        user = self.users[self._next % len(self.users)]
        self._next += 1
        count = self.calls.get(user, 0)
        self.calls[user] = count + 1
        state = "connected" if count % 2 == 0 else "ended"
        body = {"user": user, "call_id": f"s{count // 2}", "state": state}
        sent = time.monotonic()
        self.window.sent += 1
        self.window.late.append(sent - due)
        try:
            async with asyncio.timeout(self.timeout):
                status, _ = await self.pool.request("POST", "/api/v1/telephony/events", body)
        except TimeoutError:
            self.window.timeouts += 1
            return
        except Exception:  # refused, reset, closed mid-answer
            self.window.connection_errors += 1
            return
        if 200 <= status < 300:
            self.window.ok += 1
            self.window.latencies.append(time.monotonic() - sent)
        else:
            self.window.statuses[str(status)] += 1


# -- readings -------------------------------------------------------------------------------


Samples = list[tuple[dict[str, str], float]]
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text: str) -> dict[str, Samples]:
    """Prometheus text -> {name: [(labels, value)]}."""
    result: dict[str, Samples] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        name, _, labels = head.partition("{")
        try:
            number = float(value)
        except ValueError:
            continue
        result.setdefault(name, []).append((dict(_LABEL.findall(labels)), number))
    return result


def _sum(metrics: dict[str, Samples], name: str, **match: Any) -> float:
    total = 0.0
    for labels, value in metrics.get(name, []):
        if all(test(labels.get(key, "")) for key, test in match.items()):
            total += value
    return total


def _failed(status: str, operation: str = "") -> bool:
    """A Graph answer the hub does not take as done. `clearPresence` 404 is not one:
    the session is gone already (expired, or never set because the write it was for
    was superseded before it went out), which is what the clear wanted."""
    if operation == "clearPresence" and status == "404":
        return False
    return not status.startswith("2")


def counters(metrics: dict[str, Samples]) -> dict[str, float]:
    """The server's counters the soak follows (cumulative since the server started)."""
    graph = "presencebridge_graph_requests_total"
    detail: dict[str, float] = {}  # applied events by kind, failed Graph requests by status
    for labels, value in metrics.get("presencebridge_events_total", []):
        if labels.get("result") == "applied":
            key = f"events_applied_{labels.get('kind', '?')}"
            detail[key] = detail.get(key, 0.0) + value
    for labels, value in metrics.get(graph, []):
        operation, status = labels.get("operation", "?"), labels.get("status", "?")
        if not status.startswith("2"):
            kind = "failed" if _failed(status, operation) else "answered"
            key = f"graph_{kind}_{operation}_{status}"
            detail[key] = detail.get(key, 0.0) + value
    return detail | {
        "rejected_requests": _sum(metrics, "presencebridge_rejected_requests_total"),
        "events_rejected": _sum(
            metrics, "presencebridge_events_total", result=lambda r: r == "rejected"
        ),
        "events_applied": _sum(
            metrics, "presencebridge_events_total", result=lambda r: r == "applied"
        ),
        "graph_requests": _sum(metrics, graph),
        "graph_writes": _sum(metrics, graph, operation=lambda o: o in WRITES),
        "graph_write_failures": sum(
            value
            for labels, value in metrics.get(graph, [])
            if labels.get("operation") in WRITES
            and _failed(labels.get("status", ""), labels["operation"])
        ),
        "graph_reads": _sum(metrics, graph, operation=lambda o: o in READS),
        "graph_read_failures": _sum(metrics, graph, operation=lambda o: o in READS, status=_failed),
        "graph_429": _sum(metrics, graph, status=lambda s: s == "429"),
        "graph_clear_already_gone": _sum(
            metrics, graph, operation=lambda o: o == "clearPresence", status=lambda s: s == "404"
        ),
    }


def event_histogram(metrics: dict[str, Samples]) -> dict[str, Any]:
    """presencebridge_event_seconds as `histogram_delta` takes it."""
    name = "presencebridge_event_seconds"
    buckets: dict[float, float] = {}
    for labels, value in metrics.get(name + "_bucket", []):
        le = labels.get("le", "+Inf")
        bound = float("inf") if le == "+Inf" else float(le)
        buckets[bound] = buckets.get(bound, 0.0) + value
    return {
        "buckets": buckets,
        "sum": _sum(metrics, name + "_sum"),
        "count": _sum(metrics, name + "_count"),
    }


class LogWatch:
    """Warnings and errors the server logged since the last look (its log file)."""

    LEVELS = (" WARNING ", " ERROR ", " CRITICAL ")

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.messages: Counter[str] = Counter()  # "LEVEL logger: message" with digits as #

    def read(self) -> dict[str, int]:
        counts = {"warnings": 0, "errors": 0, "tracebacks": 0}
        with contextlib.suppress(FileNotFoundError), self.path.open("rb") as log:
            log.seek(self.offset)
            chunk = log.read()
            end = chunk.rfind(b"\n") + 1  # a line still being written waits for next time
            self.offset += end
            for raw in chunk[:end].decode(errors="replace").splitlines():
                if raw.startswith("Traceback"):
                    counts["tracebacks"] += 1
                    continue
                level = next((lv for lv in self.LEVELS if lv in raw[:20]), None)
                if level is None:
                    continue
                counts["errors" if level != " WARNING " else "warnings"] += 1
                text = raw[9:].split(" ", 1)[0] + " " + raw[9:].split(None, 1)[-1]
                self.messages[re.sub(r"\d+", "#", text)[:160]] += 1
        return counts


@dataclass
class Probe:
    """Takes the samples: everything but the load's own window comes from outside."""

    emulator: EmulatorProcess
    server: ServerProcess
    started: float = 0.0
    previous: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.log = LogWatch(self.server.log_path)
        self.pids = {
            "server": self.server.pid,
            "emulator": self.emulator.pid,
            "load_generator": os.getpid(),
        }

    def read(self) -> dict[str, Any]:
        """The cumulative readings (blocking: run it in a thread)."""
        with httpx.Client(
            base_url=self.server.url,
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            timeout=60,
        ) as client:
            metrics = parse_metrics(client.get("/metrics").text)
            sync = client.get("/api/v1/admin/teams-sync").json()
        emulator = self.emulator.stats()
        return {
            "monotonic": time.monotonic(),
            "cpu": {name: cpu_seconds(pid) for name, pid in self.pids.items()},
            "vm": vm(self.server.pid),
            "emulator_rss_bytes": rss_bytes(self.emulator.pid),
            "load_generator_rss_bytes": rss_bytes(os.getpid()),
            "counters": counters(metrics),
            "event_seconds": event_histogram(metrics),
            "sync": sync,
            "emulator": emulator,
            "log": self.log.read(),
        }

    async def sample(
        self, window: Window, teams: TeamsDriver, stream: StreamListener
    ) -> dict[str, Any]:
        now = await asyncio.to_thread(self.read)
        change = Change(self.previous or now, now)
        first = not self.previous
        teams_errors = teams.errors - change.before.get("teams_errors", 0)
        teams_sent = len(teams.changes) - change.before.get("teams_changes", 0)
        now["teams_errors"], now["teams_changes"] = teams.errors, len(teams.changes)
        messages = len(stream.observations)
        stream.observations.clear()  # counted per window; a long run keeps none of them
        late = sorted(window.late)
        sample = {
            "t": round(now["monotonic"] - self.started, 3),
            "window_seconds": 0.0 if first else round(change.seconds, 3),
            "rss_bytes": now["vm"]["VmRSS"],
            "hwm_bytes": now["vm"]["VmHWM"],
            "rss_anon_bytes": now["vm"].get("RssAnon"),
            "emulator_rss_bytes": now["emulator_rss_bytes"],
            "load_generator_rss_bytes": now["load_generator_rss_bytes"],
            "cpu_cores_busy": change.cpu(self.pids),
            "events": window_events(window, 0.0 if first else change.seconds),
            "latency_seconds": summary(window.latencies),
            "generator_late_seconds_max": round(late[-1], 4) if late else None,
            "server_event_seconds": histogram_delta(
                change.before["event_seconds"], now["event_seconds"]
            ),
            "server": change.counters(),
            "server_log": now["log"],
            "teams_changes": {"sent": teams_sent, "errors": teams_errors},
            "stream": {"messages": messages, "closed": stream.closed},
            **change.graph(),
        }
        self.previous = now
        return sample


@dataclass(frozen=True)
class Change:
    """Two cumulative readings (`Probe.read`), a window apart: most of a sample is what
    changed between them. The first sample has no earlier reading and compares with
    itself."""

    before: dict[str, Any]
    now: dict[str, Any]

    @property
    def seconds(self) -> float:
        seconds: float = self.now["monotonic"] - self.before["monotonic"]
        return max(1e-9, seconds)

    def cpu(self, pids: dict[str, int]) -> dict[str, float]:
        """Cores busy per process over the window."""
        before, now = self.before["cpu"], self.now["cpu"]
        return {name: round((now[name] - before[name]) / self.seconds, 3) for name in pids}

    def counters(self) -> dict[str, int]:
        """The server's counters in this window (the server reports them since its start)."""
        before = self.before["counters"]
        return {
            key: int(value - before.get(key, 0.0)) for key, value in self.now["counters"].items()
        }

    def graph(self) -> dict[str, Any]:
        """Graph's budget as the hub and the emulator each count it, and the poller's
        rounds: whether the hub keeps within the budget while the load wants more."""
        before, now = self.before, self.now
        budget = now["sync"].get("budget", {})
        poll, poll_before = now["sync"].get("poll", {}), before["sync"].get("poll", {})
        emulator_budget = now["emulator"]["budget"]
        return {
            "hub_budget": {
                "used": budget.get("used"),
                "limit": budget.get("limit"),
                "spent": budget.get("spent_total", 0)
                - before["sync"].get("budget", {}).get("spent_total", 0),
            },
            "poll": {
                "rounds": poll.get("rounds", 0) - poll_before.get("rounds", 0),
                "last_round_seconds": poll.get("last_round_seconds"),
            },
            "emulator": {
                "budget_used": emulator_budget["used_now"],
                "budget_peak": emulator_budget["peak"],
                "throttled": now["emulator"]["throttled"] - before["emulator"]["throttled"],
                "throttled_total": now["emulator"]["throttled"],
            },
        }


def window_events(window: Window, seconds: float) -> dict[str, Any]:
    """How the window's events ended; `seconds` is 0 for the first sample, which has no
    window before it and so no rate."""
    return {
        "sent": window.sent,
        "ok": window.ok,
        "errors": window.errors,
        "non_2xx": dict(window.statuses),
        "connection_errors": window.connection_errors,
        "timeouts": window.timeouts,
        "per_second": round(window.ok / seconds, 1) if seconds else 0.0,
    }


# -- the run ----------------------------------------------------------------------------------


def warmup_seconds(duration: float) -> float:
    """3 minutes, but at most a fifth of the run (short runs still get a verdict)."""
    return min(WARMUP_SECONDS, duration / 5)


def failures(sample: dict[str, Any]) -> int:
    """What the server itself counted as going wrong in a window."""
    server = sample["server"]
    return int(
        server["rejected_requests"]
        + server["events_rejected"]
        + server["graph_write_failures"]
        + server["graph_read_failures"]
        + sample["server_log"]["errors"]
        + sample["server_log"]["tracebacks"]
        + sample["emulator"]["throttled"]
    )


def verdict(samples: list[dict[str, Any]], warmup: float) -> dict[str, Any]:
    """RSS growth after the warm-up and whether errors per window grew; targets beside."""
    windows = [s for s in samples[1:] if s["window_seconds"] > 0]
    after = [s for s in samples if s["t"] >= warmup] or samples[-1:]
    base, last = after[0], samples[-1]
    growth = (last["rss_bytes"] - base["rss_bytes"]) / base["rss_bytes"] * 100
    # least squares over the samples after the warm-up: MiB per hour
    slope = None
    if len(after) >= 3:
        ts = [s["t"] for s in after]
        ys = [s["rss_bytes"] / 2**20 for s in after]
        mt, my = sum(ts) / len(ts), sum(ys) / len(ys)
        var = sum((t - mt) ** 2 for t in ts)
        if var > 0:
            per_second = sum((t - mt) * (y - my) for t, y in zip(ts, ys, strict=True)) / var
            slope = round(per_second * 3600, 2)
    measured = [s for s in windows if s["t"] > base["t"]]
    half = len(measured) // 2
    errors = [s["events"]["errors"] + s["teams_changes"]["errors"] for s in measured]
    server = [failures(s) for s in measured]
    first, second = sum(errors[:half]), sum(errors[half:])
    first_s, second_s = sum(server[:half]), sum(server[half:])
    return {
        "warmup_seconds": round(warmup, 1),
        "rss_after_warmup_bytes": base["rss_bytes"],
        "rss_after_warmup_at_seconds": base["t"],
        "rss_end_bytes": last["rss_bytes"],
        "rss_max_bytes": max(s["rss_bytes"] for s in samples),
        "hwm_end_bytes": last["hwm_bytes"],
        "rss_growth_percent": round(growth, 2),
        "rss_slope_mib_per_hour": slope,
        "rss_target_percent": RSS_TARGET_PERCENT,
        "rss_met": growth <= RSS_TARGET_PERCENT,
        "windows_after_warmup": len(measured),
        "errors_total": sum(s["events"]["errors"] + s["teams_changes"]["errors"] for s in windows),
        "errors_after_warmup": {"first_half": first, "second_half": second},
        "server_failures_total": sum(failures(s) for s in windows),
        "server_failures_after_warmup": {"first_half": first_s, "second_half": second_s},
        "errors_target": "no growth: the second half of the windows after the warm-up has no "
        "more errors (or server failures) than the first",
        "errors_met": second <= first and second_s <= first_s,
    }


async def soak(options: Options, size: int, interval: float) -> dict[str, Any]:
    rate = options.rate or (QUICK_RATE if options.quick else DEFAULT_RATE)
    duration = options.duration
    folder = options.work / f"n{size}"
    emulator = EmulatorProcess(folder / "emulator", options.work / "emulator-tls")
    await asyncio.to_thread(emulator.start)
    server = ServerProcess(folder / "server", emulator, options.server("poll"))
    population = Population(size, new_run_id())
    with running(emulator, server):
        creation = await seed_and_start(emulator, server, population)
        timeout = QUICK_TIMEOUT if options.quick else REQUEST_TIMEOUT
        rig = await Rig.start(emulator, server, population, rate, timeout)
        try:
            samples, aborted = await drive(rig, duration, interval)
        finally:
            await rig.close()
        return {
            "aborted": aborted,
            "users": size,
            "rate_per_second": rate,
            "duration_seconds": duration,
            "sample_seconds": interval,
            "creation": creation,
            "events_sent": sum(s["events"]["sent"] for s in samples),
            "events_ok": sum(s["events"]["ok"] for s in samples),
            "teams_changes_sent": len(rig.teams.changes),
            "stream_closed": rig.stream.closed,
            "server_totals": {
                key: sum(s["server"].get(key, 0) for s in samples) for key in samples[-1]["server"]
            },
            "server_log_messages": dict(rig.probe.log.messages.most_common(20)),
            "verdict": verdict(samples, warmup_seconds(duration)),
            "samples": samples,
        }


async def seed_and_start(
    emulator: EmulatorProcess, server: ServerProcess, population: Population
) -> dict[str, Any]:
    """The users go straight into the store before the server starts (10,000 through the
    API would take long), and the soak waits for the first full poll round, so that the
    load meets a server that has read everyone."""
    creation: dict[str, Any] = {}
    creation["emulator"] = await create_emulator_users(emulator, population.teams_ids())
    data = server.folder / "data"
    data.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{data}/presencebridge.db"
    creation["hub_seeded"] = await asyncio.to_thread(
        seed_store, url, population, population.size, "telephony_and_presence"
    )
    creation["server_start_seconds"] = round(await asyncio.to_thread(server.start), 3)
    creation["first_full_round_seconds"] = round(await first_round_after_start(server), 3)
    return creation


@dataclass(frozen=True)
class Rig:
    """What runs beside the server during a soak, kept together so that it is closed
    together however the run ends: the PBX load, the Teams changes, a console's
    stream, and the probe that samples them."""

    load: PbxLoad
    pool: Pool
    teams: TeamsDriver
    stream: StreamListener
    probe: Probe

    @classmethod
    async def start(
        cls,
        emulator: EmulatorProcess,
        server: ServerProcess,
        population: Population,
        rate: float,
        request_timeout: float,
    ) -> Rig:
        stream = StreamListener(server)
        await stream.start()
        key_of = {population.teams_id(i): population.hub_id(i) for i in range(population.size)}
        teams = TeamsDriver(emulator, population.teams_ids(), key_of, TEAMS_RATE)
        pool = server_pool(server, 64)
        load = PbxLoad(pool, population.hub_ids(), rate, request_timeout)
        return cls(load, pool, teams, stream, Probe(emulator, server))

    async def close(self) -> None:
        await self.stream.stop()
        self.pool.close()
        self.teams.pool.close()

    async def sample(self) -> dict[str, Any]:
        return await self.probe.sample(self.load.take_window(), self.teams, self.stream)


async def drive(
    rig: Rig, duration: float, interval: float
) -> tuple[list[dict[str, Any]], str | None]:
    """The load for `duration` s, a sample every `interval` s; the samples and why the run
    stopped early, if it did. A dead or hung server is a finding, so its samples are
    kept (unless there are too few to say anything)."""
    samples: list[dict[str, Any]] = []
    tasks: list[asyncio.Task[None]] = []
    aborted = None
    try:
        rig.probe.started = started = time.monotonic()
        samples.append(await rig.sample())
        tasks += [
            asyncio.create_task(rig.load.run(duration)),
            asyncio.create_task(rig.teams.run(duration)),
        ]
        k = 1
        while started + k * interval < started + duration - interval / 4:
            await asyncio.sleep(max(0.0, started + k * interval - time.monotonic()))
            samples.append(await rig.sample())
            _progress(samples[-1], duration)
            k += 1
        await asyncio.gather(*tasks)
        samples.append(await rig.sample())
        _progress(samples[-1], duration)
    except Exception as error:
        aborted = _aborted(error, rig.probe.server)
        print(f"  soak aborted: {aborted}", file=sys.stderr, flush=True)
        if len(samples) < 2:
            raise
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return samples, aborted


def _aborted(error: Exception, server: ServerProcess) -> str:
    """Why the run stopped early: the error, the server's exit status, its last log lines."""
    code = server.process.poll() if server.process is not None else None
    state = "running" if code is None else f"exited with {code}"
    lines = [x for x in server.log_tail(5000).splitlines() if "uvicorn.access" not in x]
    tail = "\n".join(lines[-15:])
    return f"{error!r}; server {state}; its log ends (access log left out):\n{tail}"


def _progress(sample: dict[str, Any], duration: float) -> None:
    """One line per sample on stderr: a 30-minute run should show it is alive."""
    p99 = sample["latency_seconds"]["p99"]
    print(
        f"  soak {sample['t']:7.0f}/{duration:.0f} s: RSS {sample['rss_bytes'] / 2**20:6.1f} MiB, "
        f"{sample['events']['sent']} events, {sample['events']['errors']} errors, "
        f"p99 {'-' if p99 is None else f'{p99 * 1000:.0f} ms'}, "
        f"Graph budget {sample['hub_budget']['used']}/{sample['hub_budget']['limit']}",
        file=sys.stderr,
        flush=True,
    )


async def run(options: Options) -> tuple[dict[str, Any], dict[str, Any], Any]:
    (size,) = options.users
    interval = _interval(options)
    figures = await soak(options, size, interval)
    parameters = {
        "users": size,
        "rate_per_second": figures["rate_per_second"],
        "duration_seconds": options.duration,
        "sample_seconds": interval,
        "warmup_seconds": figures["verdict"]["warmup_seconds"],
        "teams_changes_per_second": TEAMS_RATE,
        "request_timeout_seconds": QUICK_TIMEOUT if options.quick else REQUEST_TIMEOUT,
        "read_mode": "poll",
        "group_mode": "telephony_and_presence",
        "events": "connected / ended alternating per user, users in a shuffled round robin, "
        "Poisson gaps, open loop",
        "database": "sqlite",
        "users_via": "store (bulk insert before start); emulator users via POST /_emulator/users",
    }

    def plot(figure: Any) -> None:
        plot_soak(figure, figures)

    return parameters, figures, plot


def plot_soak(figure: Any, figures: dict[str, Any]) -> None:
    """Four panels over the run's minutes, one per question: does RSS creep, do errors
    grow, does latency drift, does the hub keep to Graph's budget?"""
    (rss, errors), (latency, graph) = figure.subplots(2, 2)
    samples = figures["samples"]
    windows = samples[1:]
    at = [s["t"] / 60 for s in windows]
    _plot_rss(rss, samples, figures["verdict"])
    _plot_errors(errors, windows, at, figures["verdict"])
    _plot_latency(latency, windows, at)
    _plot_graph(graph, windows, at)


def _plot_rss(ax: Any, samples: list[dict[str, Any]], v: dict[str, Any]) -> None:
    """The warm-up is shaded and the target drawn from its end: growth before it is expected."""
    minutes = [s["t"] / 60 for s in samples]
    base = v["rss_after_warmup_bytes"] / 2**20
    ax.plot(minutes, [s["rss_bytes"] / 2**20 for s in samples], marker=".", label="server")
    ax.axvspan(0, v["warmup_seconds"] / 60, color="grey", alpha=0.15, label="warm-up")
    ax.axhline(base * (1 + RSS_TARGET_PERCENT / 100), color="red", linestyle=":", label="+5 %")
    ax.set_title(f"server RSS: {v['rss_growth_percent']:+.1f} % after warm-up")
    ax.set_xlabel("minutes")
    ax.set_ylabel("MiB")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)


def _plot_errors(
    ax: Any, windows: list[dict[str, Any]], at: list[float], v: dict[str, Any]
) -> None:
    """What the load saw beside what the server counted: either can fail without the other."""
    width = max(0.01, (at[1] - at[0]) * 0.8 if len(at) > 1 else 0.1)
    sent_errors = [s["events"]["errors"] for s in windows]
    server_failures = [failures(s) for s in windows]
    ax.bar(at, sent_errors, width=width, label="event errors (non-2xx, conn., timeout)")
    ax.plot(at, server_failures, color="red", marker=".", label="server failures")
    ax.set_title(f"errors per window ({v['errors_total']} in all)")
    ax.set_xlabel("minutes")
    ax.set_ylim(bottom=0, top=max(1, *sent_errors, *server_failures) * 1.2)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)


def _plot_latency(ax: Any, windows: list[dict[str, Any]], at: list[float]) -> None:
    """p50 and p99 per window on a log scale: a queue that grows shows as a rising p99."""
    for q, style in (("p50", "-"), ("p99", "--")):
        values = [(s["latency_seconds"][q] or float("nan")) * 1000 for s in windows]
        ax.plot(at, values, style, marker=".", label=f"API answer {q}")
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(lambda y, _: f"{y:g}")
    ax.yaxis.set_minor_formatter(lambda y, _: "")
    ax.set_title("event latency per window")
    ax.set_xlabel("minutes")
    ax.set_ylabel("ms (log)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)


def _plot_graph(ax: Any, windows: list[dict[str, Any]], at: list[float]) -> None:
    """The hub's own count beside the emulator's: they should agree, and stay under the limit."""
    ax.plot(at, [s["hub_budget"]["used"] for s in windows], marker=".", label="hub: used")
    ax.plot(at, [s["emulator"]["budget_used"] for s in windows], marker=".", label="emulator: used")
    ax.plot(at, [s["emulator"]["throttled"] for s in windows], label="throttled (429)")
    ax.axhline(1500, color="grey", linestyle="--", label="Graph limit")
    ax.set_title("Graph budget in the last 30 s")
    ax.set_xlabel("minutes")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)


def _interval(options: Options) -> float:
    """30 s (quick: 1.25 s); at least eight windows in a short run."""
    if options.quick:
        return QUICK_SAMPLE_SECONDS
    return min(SAMPLE_SECONDS, max(1.0, options.duration / 8))


def main(argv: list[str] | None = None) -> None:
    from presencebridge import bench

    parser = argparse.ArgumentParser(
        prog="python -m presencebridge.bench.scenarios.soak",
        description="Soak: PBX events at a steady rate for a long time; RSS and errors.",
    )
    parser.add_argument("--minutes", type=float, default=DEFAULT_MINUTES)
    parser.add_argument("--rate", type=float, default=None, help="PBX events/s [100]")
    parser.add_argument("--users", type=int, default=None, help="users [10000]")
    parser.add_argument(
        "--quick", action="store_true", help=f"{QUICK_USERS} users, {QUICK_SECONDS:g} s"
    )
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    parser.add_argument("--keep", action="store_true", help="keep the processes' folder")
    args = parser.parse_args(argv)
    users = args.users or (QUICK_USERS if args.quick else DEFAULT_USERS[0])
    seconds = QUICK_SECONDS if args.quick else args.minutes * 60
    print(f"bench soak: {users:,} users, {seconds / 60:g} min …", file=sys.stderr, flush=True)
    path = bench.run(
        NAME, [users], args.rate, seconds, quick=args.quick, out=args.out, keep=args.keep
    )
    for line in bench.headline(path):
        print(f"  {line}")
    print(f"  results: {path} and {path.with_suffix('.png')}")
    if json.loads(path.read_text())["figures"]["aborted"]:
        sys.exit("soak aborted before its end (see figures.aborted)")


if __name__ == "__main__":
    main()
