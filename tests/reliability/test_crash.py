"""Crash suite: `kill -9` of the server at random points of a random workload.

One server on SQLite syncs its users with the Graph emulator (poll mode). Worker
threads play the PBX (ringing, connected, ended; up to two calls at once per
user), the users (profile choices, their own sync mode) and the users' Teams
clients (calls, presenting, away), all drawn from one printed seed. Meanwhile the
server is killed with SIGKILL several times and restarted on the same database.

After every restart, whatever was acknowledged must still be there. At the end
every call is ended except one per "keeper", every Teams client goes back to
Available, and each user's hub state, Teams state and the model must agree: no
orphan sync appointment, no orphan Teams session, not even after Graph's session
expiry has passed.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from presencebridge.core.teams import SESSION_LIFETIME
from presencebridge.core.teams import SESSION_REFRESH as SESSION_REFRESH_AFTER
from tests.reliability.harness import (
    control_client,
    converge,
    create_users,
    expect_ok,
    wind_down,
)
from tests.reliability.model import AVAILABLE, UserModel
from tests.reliability.report import Report, Size
from tests.reliability.workload import Driver, Op, send
from tests.support.server import ServerProcess
from tests.support.teams import EmulatorProcess, sync_server

WORKERS = 4
SESSION_EXPIRY = int(SESSION_LIFETIME.total_seconds())  # the session lifetime the hub asks for
SESSION_REFRESH = int(SESSION_REFRESH_AFTER.total_seconds())  # the hub re-sends it this often


def keep_call(user: UserModel) -> str | None:
    return f"keep-{user.id}" if user.keeper else None


class Workload:
    """Worker threads sending the events; the test thread kills and restarts the server."""

    def __init__(
        self,
        server: ServerProcess,
        emulator: EmulatorProcess,
        users: list[UserModel],
        size: Size,
        report: Report,
    ) -> None:
        self.server = server
        self.emulator = emulator
        self.users = users
        self.size = size
        self.report = report
        self.up = threading.Event()
        self.up.set()
        self.stopping = False
        self.generation = 0  # bumped at each restart: connections to the old process are dead
        self.cond = threading.Condition()
        self.parked = 0
        self.finished = 0
        self.started_ops = 0
        self.problems: list[str] = []

    # -- the workers ----------------------------------------------------------------------

    def run_worker(self, index: int, users: list[UserModel], count: int) -> None:
        driver = Driver(random.Random(f"{self.size.seed}/{index}"), users)
        api: httpx.Client | None = None
        generation = -1
        control = control_client(self.emulator)
        try:
            for _ in range(count):
                user, op = driver.next()
                while True:
                    self.wait_up()
                    if self.stopping:
                        return
                    if generation != self.generation or api is None:
                        if api is not None:
                            api.close()
                        api, generation = self.server.client(), self.generation
                    with self.cond:
                        self.started_ops += 1
                    outcome = self.attempt(api, control, user, op)
                    if outcome != "refused":
                        break
                    time.sleep(0.01)  # the server is down: nothing was sent; send it again
                with self.cond:
                    self.report.add("events sent")
                    self.report.add(f"events sent: {op.kind}")
                    if outcome in ("ack", "lost"):
                        self.report.add(
                            "acknowledged"
                            if outcome == "ack"
                            else "unacknowledged (lost in a kill)"
                        )
                        driver.record(user, op, acknowledged=outcome == "ack")
        finally:
            control.close()
            if api is not None:
                api.close()
            with self.cond:
                self.finished += 1
                self.cond.notify_all()

    def attempt(self, api: httpx.Client, control: httpx.Client, user: UserModel, op: Op) -> str:
        """ack (2xx), lost (sent, no answer: maybe applied), refused (never sent), or the status."""
        try:
            response = send(api, control, user, op)
        except (httpx.ConnectError, httpx.ConnectTimeout):
            return "refused"
        except httpx.TransportError:
            return "lost"
        if response.is_success:
            return "ack"
        with self.cond:  # a refused request applies nothing, and fails the test
            self.problems.append(f"{op} for {user.id}: {response.status_code} {response.text}")
        return str(response.status_code)

    def wait_up(self) -> None:
        if self.up.is_set():
            return
        with self.cond:
            self.parked += 1
            self.cond.notify_all()
        self.up.wait()
        with self.cond:
            self.parked -= 1

    # -- the test thread ------------------------------------------------------------------

    def quiet(self) -> None:
        """Wait until every worker is parked or done: the model stands still."""
        with self.cond:
            if not self.cond.wait_for(lambda: self.parked + self.finished == WORKERS, 60):
                raise AssertionError("the workers did not stop for the restart check")

    def kill_and_restart(self, rng: random.Random, check: Callable[[], None]) -> None:
        slow_graph = rng.random() < 0.5
        if slow_graph:
            # Graph answers slowly for a moment: the kill finds the hub's writes in flight,
            # and Graph carries them out after the hub is gone.
            latency = rng.uniform(100, 400)
            with control_client(self.emulator) as control:
                expect_ok(control.post("/_emulator/faults", json={"latency_ms": latency}))
            time.sleep(rng.uniform(0.2, 0.6))
        time.sleep(rng.uniform(0, 0.02))  # so that some requests are in flight
        self.up.clear()
        self.server.kill9()
        self.report.add("kills (SIGKILL)")
        if slow_graph:
            self.report.add("kills with Graph writes in flight")
            with control_client(self.emulator) as control:
                expect_ok(control.post("/_emulator/faults", json={"latency_ms": 0}))
        self.server.start()
        self.quiet()
        check()
        self.generation += 1
        self.up.set()

    def check_after_restart(self) -> None:
        """Nothing acknowledged was lost: calls that surely run, own modes, no revived call."""
        with self.server.client() as api:
            for user in self.users:
                presence = expect_ok(api.get(f"/api/v1/users/{user.id}/presence"))
                own = expect_ok(api.get(f"/api/v1/users/{user.id}/settings"))["teams_sync_mode"]
                if own not in user.own_modes:
                    self.problems.append(f"{user.id}: own mode {own!r}, one of {user.own_modes}")
                if user.surely_connected() and presence["telephony"] != "on_the_phone":
                    self.problems.append(f"{user.id}: acknowledged call lost: {presence}")
                if not user.maybe_on_a_pbx_call() and presence["telephony_source"] == "pbx":
                    self.problems.append(f"{user.id}: ended calls came back: {presence}")
                self.report.add("users checked after a restart")


@pytest.mark.parametrize("write", ["session", "dnd"])
def test_a_graph_write_in_flight_at_the_kill_is_settled_after_the_restart(
    tmp_path: Path, emulator: EmulatorProcess, report: Report, write: str
) -> None:
    """Graph carries out a write the hub sent just before it died, unrecorded.

    session: a PBX call starts (setPresence InACall goes out) and ends at once.
    dnd: the user picks a DnD profile (setUserPreferredPresence goes out), then another.
    Either way the restarted hub must not take its own write for the user's doing (a
    Teams call appointment, a DnD from Teams) and must take it back.
    """
    server = sync_server(tmp_path / "server", emulator)
    server.start()
    try:
        with server.client() as api, control_client(emulator) as control:
            [user] = create_users(api, control, 1, keepers=0)
            set_latency = {"latency_ms": 1500}
            expect_ok(control.post("/_emulator/faults", json=set_latency))
            if write == "session":
                event = {"user": user.id, "call_id": "c1", "state": "connected"}
                expect_ok(api.post("/api/v1/telephony/events", json=event))
                time.sleep(0.3)  # the hub's setPresence is on its way
                expect_ok(api.post("/api/v1/telephony/events", json={**event, "state": "ended"}))
                user.call_event("c1", "ended", acknowledged=True)
            else:
                expect_ok(api.put(f"/api/v1/users/{user.id}/profile", json={"name": "Fokus"}))
                time.sleep(0.3)  # the hub's setUserPreferredPresence is on its way
                expect_ok(api.put(f"/api/v1/users/{user.id}/profile", json={"name": "Mittag"}))
                user.selected("Mittag", acknowledged=True)
            server.kill9()
            report.add("kills (SIGKILL)")
            time.sleep(1.5)  # Graph carries the write out; nobody hears the answer
            expect_ok(control.post("/_emulator/faults", json={"latency_ms": 0}))
            shown = expect_ok(control.get(f"/_emulator/users/{user.teams_id}"))["presence"]
            assert (shown["availability"], shown["activity"]) != AVAILABLE  # it did arrive
        server.start()
        with server.client() as api, control_client(emulator) as control:
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline:  # never, not even for a moment
                presence = expect_ok(api.get(f"/api/v1/users/{user.id}/presence"))
                assert [a for a in presence["appointments"] if a["origin"] != "manual"] == []
                assert presence["status"] != "dnd", presence
                time.sleep(0.05)
            converge(api, control, [user], 10, f"after a kill with {write} in flight")
        report.add("users checked (hub = Teams = model)")
    finally:
        server.stop()


def test_kill_9_at_random_points_loses_nothing_acknowledged_and_leaves_nothing_behind(
    tmp_path: Path, emulator: EmulatorProcess, size: Size, report: Report
) -> None:
    full = size.full
    user_count = min(60, max(8, size.events // 160)) if full else 8
    keepers = max(2, user_count // 4)
    kills = max(3, size.events // 500) if full else 3
    rng = random.Random(size.seed)
    seed_note = f"(seed {size.seed})"

    server = sync_server(tmp_path / "server", emulator)
    server.start()
    workload: Workload | None = None
    threads: list[threading.Thread] = []
    try:
        with server.client() as api, control_client(emulator) as control:
            users = create_users(api, control, user_count, keepers)
            for user in users:
                if (call_id := keep_call(user)) is not None:
                    for state in ("ringing", "connected"):
                        event = {"user": user.id, "call_id": call_id, "state": state}
                        expect_ok(api.post("/api/v1/telephony/events", json=event))
                        user.call_event(call_id, state, acknowledged=True)
        report.add("users", len(users))
        report.add("keepers (a call left up)", keepers)
        for name in ("events sent", "acknowledged", "unacknowledged (lost in a kill)"):
            report.add(name, 0)  # in this order in the summary
        for kind in ("call", "select", "mode", "client"):
            report.add(f"events sent: {kind}", 0)

        workload = Workload(server, emulator, users, size, report)
        share = [users[i::WORKERS] for i in range(WORKERS)]
        counts = [size.events // WORKERS + (i < size.events % WORKERS) for i in range(WORKERS)]
        threads = [
            threading.Thread(target=workload.run_worker, args=(i, share[i], counts[i]), daemon=True)
            for i in range(WORKERS)
        ]
        for thread in threads:
            thread.start()
        kill_at = sorted(rng.sample(range(size.events // 10, size.events * 9 // 10), kills))
        for point in kill_at:
            while workload.started_ops < point and workload.finished < WORKERS:
                time.sleep(0.002)
            workload.kill_and_restart(rng, workload.check_after_restart)
        for thread in threads:
            thread.join(timeout=600)
        assert not any(t.is_alive() for t in threads), "the workload did not finish"
        assert workload.problems == [], f"{seed_note} " + "\n".join(workload.problems)

        with server.client() as api, control_client(emulator) as control:
            report.add("events sent: wind-down", wind_down(api, control, users, keep_call))
            converge(api, control, users, 60 if full else 30, f"after the workload {seed_note}")
            # Past Graph's session expiry: only sessions the hub still holds may remain.
            expect_ok(
                control.post("/_emulator/clock", json={"advance_seconds": SESSION_EXPIRY + 60})
            )
            body = {"advance_seconds": SESSION_REFRESH + 30}
            expect_ok(api.post("/api/v1/admin/clock", json=body))
            converge(api, control, users, 30, f"after the session expiry {seed_note}")
        report.add("users checked (hub = Teams = model)", len(users))
    finally:
        if workload is not None:
            workload.stopping = True
            workload.up.set()
        for thread in threads:
            thread.join(timeout=30)
        server.stop()
