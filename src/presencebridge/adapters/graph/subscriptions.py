"""Notify mode (SPEC §7a): service accounts and their presence subscriptions.

Presence subscriptions need a signed-in user and watch at most 650 users each,
one per account and app, for at most 60 minutes. So users are cut into shards of
650, each shard is watched by one service account (signed in once by device
code, its token cache stored encrypted), and every subscription is renewed well
before it expires. Users beyond the accounts' reach stay with the poller, and a
slow poll runs under everyone because subscriptions have been seen to stop
silently.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import re
import secrets
import threading
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import msal

from presencebridge.adapters.credentials import token_cache
from presencebridge.adapters.graph.auth import authority_url, instance_discovery, msal_http_client
from presencebridge.adapters.graph.budget import RequestBudget
from presencebridge.adapters.graph.notifications import NotificationKeys

log = logging.getLogger(__name__)

SCOPES = ["Presence.Read.All"]
SHARD_SIZE = 650
LIFETIME = timedelta(minutes=55)  # Graph allows 60; the margin absorbs clock skew
RENEW_BEFORE = timedelta(minutes=20)
ACCOUNT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass
class ServiceAccount:
    name: str
    app: msal.PublicClientApplication
    status: str = "signed_out"  # signed_out | pending | active | error
    detail: str | None = None
    username: str | None = None
    sign_in: asyncio.Task[None] | None = None
    flow: dict[str, Any] | None = field(default=None, repr=False)  # the pending device code


class ServiceAccounts:
    """Service accounts ("communication users") signed in by device code."""

    def __init__(
        self,
        folder: Path,
        secret_key: str | None,
        authority: str,
        tenant_id: str,
        client_id: str,
        ca_bundle: Path | None,
    ) -> None:
        self.folder = folder
        self.secret_key = secret_key
        self.authority = authority
        self.tenant_id = tenant_id
        self.client_id = client_id
        self.ca_bundle = ca_bundle
        self.accounts: dict[str, ServiceAccount] = {}
        self._sign_in_listeners: list[Callable[[], None]] = []
        self._removal_listeners: list[Callable[[str], Awaitable[None]]] = []

    def add_sign_in_listener(self, listener: Callable[[], None]) -> None:
        """Called when an account has completed its sign-in (the subscriptions wake)."""
        self._sign_in_listeners.append(listener)

    def add_removal_listener(self, listener: Callable[[str], Awaitable[None]]) -> None:
        """Awaited before an account is removed, while its token still works (its
        subscriptions are deleted at Graph and its users go to the other accounts)."""
        self._removal_listeners.append(listener)

    def _cache_path(self, name: str) -> Path:
        return self.folder / f"{name}.cache"

    def _account(self, name: str) -> ServiceAccount:
        app = msal.PublicClientApplication(
            self.client_id,
            authority=authority_url(self.authority, self.tenant_id),
            token_cache=token_cache(self._cache_path(name), self.secret_key),
            http_client=msal_http_client(self.ca_bundle),
            instance_discovery=instance_discovery(self.authority),
        )
        account = ServiceAccount(name, app)
        signed_in = app.get_accounts()
        if signed_in:
            account.status = "active"
            account.username = signed_in[0].get("username")
        return account

    async def load(self) -> None:
        """Every account signed in before, from its encrypted cache.

        Making an msal app reads the authority's configuration: blocking, so on a thread.
        """
        if not self.folder.is_dir():
            return
        for path in sorted(self.folder.glob("*.cache")):
            self.accounts[path.stem] = await asyncio.to_thread(self._account, path.stem)

    def __contains__(self, name: object) -> bool:
        return name in self.accounts

    def active(self) -> list[str]:
        return sorted(n for n, a in self.accounts.items() if a.status == "active")

    async def begin_sign_in(self, name: str) -> dict[str, Any]:
        """Start a device-code sign-in; an administrator completes it in a browser."""
        if not ACCOUNT_NAME.match(name):
            raise ValueError("a service account name is 1-64 letters, digits, '.', '_' or '-'")
        account = self.accounts.get(name)
        if account is None:
            account = await asyncio.to_thread(self._account, name)
            self.accounts[name] = account
        flow = await asyncio.to_thread(account.app.initiate_device_flow, scopes=SCOPES)
        if "user_code" not in flow:
            raise RuntimeError(f"device code refused: {flow.get('error_description', flow)}")
        _stop_polling(account)  # a sign-in started before: its code is no longer wanted
        account.status = "pending"
        account.detail = None
        account.flow = flow
        account.sign_in = asyncio.create_task(self._complete(account, flow))
        return {"name": name, **_device_code(flow)}

    def device_code(self, name: str) -> dict[str, Any] | None:
        """A pending sign-in's code, where to enter it and until when (None: none)."""
        account = self.accounts.get(name)
        if account is None or account.status != "pending" or account.flow is None:
            return None
        return _device_code(account.flow)

    async def remove(self, name: str) -> bool:
        """Remove an account: its subscriptions first (the listeners, while its token
        works), then a pending sign-in is stopped and the encrypted cache deleted.
        False if there is no such account."""
        account = self.accounts.get(name)
        path = self._cache_path(name)
        if account is None and not path.exists():
            return False
        for listener in self._removal_listeners:
            await listener(name)
        self.accounts.pop(name, None)
        if account is not None:
            _stop_polling(account)
            account.status = "signed_out"
        await asyncio.to_thread(path.unlink, True)
        log.info("service account %s removed", name)
        return True

    async def _complete(self, account: ServiceAccount, flow: dict[str, Any]) -> None:
        result = await _own_thread(account.app.acquire_token_by_device_flow, flow)
        if self.accounts.get(account.name) is not account or account.flow is not flow:
            # Removed, or signed in anew, while this code waited: its answer counts for
            # nothing (and a removed account's cache must stay gone).
            if self.accounts.get(account.name) is None:
                await asyncio.to_thread(self._cache_path(account.name).unlink, True)
            return
        account.flow = None
        if "access_token" in result:
            account.status = "active"
            claims = result.get("id_token_claims") or {}
            account.username = claims.get("preferred_username")
            log.info("service account %s signed in", account.name)
            for listener in self._sign_in_listeners:
                listener()
        else:
            account.status = "error"
            account.detail = str(result.get("error_description") or result.get("error"))
            log.warning("service account %s: sign-in failed: %s", account.name, account.detail)

    async def token(self, name: str) -> str:
        account = self.accounts[name]
        signed_in = await asyncio.to_thread(account.app.get_accounts)
        result = None
        if signed_in:
            result = await asyncio.to_thread(
                account.app.acquire_token_silent, SCOPES, account=signed_in[0]
            )
        if not result or "access_token" not in result:
            account.status = "error"
            account.detail = "the sign-in has expired: sign the account in again"
            raise RuntimeError(f"service account {name}: {account.detail}")
        return str(result["access_token"])

    def describe(self) -> list[dict[str, Any]]:
        return [
            {"name": a.name, "status": a.status, "username": a.username, "detail": a.detail}
            for a in sorted(self.accounts.values(), key=lambda a: a.name)
        ]


