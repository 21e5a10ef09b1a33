"""The signed outgoing webhooks for an administrator (issue 17 part 4, docs/webhooks.md):
each webhook's state, pending and dead counts and dead letters; a dead letter sent
again or discarded. The admin token only; never the secret.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request

from presencebridge.adapters.store.webhooks import OutboxEntry
from presencebridge.api import responses
from presencebridge.api.auth import Principal, principal
from presencebridge.api.schemas import iso
from presencebridge.core.errors import Reason, Rejected
from presencebridge.service.webhooks import Webhooks

router = APIRouter(
    prefix="/api/v1/admin/webhooks",
    dependencies=[Depends(principal)],
    responses=responses.API_ERRORS,
)
Caller = Annotated[Principal, Depends(principal)]
Name = Annotated[str, Path(pattern=r"^[a-z][a-z0-9_-]{0,31}$")]
# Row ids of the outbox: bounded so any number in the path fits the database's integer.
EntryId = Annotated[int, Path(ge=1, le=2**31 - 1)]


def webhooks_of(request: Request) -> Webhooks | None:
    connectors = request.app.state.connectors
    return None if connectors is None else connectors.webhooks


def dead_letter(entry: OutboxEntry) -> dict[str, Any]:
    try:
        body: Any = json.loads(entry.body)
    except ValueError:
        body = None
    return {
        "id": entry.id,
        "user_id": entry.user_id,
        "event": entry.event,
        "idempotency_key": entry.event_id,
        "created_at": iso(entry.created_at),
        "dead_at": iso(entry.dead_at),
        "attempts": entry.attempts,
        "last_error": entry.last_error,
        "body": body,
    }


@router.get("")
async def list_webhooks(who: Caller, request: Request) -> dict[str, Any]:
    """Each configured webhook: state, counts, and its newest dead letters."""
    hooks = webhooks_of(request)
    reports = [] if hooks is None else await hooks.reports()
    return {
        "webhooks": [
            {
                "name": r.name,
                "url": r.url,
                "groups": list(r.groups),
                "up": r.up,
                "detail": r.detail,
                "pending": r.pending,
                "dead": r.dead,
                "delivered": r.delivered,
                "failed": r.failed,
                "dead_letters": [dead_letter(e) for e in r.dead_letters],
            }
            for r in reports
        ]
    }


def _unknown(name: str, entry_id: int) -> Rejected:
    return Rejected(Reason.NOT_FOUND, f"webhook {name!r} has no dead letter {entry_id}")


@router.post("/{name}/dead/{entry_id}/retry")
async def send_again(
    name: Name, entry_id: EntryId, who: Caller, request: Request
) -> dict[str, Any]:
    """Send a dead letter again (same idempotency key, attempts from zero)."""
    hooks = webhooks_of(request)
    if hooks is None or not await hooks.send_again(name, entry_id):
        raise _unknown(name, entry_id)
    return {"id": entry_id, "queued": True}


@router.delete("/{name}/dead/{entry_id}", status_code=204)
async def discard(name: Name, entry_id: EntryId, who: Caller, request: Request) -> None:
    """Discard a dead letter for good."""
    hooks = webhooks_of(request)
    if hooks is None or not await hooks.discard(name, entry_id):
        raise _unknown(name, entry_id)
