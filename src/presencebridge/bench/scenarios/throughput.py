"""throughput: the most PBX events per second the server takes with durable commits.

Every event is a real change (a call connects or ends), so every acknowledged event
is one committed transaction: the hub answers 2xx only after its commit (SQLite in
WAL mode with synchronous=FULL; PostgreSQL with synchronous_commit=on). Closed
loop: C clients each send their next event as soon as the previous one is answered,
at several C; "sustained" is the best rate over a whole measurement window with no
errors. The Teams sync is off (no Graph): this is the hub and its store alone.

Two ways in: one event per request (`POST /api/v1/telephony/events`), and batches
(`POST /api/v1/telephony/events/batch`), the way a PBX connector that sees many
calls at once sends them.

After each backend's run the server is killed with SIGKILL and restarted, and every
user's telephony state is compared with the last event the server acknowledged for
that user: nothing acknowledged may be lost.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

from presencebridge.bench.procs import (
    CLOCK_TICKS,
    CpuMeter,
    ServerProcess,
    cpu_seconds,
    postgres_settings,
    running,
    throwaway_postgres,
)
from presencebridge.bench.rawhttp import Pool
from presencebridge.bench.report import frame, summary
from presencebridge.bench.scenarios.common import Options, new_run_id
from presencebridge.bench.workload import Population, create_group, create_hub_users, server_pool

NAME = "throughput"
DEFAULT_USERS = [1_000, 10_000]
FULL_USERS = [1_000, 10_000]
DEFAULT_SECONDS = 8.0
CONCURRENCY = (8, 32, 128)
QUICK_CONCURRENCY = (8,)
BATCH_SIZE = 100
BATCH_CONCURRENCY = (4, 16)
QUICK_BATCH_CONCURRENCY = (4,)


class ClosedLoop:
    """C clients, each with its own users, alternating connected / ended per user."""

    def __init__(self, server: ServerProcess, users: list[str]) -> None:
        self.server = server
        self.users = users
        self.calls: dict[str, int] = {}
        self.acknowledged: dict[str, str] = {}  # user -> last acknowledged state

    async def run(
        self, clients: int, seconds: float, batch: int = 1, warmup: float = 1.0
    ) -> dict[str, Any]:
        pool = server_pool(self.server, clients)
        try:
            return await self._run(pool, clients, seconds, batch, warmup)
        finally:
            pool.close()

    def _next_event(self, user: str) -> dict[str, str]:
        count = self.calls.get(user, 0)
        self.calls[user] = count + 1
        state = "connected" if count % 2 == 0 else "ended"
        return {"user": user, "call_id": f"k{count // 2}", "state": state}

    async def _run(
        self, pool: Pool, clients: int, seconds: float, batch: int, warmup: float
    ) -> dict[str, Any]:
        """Each client sends, one request after the other, until `seconds` after the
        warm-up are over; what it sent after the warm-up counts, with the answers that
        came after the end. Every client sends at least one counted request, so a machine
        too busy to answer one in the window yields a slow figure, never none."""
        measure_from = time.monotonic() + warmup
        stop = measure_from + seconds
        latencies: list[float] = []
        errors = 0
        done = 0
        acknowledged_all = 0  # events acknowledged, the warm-up's too (for CPU per event)
        last_answer = stop

        async def client(k: int) -> None:
            nonlocal errors, done, acknowledged_all, last_answer
            mine = self.users[k::clients]
            turn = 0
            counted = False
            while (time.monotonic() < stop or not counted) and time.monotonic() < stop + 60:
                events: list[dict[str, str]] = []
                for _ in range(batch):
                    events.append(self._next_event(mine[turn % len(mine)]))
                    turn += 1
                sent = time.monotonic()
                status = await self._send(pool, events)
                answered = time.monotonic()
                if status == 200:
                    acknowledged_all += len(events)
                    for event in events:
                        self.acknowledged[event["user"]] = event["state"]
                if sent < measure_from:
                    continue
                counted = True
                last_answer = max(last_answer, answered)
                if status == 200:
                    done += len(events)
                    latencies.append(answered - sent)
                else:
                    errors += 1

        await asyncio.gather(*(client(k) for k in range(clients)))
        elapsed = last_answer - measure_from
        return {
            "clients": clients,
            "events_per_request": batch,
            "events_per_second": round(done / elapsed, 1),
            "measured_seconds": round(elapsed, 3),
            "acknowledged": done,
            "acknowledged_with_warmup": acknowledged_all,
            "errors": errors,
            "latency_seconds": summary(latencies),
        }

    @staticmethod
    async def _send(pool: Pool, events: list[dict[str, str]]) -> int:
        body: dict[str, Any] = events[0] if len(events) == 1 else {"events": events}
        path = "/api/v1/telephony/events" + ("" if len(events) == 1 else "/batch")
        try:
            status, _ = await pool.request("POST", path, body)
        except Exception:
            return 0
        return status


def thread_cpu_seconds(pid: int) -> dict[str, float]:
    """CPU seconds so far of a process's threads, by name ("event_loop" for the main
    thread; threads of the same name added up)."""
    spent: dict[str, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            stat = (task / "stat").read_text()
        except OSError:  # the thread ended meanwhile
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        name = "event_loop" if task.name == str(pid) else name.rstrip("0123456789_")
        fields = stat[stat.rindex(")") + 2 :].split()
        seconds = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
        spent[name] = spent.get(name, 0.0) + seconds
    return spent


async def request_ceiling(
    server: ServerProcess, path: str, clients: int, seconds: float
) -> dict[str, Any]:
    """Answers per second of a GET that does no hub work: what HTTP and the framework
    alone cost on this machine, the ceiling for any endpoint."""
    pool = server_pool(server, clients)
    stop = time.monotonic() + seconds
    done = 0

    async def client() -> None:
        nonlocal done
        while time.monotonic() < stop:
            status, _ = await pool.request("GET", path)
            done += status == 200

    meter = CpuMeter({"server": server.pid})
    try:
        await asyncio.gather(*(client() for _ in range(clients)))
    finally:
        pool.close()
    return {
        "path": path,
        "clients": clients,
        "requests_per_second": round(done / seconds, 1),
        "cpu_cores_busy": meter.read(),
    }


async def verify_durability(server: ServerProcess, loop: ClosedLoop) -> dict[str, Any]:
    """Kill -9, restart, and compare every user's telephony with what was acknowledged."""
    await asyncio.to_thread(server.stop, True)
    await asyncio.to_thread(server.start)
    pool = server_pool(server, 16)
    lost = 0

    async def check(user: str, state: str) -> None:
        nonlocal lost
        presence = await pool.json("GET", f"/api/v1/users/{user}/presence")
        on_phone = presence["telephony"] == "on_the_phone"
        if on_phone != (state == "connected"):
            lost += 1

    try:
        items = list(loop.acknowledged.items())
        for start in range(0, len(items), 64):
            await asyncio.gather(*(check(u, s) for u, s in items[start : start + 64]))
    finally:
        pool.close()
    return {"users_checked": len(loop.acknowledged), "acknowledged_but_lost": lost}


