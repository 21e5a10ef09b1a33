"""Benchmarks (`presencebridge bench SCENARIO`): sync latency, throughput, Graph efficiency.

Every scenario runs the Graph emulator and the server as separate processes, joined
only by configuration; the process running the scenario is the load generator.
Results go to `bench/results/<scenario>-<timestamp>.{json,png}` and
`bench/results/latest-<scenario>.json`. Nothing here is imported by the product.

    procs.py      the emulator and server processes, /proc CPU and memory readings
    emulator.py   the product's emulator plus a request log (its own process)
    rawhttp.py    a lean HTTP/1.1 client, so the load generator leaves CPU to the server
    workload.py   users, Teams-client changes, the presence stream, latency matching
    naive.py      a Graph client written the way common integrations are
    report.py     machine facts, percentiles, JSON and PNG
    scenarios/    one module per scenario
"""

from __future__ import annotations

import asyncio
import importlib
import json
import shutil
import tempfile
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

from presencebridge.bench import report
from presencebridge.bench.scenarios.common import Options

# scenario name -> module in presencebridge.bench.scenarios
SCENARIOS = {
    "teams-to-uc": "teams_to_uc",
    "uc-to-teams": "uc_to_teams",
    "throughput": "throughput",
    "memory": "memory",
    "poll-vs-notify": "poll_vs_notify",
    "naive-baseline": "naive_baseline",
    "directory": "directory",
}
# Long runs, not part of `bench all` (nor of `make bench`): each has its own command,
# `python -m presencebridge.bench.scenarios.<module>` (`make soak`).
LONG_SCENARIOS = {
    "soak": "soak",
    "sip-dialog": "sip_dialog",  # needs Kamailio (make sysdeps)
}
QUICK_USERS = 20
QUICK_SECONDS = 1.5
DEFAULT_SECONDS = 30.0


