"""Client-side Teams mode: the agent runs its user's Teams sync with the user's own sign-in.

For tenants that grant no application permission, the hub cannot read or write
Teams itself. Then the agent signs its user in (device code, delegated
`Presence.ReadWrite`), reads `/me/presence` about every 2 s and hands each change
to the hub (`teams_reading`), and makes the writes the hub's rules ask for
(`teams_intent`) with `/me/presence/...`, acknowledging each (`teams_written`).
The rules stay in the hub's core; the agent only moves data.

Work location (`teams_work_location_office_networks`): while the group names office
networks, the agent sets the user's automatic work location (`setAutomaticLocation`)
to office or remote from the address its route to Graph leaves from
(`work_location.route_addresses`, decided by `core.worklocation.decide`): after each
sign-in, then only when the decision changes (checked every minute and at each
settings change). It clears it (`clearAutomaticLocation`) when it stops, when the
user's Teams sync leaves client-side mode and when the networks are removed.

Remembering the sign-in (`remember_credentials`): the msal token cache is then
kept encrypted by msal-extensions (`adapters.credentials.token_cache`: the OS
keyring, or a key derived from `PRESENCEBRIDGE_AGENT_SECRET`); never in plain
text. When neither is available, or the account is federated (ADFS, found by
home-realm discovery), the sign-in stays in memory only and the agent says why.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import msal

from presencebridge.adapters.credentials import CredentialStoreUnavailable, token_cache
from presencebridge.adapters.graph.auth import authority_url, instance_discovery, msal_http_client
from presencebridge.adapters.graph.client import GraphError, reading_of
from presencebridge.adapters.graph.me import ME, MeGraph
from presencebridge.adapters.graph.retry import rewrite_delay
from presencebridge.adapters.graph.writes import Acknowledgement, execute_plan
from presencebridge.agent.work_location import route_addresses
from presencebridge.core import worklocation
from presencebridge.core.ports import TeamsPresenceWrites
from presencebridge.core.rules import TeamsMessageWritten, TeamsSessionWritten
from presencebridge.core.teams import WritePlan

log = logging.getLogger(__name__)

SCOPES = ["Presence.ReadWrite"]
SECRET_ENV = "PRESENCEBRIDGE_AGENT_SECRET"  # noqa: S105 - the name of a variable
CACHE_FILE = "teams-signin.cache"
STATE_FILE = "teams-state.json"
POLL_SECONDS = 2.0
# A laptop moves between networks without telling anyone: look again this often.
LOCATION_SECONDS = 60.0
# At exit the agent waits this long at most for Graph to clear the work location.
LEAVE_SECONDS = 5.0

Say = Callable[[str], None]
Send = Callable[[dict[str, Any]], Awaitable[None]]


@dataclass(frozen=True)
class TeamsConfig:
    """The `teams` part of the hub's settings message."""

    client_side: bool
    mode: str
    remember_credentials: bool
    authority: str | None
    tenant_id: str | None
    client_id: str | None
    graph_url: str | None
    # CIDR networks of the office; empty: the agent leaves the work location alone.
    office_networks: tuple[str, ...] = ()

    @classmethod
    def parse(cls, data: Any) -> TeamsConfig:
        data = data if isinstance(data, dict) else {}

        def text(key: str) -> str | None:
            value = data.get(key)
            return str(value) if value else None

        return cls(
            client_side=bool(data.get("client_side")),
            mode=str(data.get("mode") or "off"),
            remember_credentials=bool(data.get("remember_credentials")),
            authority=text("authority"),
            tenant_id=text("tenant_id"),
            client_id=text("client_id"),
            graph_url=text("graph_url"),
            office_networks=tuple(
                str(n) for n in (data.get("office_networks") or ()) if isinstance(n, str)
            ),
        )

    @property
    def active(self) -> bool:
        return (
            self.client_side
            and self.mode != "off"
            and bool(self.authority and self.tenant_id and self.client_id and self.graph_url)
        )

    def identity(self) -> tuple[Any, ...]:
        """What a sign-in depends on: a change of any of it needs a new sign-in."""
        return (self.authority, self.tenant_id, self.client_id, self.graph_url)


class SignInFailed(RuntimeError):
    pass


def home_realm(authority: str, username: str, ca_bundle: Path | None) -> str:
    """Home-realm discovery: "Managed", "Federated" (ADFS) or "Unknown"."""
    url = f"{authority.rstrip('/')}/common/userrealm/{quote(username)}?api-version=1.0"
    response = msal_http_client(ca_bundle).get(url, timeout=10)
    response.raise_for_status()
    return str(response.json().get("account_type") or "Unknown")


