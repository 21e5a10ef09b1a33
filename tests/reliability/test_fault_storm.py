"""Fault storm: Graph throttles, fails and stalls for a while; the hub must come through.

While a random workload runs (PBX calls, profile choices, own sync modes, Teams
clients), the emulator answers the hub's Graph requests with 429 (and Retry-After),
then 503, then slowly with both mixed in, then not before the hub's 10 s timeout.
The hub runs on a small Graph budget of its own, so the storm's retries compete
with polling and writes for it. Afterwards every user's hub state, Teams state and
the model must agree, and Graph must never have seen more requests in a 30 s
window than the budget allows (the emulator counts them).
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

import httpx

from tests.reliability.harness import (
    control_client,
    converge,
    create_users,
    expect_ok,
    metric_total,
    wind_down,
)
from tests.reliability.model import UserModel
from tests.reliability.report import Report, Size
from tests.reliability.workload import Driver, send
from tests.support.teams import EmulatorProcess, sync_server

HUB_TIMEOUT = 10.0  # the hub's Graph client gives up on an answer after this


def storm(phase: float, stall: float) -> list[tuple[str, float, dict[str, Any]]]:
    """The storm's phases: name, seconds, fault settings.

    In the stall Graph answers only after the hub's timeout and carries the request
    out even so: late, while the hub retries into the 429s and 503s that follow.
    """
    return [
        ("429 with Retry-After", phase, {"rate_429": 0.4, "retry_after_seconds": 0.7}),
        ("503", phase, {"rate_503": 0.4}),
        ("timeouts", stall, {"latency_ms": (HUB_TIMEOUT + 0.5) * 1000}),
        (
            "slow answers, 429 and 503",
            phase,
            {"latency_ms": 1200, "rate_429": 0.3, "rate_503": 0.2, "retry_after_seconds": 1.3},
        ),
    ]


def test_after_a_storm_of_429_503_and_timeouts_the_hub_converges_within_its_budget(
    tmp_path: Path, emulator: EmulatorProcess, size: Size, report: Report
) -> None:
    full = size.full
    user_count, budget = (40, 150) if full else (10, 90)
    phase, stall = (30.0, 10.0) if full else (2.5, 2.0)
    rng = random.Random(size.seed)
    seed_note = f"(seed {size.seed})"

    server = sync_server(tmp_path / "server", emulator, PRESENCEBRIDGE_GRAPH_BUDGET=str(budget))
    server.start()
    try:
        with server.client() as api, control_client(emulator) as control:
            users = create_users(api, control, user_count, keepers=user_count // 4)
            for user in users:
                if user.keeper:
                    for state in ("ringing", "connected"):
                        event = {"user": user.id, "call_id": "kept", "state": state}
                        expect_ok(api.post("/api/v1/telephony/events", json=event))
                        user.call_event("kept", state, acknowledged=True)
            report.add("users", len(users))
            converge(api, control, users, 20, f"before the storm {seed_note}")

            report.add("events sent (all acknowledged)", 0)  # first in the summary
            driver = Driver(rng, users)
            before = emulator_counts(control)
            for name, seconds, faults in storm(phase, stall):
                settings = {"seed": rng.randrange(2**31), **faults}
                expect_ok(control.post("/_emulator/faults", json=settings))
                sent = run_for(seconds, driver, api, control)
                report.add(f"events sent during {name}", sent)
                report.add("events sent (all acknowledged)", sent)
            expect_ok(control.post("/_emulator/faults", json={}))  # the storm is over
            report.add("events sent: wind-down", wind_down(api, control, users, kept_call))

            took = converge(api, control, users, 60 if full else 45, f"after the storm {seed_note}")
            report.add("seconds to converge after the storm", round(took))
            report.add("users checked (hub = Teams = model)", len(users))

            after = emulator_counts(control)
            stats = expect_ok(control.get("/_emulator/stats"))
            injected = {code: after[code] - before[code] for code in ("429", "503")}
            timeouts = metric_total(server, "presencebridge_graph_requests_total", status="error")
            report.add("faults injected: 429", injected["429"])
            report.add("faults injected: 503", injected["503"])
            report.add("faults: hub requests timed out", round(timeouts))
            sync = expect_ok(api.get("/api/v1/admin/teams-sync"))
            report.add("Graph requests the hub paid from its budget", sync["budget"]["spent_total"])
            report.add("Graph budget: hub's limit per 30 s", budget)
            report.add("Graph budget: peak requests in 30 s", stats["budget"]["peak"])
            report.add("Graph budget: 429 for exceeding it", stats["throttled"])

            assert injected["429"] > 0 and injected["503"] > 0, stats
            assert timeouts > 0, "no Graph request of the hub timed out"
            assert stats["throttled"] == 0, f"Graph throttled the hub {seed_note}"
            assert stats["budget"]["peak"] <= budget <= stats["budget"]["limit"], stats["budget"]
    finally:
        server.stop()


def kept_call(user: UserModel) -> str | None:
    return "kept" if user.keeper else None


def run_for(seconds: float, driver: Driver, api: httpx.Client, control: httpx.Client) -> int:
    """Send events for `seconds`, about 20 a second; each must be acknowledged."""
    sent = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        user, op = driver.next()
        expect_ok(send(api, control, user, op))
        driver.record(user, op, acknowledged=True)
        sent += 1
        time.sleep(0.05)
    return sent


def emulator_counts(control: httpx.Client) -> dict[str, int]:
    injected: dict[str, int] = expect_ok(control.get("/_emulator/stats"))["injected"]
    return injected