async def _own_thread(fn: Callable[[dict[str, Any]], dict[str, Any]], flow: dict[str, Any]) -> Any:
    """`fn(flow)` on a thread of its own: msal polls a device code for up to 15 minutes,
    and a few sign-ins left waiting must not take the shared pool that `to_thread` (and
    so every account's token) runs on."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[Any] = loop.create_future()

    def settle(result: Any, error: BaseException | None) -> None:
        if done.done():
            return
        if error is None:
            done.set_result(result)
        else:
            done.set_exception(error)

    def run() -> None:
        result, failure = None, None
        try:
            result = fn(flow)
        except BaseException as error:  # handed to the awaiting task
            failure = error
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody waits
            loop.call_soon_threadsafe(settle, result, failure)

    threading.Thread(target=run, name="device-code", daemon=True).start()
    return await done


def _device_code(flow: dict[str, Any]) -> dict[str, Any]:
    expires_at = flow.get("expires_at")
    return {
        "user_code": flow["user_code"],
        "verification_uri": flow.get("verification_uri"),
        "message": flow.get("message"),
        "expires_in": flow.get("expires_in"),
        "expires_at": None if expires_at is None else datetime.fromtimestamp(expires_at, UTC),
    }


def _stop_polling(account: ServiceAccount) -> None:
    """msal polls a device code on a thread until it expires; an expiry in the past
    (msal's own way to abort) ends that at the next poll, and `_complete` then finds
    the flow no longer the account's and ignores the answer."""
    if account.flow is not None:
        account.flow["expires_at"] = 0
        account.flow = None


@dataclass
class Subscription:
    id: str
    account: str
    teams_ids: frozenset[str]
    client_state: str = field(repr=False)
    expires: datetime

    def checks(self, client_state: str | None) -> bool:
        return client_state is not None and hmac.compare_digest(
            client_state.encode(), self.client_state.encode()
        )


class SubscriptionManager:
    def __init__(
        self,
        accounts: ServiceAccounts,
        http: httpx.AsyncClient,
        graph_url: str,
        budget: RequestBudget,
        notification_url: str,
        keys: NotificationKeys,
        watched_ids: Callable[[], Sequence[str]],
        now: Callable[[], datetime],
    ) -> None:
        self.accounts = accounts
        self.http = http
        self.graph_url = graph_url.rstrip("/")
        self.budget = budget
        self.notification_url = notification_url
        self.keys = keys
        self.watched_ids = watched_ids
        self.now = now
        self.subscriptions: dict[str, Subscription] = {}
        self.errors: list[str] = []
        self._wake = asyncio.Event()
        accounts.add_sign_in_listener(self.wake)  # a new account can subscribe at once
        accounts.add_removal_listener(self.release)  # its users go to the other accounts

    def lookup(self, subscription_id: str) -> Subscription | None:
        return self.subscriptions.get(subscription_id)

    def covered(self) -> set[str]:
        covered: set[str] = set()
        for subscription in self.subscriptions.values():
            covered |= subscription.teams_ids
        return covered

    def wake(self) -> None:
        self._wake.set()

    async def release(self, account: str) -> None:
        """An account is being removed: its subscriptions are deleted at Graph while its
        token still works (forgotten here in any case), and the next round gives its
        users to the other accounts, or back to the poller."""
        for subscription in [s for s in self.subscriptions.values() if s.account == account]:
            try:
                await self._delete(subscription)
            except Exception as error:  # an expired sign-in: Graph lets it lapse
                self.subscriptions.pop(subscription.id, None)
                self._error(f"deleting {subscription.id} of removed {account} failed: {error}")
        self.wake()

    def users_by_account(self) -> dict[str, int]:
        """How many users each account's subscriptions watch."""
        counts: dict[str, int] = {}
        for subscription in self.subscriptions.values():
            counts[subscription.account] = counts.get(subscription.account, 0) + len(
                subscription.teams_ids
            )
        return counts

    async def run(self, interval: float = 30.0) -> None:
        while True:
            try:
                await self.reconcile()
            except Exception as error:  # keep trying; the slow poll covers the gap
                self._error(f"subscriptions: {error}")
            self._wake.clear()
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancellation
            # that meets a wake-up, and the task would outlive its stop.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval):
                    await self._wake.wait()

    def _error(self, message: str) -> None:
        log.warning(message)
        self.errors = [*self.errors[-19:], f"{self.now().isoformat()} {message}"]

    async def reconcile(self) -> None:
        """Make the subscriptions cover the watched users; renew those near expiry.

        Assignments are sticky: a user stays with the account that watches them, so
        adding one user re-creates at most the one subscription that takes them in.
        """
        remaining = set(self.watched_ids())
        plan: dict[str, set[str]] = {}
        for gone in [s for s in self.subscriptions.values() if s.account not in self.accounts]:
            self.subscriptions.pop(gone.id, None)  # its account was removed meanwhile
        for subscription in self.subscriptions.values():
            keep = subscription.teams_ids & remaining
            plan[subscription.account] = set(keep)
            remaining -= keep
        for account in self.accounts.active():
            plan.setdefault(account, set())
        waiting = sorted(remaining)
        for account in sorted(plan):
            room = SHARD_SIZE - len(plan[account])
            plan[account].update(waiting[:room])
            waiting = waiting[room:]
        have = {s.account: s for s in self.subscriptions.values()}
        for account, members in sorted(plan.items()):
            current = have.get(account)
            if current is not None and current.teams_ids != members:
                await self._delete(current)
                current = None
            if current is None and members:
                await self._create(account, frozenset(members))
            elif current is not None and current.expires - self.now() < RENEW_BEFORE:
                await self.renew(current.id)

    async def _call(self, account: str, method: str, path: str, body: Any = None) -> httpx.Response:
        await self.budget.spend(read=True)
        token = await self.accounts.token(account)
        return await self.http.request(
            method,
            self.graph_url + path,
            json=body,
            headers={"Authorization": f"Bearer {token}"},
        )

    async def _create(self, account: str, shard: frozenset[str]) -> None:
        client_state = secrets.token_urlsafe(32)
        quoted = ",".join(f"'{i}'" for i in sorted(shard))
        expires = self.now() + LIFETIME
        body = {
            "changeType": "updated",
            "resource": f"/communications/presences?$filter=id in ({quoted})",
            "notificationUrl": self.notification_url,
            "lifecycleNotificationUrl": self.notification_url,
            "expirationDateTime": expires.isoformat(),
            "clientState": client_state,
            "includeResourceData": True,
            "encryptionCertificate": self.keys.certificate_base64(),
            "encryptionCertificateId": self.keys.certificate_id,
        }
        response = await self._call(account, "POST", "/subscriptions", body)
        if response.status_code == 409:
            await self._drop_stale(account)
            response = await self._call(account, "POST", "/subscriptions", body)
        if not response.is_success:
            refused = f"{response.status_code} {response.text[:200]}"
            self._error(f"subscription for {account} refused: {refused}")
            return
        created = response.json()
        self.subscriptions[created["id"]] = Subscription(
            created["id"], account, shard, client_state, expires
        )
        log.info("subscription %s: %s watches %d users", created["id"], account, len(shard))

    async def _drop_stale(self, account: str) -> None:
        """A subscription left from before a restart holds the account's one slot."""
        response = await self._call(account, "GET", "/subscriptions")
        if response.is_success:
            for item in response.json().get("value", []):
                if item.get("id") not in self.subscriptions:
                    await self._call(account, "DELETE", f"/subscriptions/{item['id']}")

    async def renew(self, subscription_id: str) -> None:
        subscription = self.subscriptions.get(subscription_id)
        if subscription is None:
            return
        expires = self.now() + LIFETIME
        body = {"expirationDateTime": expires.isoformat()}
        response = await self._call(
            subscription.account, "PATCH", f"/subscriptions/{subscription_id}", body
        )
        if response.is_success:
            subscription.expires = expires
            return
        self._error(f"renewing {subscription_id} failed: {response.status_code}; re-subscribing")
        self.subscriptions.pop(subscription_id, None)
        self.wake()

    async def _delete(self, subscription: Subscription) -> None:
        self.subscriptions.pop(subscription.id, None)
        response = await self._call(
            subscription.account, "DELETE", f"/subscriptions/{subscription.id}"
        )
        if response.status_code not in (200, 204, 404):
            self._error(f"deleting {subscription.id} failed: {response.status_code}")

    def describe(self) -> list[dict[str, Any]]:
        return [
            {
                "id": s.id,
                "account": s.account,
                "users": len(s.teams_ids),
                "expires": s.expires.isoformat(),
            }
            for s in self.subscriptions.values()
        ]