async def backend(
    options: Options, size: int, label: str, database_url: str | None, log_level: str
) -> dict[str, Any]:
    folder = options.work / f"{label}-n{size}"
    server = ServerProcess(
        folder, None, options.server(database_url=database_url, log_level=log_level)
    )
    with running(server):
        await asyncio.to_thread(server.start)
        create_group(server, "off")
        population = Population(size, new_run_id())
        creation = await create_hub_users(server, population, range(size), teams=False)
        results = []
        loop = ClosedLoop(server, population.hub_ids())
        levels = [(c, 1) for c in (QUICK_CONCURRENCY if options.quick else CONCURRENCY)]
        levels += [
            (c, BATCH_SIZE)
            for c in (QUICK_BATCH_CONCURRENCY if options.quick else BATCH_CONCURRENCY)
        ]
        for clients, batch in levels:
            meter = CpuMeter({"server": server.pid, "load_generator": os.getpid()})
            cpu_before = cpu_seconds(server.pid)
            threads_before = thread_cpu_seconds(server.pid)
            result = await loop.run(clients, options.duration, batch)
            result["cpu_cores_busy"] = meter.read()
            # What an event costs the server in CPU, whatever else the machine does; by
            # thread: the event loop (HTTP, validation, the rules) and the store's thread
            # (encoding, SQL, commit).
            events = max(1, result["acknowledged_with_warmup"])
            spent = cpu_seconds(server.pid) - cpu_before
            result["server_cpu_us_per_event"] = round(spent / events * 1e6, 1)
            threads = thread_cpu_seconds(server.pid)
            result["server_cpu_us_per_event_by_thread"] = {
                name: round((seconds - threads_before.get(name, 0.0)) / events * 1e6, 1)
                for name, seconds in threads.items()
            }
            results.append(result)

        def best_of(batch: int) -> dict[str, Any]:
            mine = [r for r in results if r["events_per_request"] == batch]
            return max(mine, key=lambda r: r["events_per_second"] if not r["errors"] else 0)

        best, best_batched = best_of(1), best_of(BATCH_SIZE)
        ceiling = await request_ceiling(server, "/healthz", best["clients"], options.duration / 2)
        figures: dict[str, Any] = {
            "database": "postgresql" if database_url else "sqlite",
            "log_level": log_level,
            "users": size,
            "user_creation": creation,
            "levels": results,
            "sustained_events_per_second": best["events_per_second"],
            "best_clients": best["clients"],
            "sustained_events_per_second_batched": best_batched["events_per_second"],
            "best_clients_batched": best_batched["clients"],
            "http_ceiling": ceiling,
            "durability": await verify_durability(server, loop),
        }
        if database_url:
            figures["postgres_settings"] = await asyncio.to_thread(postgres_settings, database_url)
        else:
            figures["sqlite_settings"] = {"journal_mode": "wal", "synchronous": "FULL"}
        return figures


