"""Control API, subscriptions: see them all, send lifecycle events, drop one silently."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, HTTPException

from presencebridge.emulator.routing import State, Strict
from presencebridge.emulator.state import Emulator
from presencebridge.emulator.subscriptions import Subscription

# Full paths in every route, as SPEC §7 names them, so a grep for one finds it.
router = APIRouter()


class LifecycleIn(Strict):
    event: Literal["reauthorizationRequired", "subscriptionRemoved", "missed"]


def _described(subscription: Subscription) -> dict[str, Any]:
    return subscription.to_json() | {
        "dropped": subscription.dropped,
        "reauthorizationRequired": subscription.reauthorization_required,
        "watchedUserCount": len(subscription.user_ids),
    }


def _subscription_or_404(state: Emulator, subscription_id: str) -> Subscription:
    subscription = state.live_subscription(subscription_id)
    if subscription is None:
        raise HTTPException(404, f"no live subscription {subscription_id!r}")
    return subscription


@router.get("/_emulator/subscriptions")
async def all_subscriptions(state: State) -> dict[str, Any]:
    value = []
    for sid in list(state.subscriptions):
        subscription = state.live_subscription(sid)
        if subscription is not None:
            value.append(_described(subscription))
    return {"value": value}


@router.post("/_emulator/subscriptions/{subscription_id}/lifecycle")
async def lifecycle(
    subscription_id: str, body: Annotated[LifecycleIn, Body()], state: State
) -> dict[str, Any]:
    subscription = _subscription_or_404(state, subscription_id)
    sent = state.lifecycle(subscription, body.event)
    if body.event == "subscriptionRemoved":
        state.remove_subscription(subscription.id)
        state.stats.subscriptions["removed"] += 1
    return {"subscription": subscription.id, "event": body.event, "sent": sent}


@router.post("/_emulator/subscriptions/{subscription_id}/drop")
async def drop(subscription_id: str, state: State) -> dict[str, Any]:
    """From now on the subscription delivers nothing, and says nothing about it."""
    subscription = _subscription_or_404(state, subscription_id)
    subscription.dropped = True
    return {"subscription": subscription.id, "dropped": True}
