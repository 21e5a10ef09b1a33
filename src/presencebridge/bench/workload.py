"""What the load generator does: make users, change Teams clients, send PBX events,
listen to the presence stream, and pair every change with the moment it arrived."""

from __future__ import annotations

import asyncio
import bisect
import json
import random
import secrets
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from presencebridge.bench.procs import ADMIN_TOKEN, EmulatorProcess, ServerProcess
from presencebridge.bench.rawhttp import Pool
from presencebridge.bench.report import summary

GROUP = "bench"
CALL = ("Busy", "InACall")
IDLE = ("Available", "Available")


@dataclass(frozen=True)
class Population:
    """N users: hub ids u000001..., Teams (Entra) ids t-<run>-000001..."""

    size: int
    run: str

    def hub_id(self, i: int) -> str:
        return f"u{i:06d}"

    def teams_id(self, i: int) -> str:
        return f"t-{self.run}-{i:06d}"

    def hub_ids(self) -> list[str]:
        return [self.hub_id(i) for i in range(self.size)]

    def teams_ids(self) -> list[str]:
        return [self.teams_id(i) for i in range(self.size)]


def emulator_pool(emulator: EmulatorProcess, size: int = 16) -> Pool:
    return Pool("127.0.0.1", emulator.port, size, tls=emulator.ssl_context())


def server_pool(server: ServerProcess, size: int = 32) -> Pool:
    return Pool("127.0.0.1", server.port, size, token=ADMIN_TOKEN)


async def _run_all(jobs: Sequence[Any], concurrency: int) -> None:
    """Run coroutine factories with at most `concurrency` in flight."""
    queue = iter(jobs)

    async def worker() -> None:
        for job in queue:
            await job()

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def create_emulator_users(
    emulator: EmulatorProcess, ids: Sequence[str], concurrency: int = 16
) -> dict[str, Any]:
    """One POST /_emulator/users per user, `concurrency` at a time."""
    pool = emulator_pool(emulator, concurrency)
    started = time.monotonic()

    def job(teams_id: str) -> Any:
        return lambda: pool.json("POST", "/_emulator/users", {"id": teams_id})

    try:
        await _run_all([job(i) for i in ids], concurrency)
    finally:
        pool.close()
    seconds = time.monotonic() - started
    return {
        "users": len(ids),
        "via": "POST /_emulator/users",
        "concurrency": concurrency,
        "seconds": round(seconds, 3),
        "per_second": round(len(ids) / seconds, 1) if seconds else None,
    }


def create_group(
    server: ServerProcess, mode: str = "telephony_and_presence", group: str = GROUP
) -> None:
    with server.client() as client:
        body = {"id": group, "name": group, "settings": {"teams_sync_mode": mode}}
        response = client.post("/api/v1/groups", json=body)
        if response.status_code != 201:
            raise RuntimeError(f"creating the group: {response.status_code} {response.text}")


def set_group_mode(server: ServerProcess, mode: str) -> None:
    with server.client(timeout=600) as client:
        response = client.patch(f"/api/v1/groups/{GROUP}/settings", json={"teams_sync_mode": mode})
        response.raise_for_status()


