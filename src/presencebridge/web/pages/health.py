"""Sync health (`/console/sync`): read mode, Graph budget, polls, subscriptions, errors.

`?partial=1` is the live part alone, which the page reloads every few seconds.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from presencebridge import metrics
from presencebridge.web import health, security
from presencebridge.web.forms import authorize
from presencebridge.web.page import Page

router = APIRouter(include_in_schema=False)

ERRORS_SHOWN = 20


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
        {"at": datetime.fromtimestamp(e.at).astimezone(), "source": e.source, "message": e.message}
        for e in monitor.errors.records
    ]
    if sync is None:
        context["errors"] = list(reversed(errors))
        return context
    context.update(_sync_figures(page, sync, monitor))
    context["subscriptions"] = _subscriptions(page, sync)
    errors.extend(_subscription_errors(sync))
    context["accounts"] = sync.accounts.describe() if sync.accounts is not None else []
    context["errors"] = sorted(
        errors, key=lambda e: e["at"].timestamp() if e["at"] else 0.0, reverse=True
    )[:ERRORS_SHOWN]
    return context


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
                "bars": health.bar_chart(buckets),
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