async def run(options: Options) -> tuple[dict[str, Any], dict[str, Any], Any]:
    sizes: dict[str, Any] = {}
    for size in options.users:
        runs: dict[str, Any] = {}
        runs["sqlite"] = await backend(options, size, "sqlite", None, "info")
        if not options.quick:
            runs["sqlite-log-warning"] = await backend(
                options, size, "sqlite-quiet", None, "warning"
            )
        try:
            with throwaway_postgres() as url:
                runs["postgresql"] = await backend(options, size, "postgresql", url, "info")
        except RuntimeError as error:
            runs["postgresql"] = {"skipped": str(error)}
        sizes[str(size)] = runs
    parameters = {
        "users": options.users,
        "duration_seconds_per_level": options.duration,
        "clients": list(QUICK_CONCURRENCY if options.quick else CONCURRENCY),
        "batched_clients": list(QUICK_BATCH_CONCURRENCY if options.quick else BATCH_CONCURRENCY),
        "events_per_batch": BATCH_SIZE,
        "events": "connected / ended alternating per user, each a state change and a commit",
        "teams_sync": "off",
    }

    return parameters, {"sizes": sizes}, lambda figure: draw(figure, sizes)


def draw(figure: Any, sizes: dict[str, Any]) -> None:
    """Rate and p99 per level: one colour per database and size, dotted for batches."""
    import matplotlib

    left, right = figure.subplots(1, 2)
    runs = [(size, label, result) for size, by_label in sizes.items()
            for label, result in by_label.items() if "levels" in result]  # fmt: skip
    colours = matplotlib.colormaps["tab10"]
    for number, (size, label, result) in enumerate(runs):
        for batch, style in ((1, "-"), (BATCH_SIZE, ":")):
            levels = [r for r in result["levels"] if r["events_per_request"] == batch]
            clients = [r["clients"] for r in levels]
            rates = [r["events_per_second"] for r in levels]
            p99 = [(r["latency_seconds"]["p99"] or 0) * 1000 for r in levels]
            name = f"{label}, {int(size):,} users" + (f", batches of {batch}" if batch > 1 else "")
            marker = "o" if batch == 1 else "s"
            for axes, values in ((left, rates), (right, p99)):
                axes.plot(clients, values, style, marker=marker, color=colours(number % 10),
                          label=name)  # fmt: skip
    left.axhline(2000, color="grey", linestyle="--", linewidth=1, label="target 2,000/s")
    left.axhline(10000, color="black", linestyle="--", linewidth=1,
                 label="target 10,000/s in batches")  # fmt: skip
    frame(left, "throughput", "concurrent clients", "acknowledged events / s (durable)",
          xscale="log")  # fmt: skip
    frame(right, "latency at that load", "concurrent clients", "p99 latency per request (ms)",
          xscale="log")  # fmt: skip
