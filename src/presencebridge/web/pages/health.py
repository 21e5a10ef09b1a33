"""Sync health (`/console/sync`): read mode, Graph budget, polls, request rates over the
last 5 and 15 minutes, the users whose sync fails or is held, subscriptions, errors.

`?partial=1` is the live part alone, which the page reloads every few seconds.
"""

from __future__ import annotations

import math
import time
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from presencebridge import metrics
from presencebridge.service import sync_health
from presencebridge.web import health, security, sync_status
from presencebridge.web.forms import authorize
from presencebridge.web.labels import N_
from presencebridge.web.page import Page

router = APIRouter(include_in_schema=False)

ERRORS_SHOWN = 20
RATE_WINDOWS = (5, 15)  # minutes


def sync_context(page: Page) -> dict[str, Any]:
    """Everything the page shows; without a Teams sync, what can be said without one."""
    state = page.request.app.state
    sync = getattr(state, "teams_sync", None)
    groups = sorted(page.hub.groups(), key=lambda g: g.name.lower())
    context: dict[str, Any] = {"enabled": sync is not None, "groups": groups}
    context["histograms"] = _histograms(page)
    connectors = getattr(state, "connectors", None)
    context["connectors"] = [] if connectors is None else connectors.health()
    context["requests"] = health.graph_requests()
    monitor: health.HealthMonitor = state.console_health
    errors: list[dict[str, Any]] = [
        {
            "at": _local(e.at),
            "first": _local(e.first) if e.count > 1 else None,
            "count": e.count,
            "source": e.source,
            "message": e.message,
        }
        for e in monitor.errors.records
    ]
    context["attention"] = sync_status.attention(page)
    if sync is None:
        context["errors"] = list(reversed(errors))
        return context
    context.update(_sync_figures(page, sync, monitor))
    context["rates"] = _rates(page, sync.health)
    context["subscriptions"] = _subscriptions(page, sync)
    errors.extend(_subscription_errors(sync))
    errors.extend(_storms(page, sync.health))
    context["accounts"] = sync.accounts.describe() if sync.accounts is not None else []
    context["errors"] = sorted(
        errors, key=lambda e: e["at"].timestamp() if e["at"] else 0.0, reverse=True
    )[:ERRORS_SHOWN]
    return context


def _local(at: float) -> datetime:
    return datetime.fromtimestamp(at).astimezone()


def _rates(page: Page, health_: sync_health.SyncHealth) -> dict[str, Any]:
    """Per operation (all of them first): requests, 429s, 5xx and no answers per minute
    over each window; the share of trouble over the shortest."""
    now = time.time()
    windows = {m: {r.operation: r for r in health_.counts.rates(m, now)} for m in RATE_WINDOWS}
    operations = sorted(set().union(*windows.values()), key=lambda o: (o != "", o))
    rows = []
    for operation in operations:
        cells = []
        for minutes in RATE_WINDOWS:
            rate = windows[minutes].get(operation)
            cells.append(
                None
                if rate is None
                else {
                    "requests": rate.per_minute(rate.requests),
                    "throttled": rate.per_minute(rate.throttled),
                    "server_errors": rate.per_minute(rate.server_errors),
                    "network_errors": rate.per_minute(rate.network_errors),
                    "failed_share": rate.failed / rate.requests if rate.requests else 0.0,
                }
            )
        rows.append({"operation": operation or page._("All operations"), "cells": cells})
    short = windows[RATE_WINDOWS[0]][""]
    return {
        "windows": RATE_WINDOWS,
        "rows": rows,
        "covered_minutes": short.minutes,
        "throttled_share": short.throttled / short.requests if short.requests else 0.0,
        "error_share": (short.server_errors + short.network_errors) / short.requests
        if short.requests
        else 0.0,
        "per_minute": short.per_minute(short.requests),
    }