class TeamsSignIn:
    """The user's delegated sign-in: device code once, then silent tokens from the cache.

    Blocking (msal is synchronous): call the methods on a worker thread.
    """

    def __init__(
        self,
        config: TeamsConfig,
        state_dir: Path,
        ca_bundle: Path | None,
        say: Say,
        secret: str | None = None,
    ) -> None:
        assert config.authority and config.tenant_id and config.client_id
        self.config = config
        self.authority: str = config.authority
        self.ca_bundle = ca_bundle
        self.say = say
        self.secret = secret if secret is not None else os.environ.get(SECRET_ENV) or None
        self.cache_path = state_dir / CACHE_FILE
        self.app: msal.PublicClientApplication | None = None
        self.account: dict[str, Any] | None = None
        self.remembered = False
        self._flow: dict[str, Any] | None = None

    def _make_app(self, cache: Any) -> msal.PublicClientApplication:
        return msal.PublicClientApplication(
            self.config.client_id,
            authority=authority_url(self.authority, str(self.config.tenant_id)),
            token_cache=cache,
            http_client=msal_http_client(self.ca_bundle),
            instance_discovery=instance_discovery(self.authority),
        )

    def forget(self) -> None:
        """Remove a remembered sign-in (remembering was switched off, or refused)."""
        for path in (
            self.cache_path,
            self.cache_path.with_name(self.cache_path.name + ".lockfile"),
        ):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def _store(self) -> Any | None:
        try:
            return token_cache(self.cache_path, self.secret)
        except CredentialStoreUnavailable as error:
            self.say(
                "The Teams sign-in cannot be remembered on this computer: "
                f"{str(error).replace('PRESENCEBRIDGE_SECRET_KEY', SECRET_ENV)}. "
                "It is kept in memory only; you will be asked to sign in at the next start."
            )
            return None

    def _federated(self, username: str | None) -> bool | None:
        if not username:
            return None
        try:
            return home_realm(self.authority, username, self.ca_bundle) == "Federated"
        except Exception as error:  # the realm is unknown: do not risk remembering
            log.warning("home-realm discovery for the Teams account failed: %s", error)
            return None

    def restore(self) -> bool:
        """A remembered sign-in, if there is one that still works (no prompt)."""
        if not self.config.remember_credentials:
            self.forget()
            return False
        if not self.cache_path.exists():
            return False
        store = self._store()
        if store is None:
            return False
        try:
            app = self._make_app(store)
            accounts = app.get_accounts()
        except Exception as error:  # e.g. a secret that no longer decrypts the cache
            log.warning("the remembered Teams sign-in cannot be read (%s): signing in anew", error)
            self.forget()
            return False
        if not accounts:
            return False
        account = accounts[0]
        if self._federated(account.get("username")):
            self.say("Remembered Teams sign-in removed: federated (ADFS) accounts are not kept.")
            self.forget()
            return False
        result = app.acquire_token_silent(SCOPES, account=account)
        if not result or "access_token" not in result:
            return False
        self.app, self.account, self.remembered = app, account, True
        log.info("Teams: signed in as %s (remembered)", account.get("username"))
        return True

    def sign_in(self) -> None:
        """Device code: prints where to sign in, waits for the user, then keeps the result."""
        memory = msal.SerializableTokenCache()
        app = self._make_app(memory)
        flow = app.initiate_device_flow(scopes=SCOPES)
        if "user_code" not in flow:
            raise SignInFailed(str(flow.get("error_description") or flow.get("error") or flow))
        self._flow = flow
        self.say(f"Teams sign-in for presencebridge: {flow['message']}")
        result = app.acquire_token_by_device_flow(flow)
        self._flow = None
        if "access_token" not in result:
            raise SignInFailed(str(result.get("error_description") or result.get("error")))
        username = (result.get("id_token_claims") or {}).get("preferred_username")
        self.app, self.remembered = app, False
        accounts = app.get_accounts()
        self.account = accounts[0] if accounts else None
        self.say(f"Teams: signed in as {username or 'the user'}.")
        if self.config.remember_credentials:
            self._remember(result, username)

    def _remember(self, result: dict[str, Any], username: str | None) -> None:
        federated = self._federated(username)
        if federated is None:
            self.say(
                "The Teams sign-in is not remembered: the account's home realm could not be "
                "checked (federated accounts must not be remembered)."
            )
            return
        if federated:
            self.say(
                "The Teams sign-in is not remembered: this is a federated (ADFS) account, "
                "whose credentials are never stored. You will be asked to sign in at each start."
            )
            return
        store = self._store()
        if store is None or not result.get("refresh_token"):
            return
        try:
            kept = self._make_app(store)
            answer = kept.acquire_token_by_refresh_token(result["refresh_token"], SCOPES)
            if "access_token" not in answer:
                raise SignInFailed(str(answer.get("error_description") or answer.get("error")))
            accounts = kept.get_accounts()
        except Exception as error:  # a keyring that fails only when written to, …
            self.forget()
            self.say(f"The Teams sign-in could not be stored encrypted ({error}); memory only.")
            return
        self.app, self.account, self.remembered = kept, accounts[0] if accounts else None, True
        self.say("The Teams sign-in is remembered (encrypted) for the next start.")

    def cancel(self) -> None:
        """Stop waiting for a device-code sign-in (msal polls until `expires_at`)."""
        if self._flow is not None:
            self._flow["expires_at"] = 0

    def token(self, fresh: bool = False) -> str:
        if self.app is None:
            raise SignInFailed("not signed in")
        account = self.account
        if account is None:
            accounts = self.app.get_accounts()
            account = accounts[0] if accounts else None
        result = None
        if account is not None:
            result = self.app.acquire_token_silent(SCOPES, account=account, force_refresh=fresh)
        if not result or "access_token" not in result:
            raise SignInFailed("the sign-in has expired")
        return str(result["access_token"])