async def create_hub_users(
    server: ServerProcess,
    population: Population,
    indices: Sequence[int],
    concurrency: int = 32,
    group: str = GROUP,
    teams: bool = True,
) -> dict[str, Any]:
    """One POST /api/v1/users per user; the rate is sampled as the population grows."""
    pool = server_pool(server, concurrency)
    done = 0
    started = time.monotonic()
    samples: list[tuple[int, float]] = []
    step = max(1, len(indices) // 20)

    def job(i: int) -> Any:
        async def create() -> None:
            nonlocal done
            body = {
                "id": population.hub_id(i),
                "display_name": f"Bench user {i}",
                "group": group,
                "teams_user_id": population.teams_id(i) if teams else None,
            }
            await pool.json("POST", "/api/v1/users", body)
            done += 1
            if done % step == 0:
                samples.append((done, time.monotonic() - started))

        return create

    try:
        await _run_all([job(i) for i in indices], concurrency)
    finally:
        pool.close()
    seconds = time.monotonic() - started
    # users/s over each stretch of the growth: shows whether creation slows as N grows
    rates = []
    previous = (0, 0.0)
    for count, at in samples:
        if at > previous[1]:
            rates.append([count, round((count - previous[0]) / (at - previous[1]), 1)])
        previous = (count, at)
    return {
        "users": len(indices),
        "via": "POST /api/v1/users",
        "concurrency": concurrency,
        "seconds": round(seconds, 3),
        "per_second": round(len(indices) / seconds, 1) if seconds else None,
        "rate_by_count": rates,
    }


def seed_store(database_url: str, population: Population, count: int, mode: str) -> dict[str, Any]:
    """Write the group and `count` users straight into a new database, before the server
    starts: only for populations too large to create through the API in reasonable time.
    """
    from presencebridge.adapters.store import GroupRecord, Store, create_engine, migrate
    from presencebridge.adapters.store import tables as t
    from presencebridge.core import codec
    from presencebridge.core.model import User, UserState
    from presencebridge.core.settings import GroupSettings

    started = time.monotonic()
    engine = create_engine(database_url)
    migrate(engine)
    now = datetime.now(UTC)
    settings = GroupSettings.model_validate({"teams_sync_mode": mode})
    store = Store(engine)
    store.create_group(GroupRecord(GROUP, "Benchmark", settings, ()), now)
    rows = []
    for i in range(count):
        user = User(population.hub_id(i), f"Bench user {i}", GROUP, population.teams_id(i))
        rows.append(
            {
                "id": user.id,
                "display_name": user.display_name,
                "group_id": GROUP,
                "teams_user_id": user.teams_user_id,
                "state": codec.encode(UserState(user=user)),
                "version": 1,
                "updated_at": now,
            }
        )
    with engine.begin() as connection:
        for chunk in range(0, len(rows), 5000):
            connection.execute(t.users.insert(), rows[chunk : chunk + 5000])
    engine.dispose()
    seconds = time.monotonic() - started
    return {"users": count, "via": "store (bulk insert before start)", "seconds": round(seconds, 3)}


# -- the presence stream ----------------------------------------------------------------------


@dataclass
class Observation:
    at: float  # time.monotonic() when the message arrived
    user: str
    on_call: bool  # on the phone because of Teams
    on_phone: bool  # on the phone for whatever reason


class StreamListener:
    """The WebSocket presence stream as a console would hold it open."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.observations: list[Observation] = []
        self.snapshot_users = 0
        self.snapshot_seconds = 0.0
        self.closed: str | None = None
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run())
        await asyncio.wait_for(self._ready.wait(), 300)

    async def _run(self) -> None:
        from websockets.asyncio.client import connect

        url = f"ws://127.0.0.1:{self.server.port}/api/v1/presence/stream"
        started = time.monotonic()
        async with connect(
            url,
            additional_headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            max_size=None,
            open_timeout=60,
            ping_timeout=None,
        ) as websocket:
            first = json.loads(await websocket.recv())
            self.snapshot_users = len(first.get("presences", []))
            self.snapshot_seconds = time.monotonic() - started
            self._ready.set()
            try:
                async for raw in websocket:
                    at = time.monotonic()
                    message = json.loads(raw)
                    if message.get("type") != "presence":
                        continue
                    self.observations.append(
                        Observation(
                            at,
                            message["user"],
                            message.get("telephony_source") == "teams",
                            message.get("telephony") == "on_the_phone",
                        )
                    )
            except Exception as error:  # recorded: a dropped stream spoils the run
                self.closed = repr(error)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


# -- changes and their arrival ----------------------------------------------------------------


@dataclass
class Change:
    at: float  # time.monotonic() right before the request that makes the change
    user: str  # the key observations use (hub id, or Teams id for the naive client)
    on: bool  # the change starts a call (True) or ends it
    answered: float = 0.0  # when the request was answered
    status: int = 0


@dataclass
class Matched:
    latencies: list[float] = field(default_factory=list)
    at: list[float] = field(default_factory=list)  # when each change was made
    missed: int = 0  # no arrival before the user's next change or the end
    changes: int = 0


def match(
    changes: Sequence[Change],
    arrivals: dict[str, list[tuple[float, bool]]],
    until: float,
) -> Matched:
    """Pair each change with the first arrival for its user that shows the new state.

    An arrival counts for a change if it comes after the change, before the user's
    next change, and shows what the change set (on a call or not). As the state
    before a change was the opposite, such an arrival is caused by that change.
    """
    result = Matched(changes=len(changes))
    by_user: dict[str, list[Change]] = defaultdict(list)
    for change in changes:
        by_user[change.user].append(change)
    for user, own in by_user.items():
        own.sort(key=lambda c: c.at)
        seen = arrivals.get(user, [])
        times = [a[0] for a in seen]
        for k, change in enumerate(own):
            limit = own[k + 1].at if k + 1 < len(own) else until
            j = bisect.bisect_left(times, change.at)
            while j < len(seen) and seen[j][0] < limit:
                if seen[j][1] == change.on:
                    result.latencies.append(seen[j][0] - change.at)
                    result.at.append(change.at)
                    break
                j += 1
            else:
                result.missed += 1
    return result


def arrivals_from(observations: Sequence[Observation], teams: bool = True) -> dict[str, list[Any]]:
    """Per user, (time, on a call) of every stream message, in order."""
    result: dict[str, list[tuple[float, bool]]] = defaultdict(list)
    for o in observations:
        result[o.user].append((o.at, o.on_call if teams else o.on_phone))
    return result


class TeamsDriver:
    """Teams clients in the emulator start and end calls at `rate` per second, round robin.

    Open loop, Poisson arrivals: changes are sent at exponentially distributed gaps of
    mean 1 / rate, whatever the answers do (at most `concurrency` in flight), so they do
    not fall into step with the poll rounds. Each user alternates between a call and
    idle, and a user changes again only after about `users / rate` seconds. The users
    are taken in a shuffled (seeded) order: consecutive changes belong to users spread
    over the whole directory, as in an office, not to neighbours that share one Graph
    read of 650 ids.
    """

    def __init__(
        self,
        emulator: EmulatorProcess,
        teams_ids: Sequence[str],
        key_of: dict[str, str],
        rate: float,
        concurrency: int = 16,
        seed: int = 5,
    ) -> None:
        self.pool = emulator_pool(emulator, concurrency)
        self.teams_ids = list(teams_ids)
        random.Random(seed).shuffle(self.teams_ids)  # noqa: S311 - load shape, not security
        self.key_of = key_of  # Teams id -> the key arrivals use
        self.rate = rate
        self.changes: list[Change] = []
        self.errors = 0
        self._on: dict[str, bool] = {}
        self._next = 0

    async def run(self, duration: float) -> None:
        tasks = []
        async for _ in poisson(self.rate, duration):
            tasks.append(asyncio.create_task(self._change()))
        await asyncio.gather(*tasks)
        self.pool.close()

    async def _change(self) -> None:
        teams_id = self.teams_ids[self._next % len(self.teams_ids)]
        self._next += 1
        on = not self._on.get(teams_id, False)
        self._on[teams_id] = on
        availability, activity = CALL if on else IDLE
        body = {"availability": availability, "activity": activity}
        change = Change(time.monotonic(), self.key_of[teams_id], on)
        self.changes.append(change)
        try:
            status, _ = await self.pool.request("POST", f"/_emulator/users/{teams_id}/client", body)
        except Exception:
            status = 0
        change.answered = time.monotonic()
        change.status = status
        if not 200 <= status < 300:
            self.errors += 1

    async def reset(self) -> None:
        """End every call this driver started (so a next phase starts from idle)."""
        pool = self.pool
        for teams_id, on in list(self._on.items()):
            if on:
                await pool.json(
                    "POST",
                    f"/_emulator/users/{teams_id}/client",
                    {"availability": IDLE[0], "activity": IDLE[1]},
                )
                self._on[teams_id] = False


async def poisson(rate: float, duration: float, seed: int = 7) -> AsyncIterator[int]:
    """Yields at the moments of a Poisson process of `rate` per second, for `duration` s."""
    chance = random.Random(seed)  # noqa: S311 - load timing, not security
    started = time.monotonic()
    at = 0.0
    k = 0
    while True:
        at += chance.expovariate(rate)
        if at >= duration:
            return
        delay = started + at - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        yield k
        k += 1


def latency_figures(matched: Matched) -> dict[str, Any]:
    figures = summary(matched.latencies)
    figures["changes"] = matched.changes
    figures["missed"] = matched.missed
    return figures


async def wait_for_rounds(server: ServerProcess, rounds: int, within: float) -> float:
    """Seconds until the poller has finished `rounds` more rounds."""
    started = time.monotonic()
    first = (await asyncio.to_thread(server.teams_sync)).get("poll", {}).get("rounds", 0)
    pause = backoff()
    while time.monotonic() - started < within:
        status = await asyncio.to_thread(server.teams_sync)
        if status.get("poll", {}).get("rounds", 0) >= first + rounds:
            return time.monotonic() - started
        await asyncio.sleep(next(pause))
    raise TimeoutError(f"the poller did not finish {rounds} rounds within {within} s")


def backoff(first: float = 0.05, most: float = 0.5) -> Iterator[float]:
    """Pauses between looks at the hub's status: short at first, then at most `most` s.

    The status call walks every user (Hub.synced_users), a noticeable share of the
    server's loop at 100,000 users, and the server's own work is what is being timed.
    """
    pause = first
    while True:
        yield pause
        pause = min(most, pause * 2)


def auto_rate(users: int) -> float:
    """Ten call starts or ends per user and hour, at least two a second."""
    return round(max(2.0, users * 10 / 3600), 2)


# -- PBX events -------------------------------------------------------------------------------


@dataclass
class PbxEvent:
    at: float  # time.monotonic() right before the POST
    user: str
    state: str
    call_id: str
    write: str | None  # the Graph write this event should cause, if any
    answered: float = 0.0
    status: int = 0


class PbxDriver:
    """A PBX reporting calls at `rate` events per second (Poisson), users round robin.

    Each user goes through `cycle` again and again, one step per turn, with a new call
    id per pass: ringing -> connected -> ended by default. For a synced user,
    `connected` should make the hub set its Teams session and `ended` clear it. So
    that calls complete within a short run, only the first `rate * gap` users take
    part: each of them gets an event about every `gap` seconds.
    """

    def __init__(
        self,
        server: ServerProcess,
        users: Sequence[tuple[str, bool]],
        rate: float,
        cycle: Sequence[str] = ("ringing", "connected", "ended"),
        gap: float = 2.0,
        concurrency: int = 64,
        seed: int = 11,
    ) -> None:
        self.pool = server_pool(server, concurrency)
        active = min(len(users), max(1, round(rate * gap)))
        self.users = list(users)[:active]  # (hub id, synced with Teams)
        self.gap = gap
        self.rate = rate
        self.cycle = list(cycle)
        self.events: list[PbxEvent] = []
        self.errors = 0
        self.seed = seed
        self.prefix = secrets.token_hex(3)  # call ids of an earlier driver stay ended
        # Users start at different points of the cycle (but never with `ended`), so that
        # not all calls connect in the same second.
        chance = random.Random(seed)  # noqa: S311 - load shape, not security
        starts = [i for i, state in enumerate(self.cycle) if state != "ended"] or [0]
        self._step: dict[str, int] = {u: chance.choice(starts) for u, _ in self.users}
        self._touched: set[str] = set()
        self._next = 0

    async def run(self, duration: float) -> None:
        tasks = []
        async for _ in poisson(self.rate, duration, self.seed):
            tasks.append(asyncio.create_task(self._event()))
        await asyncio.gather(*tasks)

    def close(self) -> None:
        self.pool.close()

    async def _event(self) -> None:
        user, synced = self.users[self._next % len(self.users)]
        self._next += 1
        step = self._step.get(user, 0)
        self._step[user] = step + 1
        self._touched.add(user)
        state = self.cycle[step % len(self.cycle)]
        call_id = f"{self.prefix}-{step // len(self.cycle)}"
        write = None
        if synced and state == "connected":
            write = "setPresence"
        elif synced and state == "ended":
            write = "clearPresence"
        body = {"user": user, "call_id": call_id, "state": state}
        event = PbxEvent(time.monotonic(), user, state, call_id, write)
        self.events.append(event)
        try:
            status, _ = await self.pool.request("POST", "/api/v1/telephony/events", body)
        except Exception:
            status = 0
        event.answered = time.monotonic()
        event.status = status
        if status != 200:
            self.errors += 1

    async def finish_calls(self) -> None:
        """End every call left open, so the next phase starts from idle."""
        cycle = len(self.cycle)
        for user in sorted(self._touched):
            step = self._step[user]
            if self.cycle[(step - 1) % cycle] != "ended":
                body = {"user": user, "call_id": f"{self.prefix}-{(step - 1) // cycle}"}
                await self.pool.request(
                    "POST", "/api/v1/telephony/events", body | {"state": "ended"}
                )
            self._step[user] = -(-step // cycle) * cycle  # the next event starts a new call