STORM_TEXTS = {
    "429": N_(
        "Graph throttles: %(n)s answers 429 Too Many Requests (%(operations)s); each request "
        "is retried after the time Graph asks for (Retry-After)."
    ),
    "5xx": N_(
        "Graph server errors: %(n)s answers %(statuses)s (%(operations)s); each request is "
        "retried with a growing pause."
    ),
    "error": N_(
        "Graph did not answer %(n)s requests (%(operations)s): no connection or a timeout; "
        "each request is retried with a growing pause."
    ),
}


def _storms(page: Page, health_: sync_health.SyncHealth) -> list[dict[str, Any]]:
    """Throttling, server errors and no answers, one line per storm with its count."""
    lines = []
    for storm in health_.storms.lines:
        operations = ", ".join(
            f"{op} {page.fmt.number(n)}" for op, n in storm.operations.most_common()
        )
        statuses = ", ".join(
            f"{st} ×{page.fmt.number(n)}" for st, n in sorted(storm.statuses.items())
        )
        text = page._(STORM_TEXTS[storm.kind]) % {
            "n": page.fmt.number(storm.count),
            "operations": operations,
            "statuses": statuses,
        }
        lines.append(
            {
                "at": _local(storm.last),
                "first": _local(storm.first) if storm.count > 1 else None,
                "count": storm.count,
                "source": "graph",
                "message": text,
                "ongoing": time.time() - storm.last <= sync_health.STORM_GAP_SECONDS,
            }
        )
    return lines


def _histograms(page: Page) -> list[dict[str, Any]]:
    shown = [
        ("lag", page._("Teams sync latency (read started until applied)"), metrics.SYNC_LAG),
        ("graph", page._("Graph request latency"), metrics.GRAPH_SECONDS),
    ]
    result = []
    for key, title, histogram in shown:
        buckets, count, total = health.histogram(histogram)
        result.append(
            {
                "id": key,
                "title": title,
                "bars": health.bar_chart(buckets, page.fmt.number),
                "count": count,
                "mean": total / count if count else None,
            }
        )
    return result


def _sync_figures(page: Page, sync: Any, monitor: health.HealthMonitor) -> dict[str, Any]:
    users = len(page.hub.synced_users())
    budget = sync.budget
    return {
        "read_mode": sync.settings.read_mode,
        "graph_url": sync.settings.graph_url,
        "synced_users": users,
        "budget": {
            "limit": budget.limit,
            "window": budget.window,
            "read_limit": budget.read_limit,
            "used": budget.used(),
            "spent_total": budget.spent_total,
        },
        "spark": health.sparkline(list(monitor.samples)),
        "poll": {
            "rounds": sync.poller.rounds,
            "last_round_seconds": sync.poller.last_round_seconds,
            "interval_seconds": sync.poller.interval(users),
        },
    }


def _subscriptions(page: Page, sync: Any) -> list[dict[str, Any]]:
    """Notify mode: the subscriptions with their expiry (none in poll mode)."""
    if sync.notify is None:
        return []
    now = page.hub.clock.now()
    subscriptions = []
    for item in sync.notify.manager.describe():
        expires = datetime.fromisoformat(item["expires"])
        left = (expires - now).total_seconds()
        subscriptions.append({**item, "expires_at": expires, "left": left})
    return subscriptions


def _subscription_errors(sync: Any) -> list[dict[str, Any]]:
    """Notify mode: the subscription manager's recent errors ("<ISO time> <message>")."""
    if sync.notify is None:
        return []
    errors: list[dict[str, Any]] = []
    for line in sync.notify.manager.errors:
        stamp, _sep, message = line.partition(" ")
        at: datetime | None
        try:
            at = datetime.fromisoformat(stamp)
        except ValueError:
            at, message = None, line
        errors.append({"at": at, "source": "subscriptions", "message": message})
    return errors


@router.get("/console/sync")
async def sync_page(request: Request, partial: bool = False) -> Response:
    page = Page(request)
    if partial and await security.console_session(request) is None:
        return JSONResponse({"detail": "not signed in", "code": "http_401"}, 401)
    await authorize(request, page)
    context = sync_context(page)
    template = "_sync_live.html" if partial else "sync.html"
    return page.render(template, nav="sync", math=math, **context)
