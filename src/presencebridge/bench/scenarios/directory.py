"""directory: the directory sync from Entra ID (issue 12) at N users.

N Entra users are seeded in the emulator (`POST /_emulator/directory/users/bulk`): one
in three with an extension (extensionAttribute1), one in four with a phone number, one
in five in the Entra group "Sales" (a rule puts them in the hub's group `sales`, the
rest go to the default group `hq`). The server runs with a `[[directory]] kind =
"entra"` configuration file (`serve --config`) and its configuration groups' Teams sync
`off`, so the poller does not share the two cores with the sync being measured.

* `full`: the first run (`POST /api/v1/admin/directory/sync`): the whole directory is
  read and every person becomes a hub user. Wall time is the POST's, from just before
  it to its answer; the server's and the emulator's CPU meanwhile; the server's RSS
  before and after and its peak (VmHWM).
* `delta`: CHANGES changes in the emulator (renames, moves into or out of Sales,
  removals, adds; a tenth of N for small N), then a run that reads the delta.
* `idle`: a run with nothing changed.

The emulator's share: the Graph requests it answered during a run and the seconds it
spent answering them (arrival to answer, from its request log).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from presencebridge.bench.procs import (
    CpuMeter,
    EmulatorProcess,
    ServerOptions,
    ServerProcess,
    running,
)
from presencebridge.bench.rawhttp import Pool
from presencebridge.bench.scenarios.common import Options, new_run_id
from presencebridge.bench.workload import emulator_pool

NAME = "directory"
DEFAULT_USERS = [10_000]
FULL_USERS = [10_000, 100_000]
QUICK_USERS = 300
CHANGES = 1_000
SEED_CHUNK = 5_000
TARGETS = {"full_seconds_at_100000": 60.0, "delta_seconds_for_1000": 5.0}
NOTES = (
    "The configuration groups' Teams sync is off during the runs: the figures are the "
    "directory sync's own, not shared with the presence poller.",
)
CONFIG = """
[[directory]]
kind = "entra"
extension_attribute = "onPremisesExtensionAttributes/extensionAttribute1"
default_group = "hq"
schedule_minutes = 0
rules = [{member_of = "Sales", group = "sales"}]
"""
SALES = "g-sales"


def person(run: str, i: int) -> dict[str, Any]:
    """The i-th seeded Entra user."""
    body: dict[str, Any] = {
        "id": f"{run}-{i:07d}",
        "displayName": f"Person {i}",
        "userPrincipalName": f"p{i}.{run}@contoso.com",
        "mail": f"p{i}.{run}@contoso.com",
        "department": "Sales" if i % 5 == 0 else "Engineering",
    }
    if i % 3 == 0:
        body["extensionAttributes"] = {"extensionAttribute1": str(100_000 + i)}
    if i % 4 == 0:
        body["businessPhones"] = [f"+49 30 {5_000_000 + i}"]
    if i % 5 == 0:
        body["groups"] = [SALES]
    return body


async def seed(pool: Pool, run: str, indexes: range) -> float:
    """Entra users `indexes` into the emulator, SEED_CHUNK per request; seconds taken."""
    started = time.monotonic()
    await pool.json("POST", "/_emulator/directory/groups", {"id": SALES, "displayName": "Sales"})
    for start in range(indexes.start, indexes.stop, SEED_CHUNK):
        chunk = range(start, min(start + SEED_CHUNK, indexes.stop))
        body = {"users": [person(run, i) for i in chunk]}
        await pool.json("POST", "/_emulator/directory/users/bulk", body)
    return time.monotonic() - started


def change_plan(size: int) -> dict[str, list[int]]:
    """Which seeded users get which change: 40 % renames, 20 % moves, 20 % removals,
    20 % adds (new indexes above `size`), spread over the directory."""
    total = min(CHANGES, max(10, size // 10))
    step = max(1, size // total)
    touched = [(k * step + 1) % size for k in range(total)]
    fifth = total // 5
    return {
        "rename": touched[: 2 * fifth],
        "move": touched[2 * fifth : 3 * fifth],
        "remove": touched[3 * fifth : 4 * fifth],
        "add": list(range(size, size + total - 4 * fifth)),
    }


async def apply_changes(pool: Pool, run: str, plan: dict[str, list[int]]) -> float:
    started = time.monotonic()
    jobs: list[tuple[str, str, Any]] = []
    for i in plan["rename"]:
        jobs.append(("PATCH", f"/_emulator/directory/users/{run}-{i:07d}",
                     {"displayName": f"Person {i} (renamed)"}))  # fmt: skip
    for i in plan["move"]:
        groups = [] if i % 5 == 0 else [SALES]
        jobs.append(("PATCH", f"/_emulator/directory/users/{run}-{i:07d}", {"groups": groups}))
    for i in plan["remove"]:
        jobs.append(("DELETE", f"/_emulator/directory/users/{run}-{i:07d}", None))
    queue = iter(jobs)

    async def worker() -> None:
        for method, path, body in queue:
            await pool.json(method, path, body)

    await asyncio.gather(*(worker() for _ in range(8)))
    added = {"users": [person(run, i) for i in plan["add"]]}
    await pool.json("POST", "/_emulator/directory/users/bulk", added)
    return time.monotonic() - started


def vm(pid: int) -> dict[str, int]:
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) * 1024
    return values


async def timed_sync(emulator: EmulatorProcess, server: ServerProcess) -> dict[str, Any]:
    """One `POST /api/v1/admin/directory/sync`: wall time, CPU, memory, the report."""
    mark = await asyncio.to_thread(emulator.log_mark)
    before = vm(server.pid)
    meter = CpuMeter({"server": server.pid, "emulator": emulator.pid})
    started = time.monotonic()

    def post() -> Any:
        with server.client(timeout=1800) as client:
            response = client.post("/api/v1/admin/directory/sync", json={})
            response.raise_for_status()
            return response.json()

    answer = await asyncio.to_thread(post)
    seconds = time.monotonic() - started
    cpu = meter.read()
    after = vm(server.pid)
    _, entries = await asyncio.to_thread(emulator.request_log, mark)
    (run,) = answer["runs"]
    return {
        "seconds": round(seconds, 3),
        "ok": answer["ok"],
        "counts": run["counts"],
        "full_read": run["full_read"],
        "failures": len(run["failures"]),
        "error": run["error"],
        "stopped": run["stopped"],
        "cpu_cores_busy": cpu,
        "server_cpu_seconds": round(cpu["server"] * seconds, 3),
        "rss_bytes_before": before["VmRSS"],
        "rss_bytes_after": after["VmRSS"],
        "peak_rss_bytes": after["VmHWM"],
        "emulator": {
            "graph_requests": len(entries),
            "answering_seconds": round(sum(e[1] - e[0] for e in entries), 3),
        },
    }


def server_for(folder: Path, emulator: EmulatorProcess) -> ServerProcess:
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "presencebridge.toml"
    config.write_text(CONFIG)
    return ServerProcess(folder / "server", emulator, ServerOptions(config_file=config))


def create_groups(server: ServerProcess) -> None:
    with server.client() as client:
        for group in ("hq", "sales"):
            body = {"id": group, "name": group.upper(), "settings": {"teams_sync_mode": "off"}}
            response = client.post("/api/v1/groups", json=body)
            if response.status_code != 201:
                raise RuntimeError(f"group {group}: {response.status_code} {response.text}")


async def measure_size(options: Options, size: int) -> dict[str, Any]:
    folder = options.work / f"n{size}"
    emulator = EmulatorProcess(folder / "emulator", options.work / "emulator-tls")
    await asyncio.to_thread(emulator.start)
    server = server_for(folder, emulator)
    run = new_run_id()
    with running(emulator, server):
        pool = emulator_pool(emulator, 8)
        try:
            figures: dict[str, Any] = {"users": size}
            figures["seed_seconds"] = round(await seed(pool, run, range(size)), 3)
            figures["server_start_seconds"] = round(await asyncio.to_thread(server.start), 3)
            await asyncio.to_thread(create_groups, server)
            figures["full"] = await timed_sync(emulator, server)
            plan = change_plan(size)
            figures["changes"] = {k: len(v) for k, v in plan.items()}
            figures["changes"]["total"] = sum(len(v) for v in plan.values())
            figures["changes"]["apply_seconds"] = round(await apply_changes(pool, run, plan), 3)
            figures["delta"] = await timed_sync(emulator, server)
            figures["idle"] = await timed_sync(emulator, server)
            users = await asyncio.to_thread(server.metric, "presencebridge_users")
            figures["hub_users_after"] = int(users)
        finally:
            pool.close()
    return figures


async def run(options: Options) -> tuple[dict[str, Any], dict[str, Any], Any]:
    sizes: dict[str, Any] = {}
    for size in options.users:
        sizes[str(size)] = await measure_size(options, size)
    parameters = {
        "users": options.users,
        "changes": {str(n): sizes[str(n)]["changes"]["total"] for n in options.users},
        "database": "sqlite",
        "groups_teams_sync_mode": "off",
        "targets": TARGETS,
        "seed": "1/3 with an extension, 1/4 with a number, 1/5 in Entra group Sales",
    }

    def plot(figure: Any) -> None:
        axis = figure.subplots(1, 1)
        xs = [int(n) for n in sizes]
        for phase in ("full", "delta", "idle"):
            axis.plot(xs, [sizes[str(n)][phase]["seconds"] for n in xs], marker="o", label=phase)
        axis.axhline(TARGETS["full_seconds_at_100000"], color="red", linestyle=":",
                     label="target: full at 100,000 users")  # fmt: skip
        axis.axhline(TARGETS["delta_seconds_for_1000"], color="orange", linestyle=":",
                     label="target: delta of 1,000 changes")  # fmt: skip
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_xlabel("directory users")
        axis.set_ylabel("sync wall time (s)")
        axis.set_title("directory sync from Entra ID")
        axis.grid(True, alpha=0.3)
        axis.legend()

    return parameters, {"sizes": sizes}, plot