def run(
    scenario: str,
    users: list[int] | None = None,
    rate: float | None = None,
    duration: float | None = None,
    quick: bool = False,
    full: bool = False,
    out: Path = Path("bench/results"),
    keep: bool = False,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Run one scenario; returns the JSON file written. `extra`: the scenario's own
    settings (`Options.extra`)."""
    name = {**SCENARIOS, **LONG_SCENARIOS}[scenario]
    module = importlib.import_module(f"presencebridge.bench.scenarios.{name}")
    if users is None:
        users = (
            [getattr(module, "QUICK_USERS", QUICK_USERS)]
            if quick
            else list(module.FULL_USERS if full else module.DEFAULT_USERS)
        )
    if duration is None:
        duration = QUICK_SECONDS if quick else getattr(module, "DEFAULT_SECONDS", DEFAULT_SECONDS)
    work = Path(tempfile.mkdtemp(prefix=f"presencebridge-bench-{scenario}-"))
    options = Options(users, rate, duration, quick, out, work, dict(extra or {}))
    started = report.now_iso()
    load = report.load_average()
    try:
        parameters, figures, plot = _run_loop(module.run(options))
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
    parameters = {"_started": started, "quick": quick, "load_average_at_start": load, **parameters}
    notes = list(getattr(module, "NOTES", ()))
    return report.write(out, scenario, parameters, figures, plot, notes)


def _run_loop(coroutine: Coroutine[Any, Any, Any]) -> Any:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
        return asyncio.run(coroutine)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coroutine)


def headline(path: Path) -> list[str]:
    """A few lines that say what a result file found."""
    data = json.loads(path.read_text())
    figures = data["figures"]
    formatter = HEADLINES.get(data["scenario"])
    return [] if formatter is None else formatter(figures)


def _sizes(figures: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Each measured size's figures, with its label ("1,000 users")."""
    for size, f in figures.get("sizes", {}).items():
        yield f"{int(size):,} users", f


def _teams_to_uc(figures: dict[str, Any]) -> list[str]:
    lines = []
    for n, f in _sizes(figures):
        lat = f["latency_seconds"]
        lines.append(
            f"{n}: p50 {_s(lat['p50'])}  p95 {_s(lat['p95'])}  p99 {_s(lat['p99'])}, "
            f"{f['poll']['graph_requests_per_round']} requests/round, "
            f"reads {f['graph']['read_share_of_budget']:.0%} of the budget"
        )
    return lines


def _uc_to_teams(figures: dict[str, Any]) -> list[str]:
    lines = []
    for n, f in _sizes(figures):
        for name, p in f["phases"].items():
            lat = p["hub_share_seconds"]
            lines.append(
                f"{n}, {name} ({p['rate_per_second']:g} events/s): hub share p50 "
                f"{_s(lat['p50'])} p99 {_s(lat['p99'])}, "
                f"{p['graph_writes_per_effective_change']} writes per effective change"
            )
    return lines


def _throughput(figures: dict[str, Any]) -> list[str]:
    lines = []
    for n, f in _sizes(figures):
        for label, r in f.items():
            if "sustained_events_per_second" not in r:
                lines.append(f"{n}, {label}: {r.get('skipped')}")
                continue
            # Runs before the batch endpoint have no batched figure.
            batched = r.get("sustained_events_per_second_batched")
            lines.append(
                f"{n}, {label}: {r['sustained_events_per_second']:,} durable events/s "
                f"({r['best_clients']} clients), "
                f"{'-' if batched is None else format(batched, ',')} in batches, "
                "lost after kill -9: "
                f"{r['durability']['acknowledged_but_lost']}"
            )
    return lines


def _memory(figures: dict[str, Any]) -> list[str]:
    lines = []
    for n, f in _sizes(figures):
        per_user = f["bytes_per_user_above_idle"]["working"]
        rss = f["working_rss_bytes"] / 2**20
        lines.append(f"{n}: RSS {rss:.0f} MiB, {per_user:,} bytes/user above idle")
    for span, slope in figures.get("bytes_per_user_slope", {}).items():
        lines.append(f"slope {span}: {slope:,} bytes per user")
    return lines


def _poll_vs_notify(figures: dict[str, Any]) -> list[str]:
    lines = []
    for n, f in _sizes(figures):
        for mode in ("poll", "notify"):
            lat = f[mode]["latency_seconds"]
            lines.append(
                f"{n}, {mode}: p50 {_s(lat['p50'])} p95 {_s(lat['p95'])}, "
                f"{f[mode]['graph_requests_per_user_hour']} Graph requests/user-hour"
                + _notify_costs(f[mode])
            )
    return lines


def _notify_costs(f: dict[str, Any]) -> str:
    """Notify mode against issue 16's goal (p95 <= 500 ms) and what it costs."""
    if "server_cpu_us_per_notification" not in f:
        return ""
    p95 = f["latency_seconds"]["p95"]
    return (
        f" (target p95 <= 500 ms: {_met(p95 is not None and p95 <= 0.5)}); "
        f"{f['renewals_per_user_hour']} renewals/user-hour, server CPU "
        f"{f['server_cpu_us_per_notification']} us per notification"
    )


def _naive_baseline(figures: dict[str, Any]) -> list[str]:
    lines = []
    for n, f in _sizes(figures):
        for kind, r in f["ratios_naive_to_ours"].items():
            lines.append(
                f"{n}, naive/ours ({kind}): requests x{r['graph_requests_per_user_hour']}, "
                f"latency p50 x{r['latency_p50']}, p95 x{r['latency_p95']}"
            )
        lead = f.get("against_a_get_every_10_s")
        if lead:
            for name in ("ours-poll", "ours-notify"):
                o = lead[name]
                lines.append(
                    f"{n}, {name}: {o['requests_per_user_hour']} Graph requests per user-hour "
                    f"(p95 {_s(o['p95_seconds'])}) vs "
                    f"{lead['get_every_10_s_requests_per_user_hour']:g} for a GET per user "
                    "every 10 s: "
                    f"x{o['times_fewer_requests']} fewer"
                )
    return lines


def _growth(figures: dict[str, Any]) -> list[str]:
    lines = []
    for resource, found in figures.items():
        measured = "; ".join(
            f"{label} " + ", ".join(f"{int(n):,}: {v:g}" for n, v in values.items())
            for label, values in found["series"].items()
            if values
        )
        missing = ", ".join(f"{n:,}" for n in found["missing_sizes"]) or "none"
        lines.append(
            f"{resource} ({found['unit']}): {measured or 'not measured'}; missing sizes: {missing}"
        )
    return lines


def _soak(figures: dict[str, Any]) -> list[str]:
    lines = []
    v = figures["verdict"]
    if figures.get("aborted"):
        lines.append(f"ABORTED: {figures['aborted'].splitlines()[0]}")
    worst = max((s["latency_seconds"]["p99"] or 0 for s in figures["samples"]), default=0)
    lines.append(
        f"{figures['users']:,} users, {figures['rate_per_second']:g} events/s for "
        f"{figures['duration_seconds'] / 60:g} min: {figures['events_ok']:,} of "
        f"{figures['events_sent']:,} events answered 2xx, worst window p99 {_s(worst)}"
    )
    lines.append(
        f"RSS {v['rss_after_warmup_bytes'] / 2**20:.1f} -> {v['rss_end_bytes'] / 2**20:.1f} "
        f"MiB after warm-up: {v['rss_growth_percent']:+.2f} % (target <= "
        f"{v['rss_target_percent']:g} %: {_met(v['rss_met'])})"
    )
    e, f = v["errors_after_warmup"], v["server_failures_after_warmup"]
    lines.append(
        f"errors {v['errors_total']}, server failures {v['server_failures_total']}; after "
        f"warm-up, first/second half: errors {e['first_half']}/{e['second_half']}, server "
        f"failures {f['first_half']}/{f['second_half']} "
        f"(target no growth: {_met(v['errors_met'])})"
    )
    return lines


def _dropped(count: int | None) -> str:
    return "" if count is None else f" (datagrams the kernel dropped: {count:,})"


def _sip_dialog(figures: dict[str, Any]) -> list[str]:
    lines = []
    for n, f in _sizes(figures):
        latency = f["latency_seconds"]
        p99 = latency.get("p99")
        # The goal is the hub's share (its own histogram, a bucket bound); without it, the
        # end to end latency, an upper bound of it.
        share = f.get("hub_share_seconds", {}).get("p99_at_most")
        judged = share if share is not None else p99
        lines.append(
            f"{n}: subscribed in {_s(f['subscribe_seconds'])} at {f['subscribe_rate']:g}/s; "
            f"{f['publishes_sent']:,} dialog changes at {f['rate_per_second']:g}/s: "
            f"PUBLISH -> stream p50 {_s(latency.get('p50'))}, p99 {_s(p99)}; hub share p99 "
            f"<= {_s(share)} (target <= 100 ms: {_met(judged is not None and judged <= 0.1)})"
        )
        lines.append(
            f"changes lost {f['changes_lost']}{_dropped(f.get('udp_datagrams_dropped'))}, "
            f"subscriptions lost {f['subscriptions_lost']} "
            f"(target 0: {_met(f['subscriptions_lost'] == 0)}), outlet PUBLISHes per change "
            f"{f['outlet_publishes_per_change']:g} (target <= 2: "
            f"{_met(f['outlet_publishes_per_change'] <= 2)})"
        )
    return lines


def _directory(figures: dict[str, Any]) -> list[str]:
    lines = []
    for n, f in _sizes(figures):
        full, delta = f["full"], f["delta"]
        lines.append(
            f"{n}: full sync {_s(full['seconds'])} (server CPU {full['server_cpu_seconds']:.1f} s, "
            f"peak RSS {full['peak_rss_bytes'] / 2**20:.0f} MiB), delta of "
            f"{f['changes']['total']:,} changes {_s(delta['seconds'])}, "
            f"idle run {_s(f['idle']['seconds'])}"
        )
    return lines


def _met(met: bool) -> str:
    return "met" if met else "MISSED"


# scenario name -> its result file's headline (SCENARIOS and LONG_SCENARIOS, by a test)
HEADLINES: dict[str, Callable[[dict[str, Any]], list[str]]] = {
    "teams-to-uc": _teams_to_uc,
    "uc-to-teams": _uc_to_teams,
    "throughput": _throughput,
    "memory": _memory,
    "poll-vs-notify": _poll_vs_notify,
    "naive-baseline": _naive_baseline,
    "directory": _directory,
    "soak": _soak,
    "sip-dialog": _sip_dialog,
    "growth": _growth,
}


def _s(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"