_UNKNOWN = "?"  # the session this agent has (or has not) set before it started


class TeamsAgent:
    """Runs while the hub's settings ask for client-side Teams; restarts on a new identity."""

    def __init__(
        self,
        state_dir: Path,
        ca_bundle: Path | None,
        send: Send,
        say: Say,
        poll_seconds: float = POLL_SECONDS,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        location_seconds: float = LOCATION_SECONDS,
        addresses: Callable[[str], list[str]] = route_addresses,
    ) -> None:
        self.state_dir = state_dir
        self.ca_bundle = ca_bundle
        self.send = send
        self.say = say
        self.poll_seconds = poll_seconds
        self.now = now
        self.config: TeamsConfig | None = None
        self._task: asyncio.Task[None] | None = None
        self._sign_in: TeamsSignIn | None = None
        self._intent: dict[str, Any] | None = None
        self._intent_ready = asyncio.Event()
        self._last_reading: tuple[Any, ...] | None = None
        self._session: str | None = _UNKNOWN
        self._preferred_until, self._preferred_default = self._load_state()
        self.location_seconds = location_seconds
        self.addresses = addresses
        # The automatic work location this agent set and has not cleared (kept across
        # restarts, so a location left by a crash is cleared once the feature is off).
        stored = self._read_state().get("work_location")
        self._location: str | None = stored if isinstance(stored, str) else None
        # A set that was under way when the agent stopped may have reached Graph.
        self._location_unsure = False
        self._location_wake = asyncio.Event()

    # -- what this agent asserted, across restarts (no secrets) ---------------------------------

    def _read_state(self) -> dict[str, Any]:
        try:
            data = json.loads((self.state_dir / STATE_FILE).read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _load_state(self) -> tuple[datetime | None, bool]:
        try:
            data = self._read_state()
            until = datetime.fromisoformat(data["preferred_dnd_until"])
            return until, bool(data.get("default_expiry"))
        except (OSError, ValueError, KeyError, TypeError):
            return None, False

    def _save_state(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        data = {
            "preferred_dnd_until": None
            if self._preferred_until is None
            else self._preferred_until.isoformat(),
            "default_expiry": self._preferred_default,
            "work_location": self._location,
        }
        (self.state_dir / STATE_FILE).write_text(json.dumps(data))

    # -- settings and messages from the hub -------------------------------------------------

    async def configure(self, config: TeamsConfig) -> None:
        previous, self.config = self.config, config
        self._location_wake.set()  # other office networks: decide again now
        running = self._task is not None and not self._task.done()
        if config.active:
            unchanged = previous is not None and (
                previous.identity(),
                previous.remember_credentials,
            ) == (config.identity(), config.remember_credentials)
            if running and unchanged:
                return
            if running:
                await self.stop()  # another app registration, or the other remembering rule
            self._task = asyncio.create_task(self._run(config), name="teams")
            return
        if running:
            await self.stop()
        if not config.remember_credentials:
            # Remembering is off (now): no sign-in may stay behind on this computer.
            for name in (CACHE_FILE, CACHE_FILE + ".lockfile"):
                (self.state_dir / name).unlink(missing_ok=True)

    def connected(self) -> None:
        """A new connection: the hub judges afresh, so tell it the current reading again."""
        self._last_reading = None
        self._intent = None

    def intent(self, message: dict[str, Any]) -> None:
        self._intent = message  # the latest wins: a superseded intent is never written
        self._intent_ready.set()

    async def stop(self) -> None:
        if self._sign_in is not None:
            self._sign_in.cancel()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    # -- running ----------------------------------------------------------------------------------

    async def _run(self, config: TeamsConfig) -> None:
        sign_in = TeamsSignIn(config, self.state_dir, self.ca_bundle, self.say)
        self._sign_in = sign_in
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        restored = await asyncio.to_thread(sign_in.restore)

        async def token(fresh: bool) -> str:
            return await asyncio.to_thread(sign_in.token, fresh)

        assert config.graph_url and config.client_id
        while True:
            if not restored:
                await self._sign_in_interactively(sign_in)
            restored = False
            graph = MeGraph(config.graph_url, token, config.client_id, self.ca_bundle)
            try:
                await _all_or_none(self._poll(graph), self._write(graph), self._locate(graph))
            except SignInFailed as error:
                # The refresh token expired or was revoked: the user signs in again.
                self.say(f"Teams: {error}; please sign in again.")
                await asyncio.to_thread(sign_in.forget)
            except asyncio.CancelledError:
                # Stopped (exit, or the hub's settings end client-side Teams): the
                # computer no longer tells where the user works, so it says nothing.
                await self._leave_location(graph)
                raise
            finally:
                await graph.aclose()

    # -- work location -----------------------------------------------------------------------

    async def _locate(self, graph: MeGraph) -> None:
        """Keep the automatic work location at what the office networks say."""
        written = False  # after each sign-in the decision is written once, changed or not
        failures = 0
        while True:
            self._location_wake.clear()
            networks = self.config.office_networks if self.config is not None else ()
            wait: float | None = self.location_seconds if networks else None
            try:
                if networks:
                    addresses = await asyncio.to_thread(self.addresses, graph.graph_url)
                    wanted = worklocation.decide(addresses, networks)
                    if wanted is not None and (wanted != self._location or not written):
                        self._location_unsure = True
                        await graph.set_automatic_location(wanted)
                        log.info("Teams: work location set to %s", wanted)
                        self._note_location(wanted)
                        written = True
                elif self._location is not None:
                    await graph.clear_automatic_location()
                    log.info("Teams: work location cleared (no office networks)")
                    self._note_location(None)
                failures = 0
            except GraphError as error:
                # `_location_unsure` stays: a request that gave up may still have been
                # carried out, and clearing at exit what was never set does no harm.
                log.warning("Teams: setting the work location failed: %s", error)
                wait = min(self.location_seconds, rewrite_delay(failures))
                failures += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._location_wake.wait(), wait)

    def _note_location(self, location: str | None) -> None:
        self._location, self._location_unsure = location, False
        self._save_state()

    async def _leave_location(self, graph: MeGraph) -> None:
        """Clear the work location this agent set; bounded, as the agent is on its way out."""
        if self._location is None and not self._location_unsure:
            return
        try:
            await asyncio.wait_for(graph.clear_automatic_location(), LEAVE_SECONDS)
        except Exception as error:  # offline, signed out, Graph slow: it stays as it was
            log.warning("Teams: the work location could not be cleared: %s", error)
            return
        log.info("Teams: work location cleared")
        self._note_location(None)

    async def _sign_in_interactively(self, sign_in: TeamsSignIn) -> None:
        attempt = 0
        while True:
            try:
                await asyncio.to_thread(sign_in.sign_in)
                return
            except Exception as error:
                self.say(f"Teams sign-in did not complete: {error}")
                await asyncio.sleep(min(60.0, 2.0 * 2**attempt))
                attempt += 1

    async def _poll(self, graph: MeGraph) -> None:
        while True:
            requested_at = self.now()
            try:
                body = await graph.read_own()
            except GraphError as error:
                log.warning("Teams: reading presence failed: %s", error)
                await asyncio.sleep(self.poll_seconds)
                continue
            extras = reading_of(body, ME)
            reading = (
                body.get("availability"),
                body.get("activity"),
                body.get("sequenceNumber"),
                extras.status_message,
                extras.out_of_office,
            )
            if reading != self._last_reading:
                log.debug("Teams shows %s/%s", reading[0], reading[1])
                message = {
                    "type": "teams_reading",
                    "availability": reading[0] or "PresenceUnknown",
                    "activity": reading[1] or "PresenceUnknown",
                    "sequence": reading[2],
                    "requested_at": requested_at.isoformat(),
                    "status_message": extras.status_message,
                    "out_of_office": extras.out_of_office,
                }
                with contextlib.suppress(ConnectionError):
                    await self.send(message)
                    self._last_reading = reading
            await asyncio.sleep(self.poll_seconds)

    async def _write(self, graph: MeGraph) -> None:
        attempt = 0
        while True:
            await self._intent_ready.wait()
            self._intent_ready.clear()
            intent = self._intent
            if intent is None:
                continue
            try:
                await self.apply(graph, intent)
                attempt = 0
            except GraphError as error:
                log.warning("Teams: a write failed (%s); retrying", error)
                await asyncio.sleep(rewrite_delay(attempt))
                attempt += 1
                if self._intent is intent or not self._intent_ready.is_set():
                    self._intent_ready.set()  # retry the newest intent
            except ConnectionError:
                pass  # the hub is away; it sends the intent again after the reconnect

    async def apply(self, graph: TeamsPresenceWrites, intent: dict[str, Any]) -> None:
        """Bring Teams to what the hub wants, writing only what this agent has not yet
        asserted, and acknowledge each write (or re-acknowledge what was already done)."""
        session = intent.get("session")
        want_dnd = bool(intent.get("preferred_dnd"))
        now = self.now()
        plan = self._plan(intent, now)
        await execute_plan(graph, ME, plan, now, self._acknowledge)
        if plan.set_preferred_dnd or plan.clear_preferred:
            return
        if want_dnd:
            # Set by this agent already (maybe before a restart): not silently re-asserted,
            # but the hub may not know it yet.
            await self._acknowledge_preferred()
        elif not plan.set_session and not plan.clear_session:
            # Nothing to write at all: an acknowledgement was lost. Say again what holds.
            if session is None:
                await self.send({"type": "teams_written", "session": None})
            await self._acknowledge_preferred()

    def _plan(self, intent: dict[str, Any], now: datetime) -> WritePlan:
        """The writes the hub's intent needs, given what this agent has asserted.

        Only a DnD this agent set is cleared: one the user set by hand is theirs.
        """
        session = intent.get("session")
        want_dnd = bool(intent.get("preferred_dnd"))
        minutes = intent.get("preferred_dnd_minutes")
        wanted = session if isinstance(session, str) and session else None
        set_session = None
        if wanted is not None and (intent.get("refresh") or self._session != wanted):
            set_session = wanted
        held = self._preferred_until is not None and self._preferred_until > now
        set_dnd = want_dnd and (minutes is not None or not held)
        # The status message: the hub's plan as it is (the hub judged whose a message is).
        message = intent.get("set_message")
        until = intent.get("message_until")
        return WritePlan(
            set_session=set_session,
            clear_session=wanted is None and self._session is not None,
            set_preferred_dnd=set_dnd,
            preferred_duration=None if minutes is None else timedelta(minutes=int(minutes)),
            clear_preferred=not want_dnd and self._preferred_until is not None,
            set_message=message if isinstance(message, str) and message else None,
            message_until=None if until is None else datetime.fromisoformat(str(until)),
            clear_message=bool(intent.get("clear_message")),
        )

    async def _acknowledge(self, written: Acknowledgement) -> None:
        """Graph accepted a write: remember it here and tell the hub."""
        if isinstance(written, TeamsSessionWritten):
            if written.activity is not None and self._session != written.activity:
                log.info("Teams: session set to %s", written.activity)
            elif written.activity is None and self._session is not _UNKNOWN:
                log.info("Teams: session cleared")
            self._session = written.activity
            await self.send({"type": "teams_written", "session": written.activity})
            return
        if isinstance(written, TeamsMessageWritten):
            until = None if written.until is None else written.until.isoformat()
            await self.send(
                {"type": "teams_written", "message": written.text, "message_until": until}
            )
            return
        if written.until is None:
            log.info("Teams: Do not disturb cleared")
        else:
            log.info("Teams: Do not disturb set (until %s)", written.until.isoformat())
        self._preferred_until, self._preferred_default = written.until, written.default_expiry
        self._save_state()
        await self._acknowledge_preferred()

    async def _acknowledge_preferred(self) -> None:
        until = self._preferred_until
        await self.send(
            {
                "type": "teams_written",
                "preferred_dnd_until": None if until is None else until.isoformat(),
                "default_expiry": self._preferred_default and until is not None,
            }
        )


async def _all_or_none(*loops: Awaitable[None]) -> None:
    """Run the loops of one sign-in together: the first to fail (or a cancellation)
    ends all of them, so none keeps using a Graph client that is closed next."""
    tasks = [asyncio.ensure_future(loop) for loop in loops]
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
