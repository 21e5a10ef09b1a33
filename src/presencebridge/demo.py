"""`presencebridge demo`: the product on its embedded defaults, with a scripted day.

The sample company is created through the REST API. A simulated PBX places calls
through the telephony API, and the colleagues' Teams clients call, share screens
and set DnD through the embedded Graph emulator's control API, so the sync is
visible in both directions with no input.

The terminal tells the day as a story, one line per step, in the product's
language (PRESENCEBRIDGE_LANGUAGE): who calls whom, and what the other side then
shows, read back from the hub's API and the emulator's control API (observed,
not predicted). Ctrl+C or SIGTERM stops the day first (its scenes put their
users back), then the server; the command then prints "Demo stopped." and exits
with 0: stopping is the demo's normal end.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import shutil
import signal
import ssl
import sys
import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from types import FrameType
from typing import Any, TextIO
from urllib.parse import quote

import httpx

from presencebridge import __version__
from presencebridge.adapters.pbx.simulator import SimulatedPbx
from presencebridge.bench.kamailio import MODULES, Kamailio
from presencebridge.config import Settings
from presencebridge.core.texts import DEFAULT_LANGUAGE, LANGUAGES
from presencebridge.server import CONSOLE_ADMIN_ROLE, CONSOLE_APP, Companion, Runtime
from presencebridge.server import serve as serve_hub

log = logging.getLogger(__name__)

GROUPS: list[dict[str, Any]] = [
    {
        "id": "berlin",
        "name": "Berlin",
        "settings": {
            "teams_sync_mode": "telephony_and_presence",
            "create_teams_profile_template": True,
        },
    },
    {"id": "hamburg", "name": "Hamburg", "settings": {"teams_sync_mode": "telephony_only"}},
]

USERS: list[tuple[str, str, str]] = [
    ("anna.schmidt", "Anna Schmidt", "berlin"),
    ("ben.mueller", "Ben Müller", "berlin"),
    ("clara.weber", "Clara Weber", "berlin"),
    ("david.fischer", "David Fischer", "berlin"),
    ("emma.wagner", "Emma Wagner", "hamburg"),
    ("felix.becker", "Felix Becker", "hamburg"),
    ("greta.hoffmann", "Greta Hoffmann", "hamburg"),
    ("hannes.koch", "Hannes Koch", "hamburg"),
]

PROFILES: list[dict[str, Any]] = [
    {"name": "Im Büro", "status": "available", "text": "Im Büro", "color": "#6bb700"},
    {"name": "Mittagspause", "status": "away", "text": "Mittagspause", "color": "#fcd116"},
    {"name": "Konzentriert", "status": "dnd", "text": "Bitte nicht stören", "color": "#c4314b"},
    {
        "name": "Kundentermin",
        "status": "busy",
        "text": "Beim Kunden",
        "color": "#e8a33d",
        "call_forwarding": "voicemail",
    },
]

DOMAIN = "contoso.example"  # the sample users' e-mail / UPN domain
# Signs in at the emulator's Entra ID with the console's administrator app role; no hub user.
ADMIN_UPN = f"it.admin@{DOMAIN}"
ADMIN_ID = "it-admin"

# Stable Teams (Entra) object ids for the sample users.
TEAMS_NAMESPACE = uuid.UUID("6f1c1b1e-3d39-4c0c-9a51-0d1d2b3a4c5d")


def teams_id(user_id: str) -> str:
    return str(uuid.uuid5(TEAMS_NAMESPACE, user_id))


def extension_of(index: int) -> str:
    """The sample users' PBX extensions: 2101, 2102, … in the order of `USERS`."""
    return str(2101 + index)


async def seed(client: httpx.AsyncClient) -> list[str]:
    """Create the sample company unless it exists; returns the user ids."""
    existing = {g["id"] for g in (await client.get("/api/v1/groups")).json()}
    for group in GROUPS:
        if group["id"] not in existing:
            (await client.post("/api/v1/groups", json=group)).raise_for_status()
    known = {u["id"] for u in (await client.get("/api/v1/users")).json()}
    now = datetime.now(UTC)
    for index, (user_id, name, group_id) in enumerate(USERS):
        if user_id in known:
            continue
        body = {
            "id": user_id,
            "display_name": name,
            "group": group_id,
            "teams_user_id": teams_id(user_id),
            "email": f"{user_id}@{DOMAIN}",
            "extensions": [extension_of(index)],
        }
        (await client.post("/api/v1/users", json=body)).raise_for_status()
        for profile in PROFILES:
            await client.post(f"/api/v1/users/{user_id}/profiles", json=profile)
        if index % 4 == 2:
            appointment = {
                "subject": "Projektbesprechung",
                "start": (now + timedelta(minutes=1)).isoformat(),
                "end": (now + timedelta(minutes=3)).isoformat(),
                "profile": "Kundentermin",
            }
            await client.post(f"/api/v1/users/{user_id}/appointments", json=appointment)
    return [user_id for user_id, _, _ in USERS]


# -- what the terminal says ------------------------------------------------------------------


class Say(StrEnum):
    """The demo's own lines; each has a text per language in `SAYINGS`."""

    TITLE = "demo.title"
    BOARD = "demo.board"
    API = "demo.api"
    DATA = "demo.data"
    CTRL_C = "demo.ctrl_c"
    DAY_BEGINS = "demo.day_begins"
    GROUP_SYNC = "demo.group_sync"
    PBX_CALL = "demo.pbx_call"
    PBX_OUTSIDE_CALL = "demo.pbx_outside_call"
    PBX_ANSWERED = "demo.pbx_answered"
    PBX_NO_ANSWER = "demo.pbx_no_answer"
    PBX_HANG_UP = "demo.pbx_hang_up"
    PBX_HANGS_UP = "demo.pbx_hangs_up"
    UC_DND = "demo.uc_dnd"
    UC_DND_END = "demo.uc_dnd_end"
    TEAMS_CALL = "demo.teams_call"
    TEAMS_CALL_END = "demo.teams_call_end"
    SCREEN_SHARING = "demo.screen_sharing"
    SCREEN_SHARING_END = "demo.screen_sharing_end"
    TEAMS_DND = "demo.teams_dnd"
    TEAMS_DND_END = "demo.teams_dnd_end"
    TEAMS_SHOWS = "demo.teams_shows"
    UC_SHOWS = "demo.uc_shows"
    TEAMS_KEEPS = "demo.teams_keeps"
    UC_KEEPS = "demo.uc_keeps"
    TELEPHONY_ONLY = "demo.telephony_only"
    BOTH_WAYS = "demo.both_ways"
    AND = "demo.and"
    STOPPED = "demo.stopped"
    SIP = "demo.sip"
    SIP_MISSING = "demo.sip_missing"
    EMPLOYEE = "demo.employee"
    ADMIN_SSO = "demo.admin_sso"


SAYINGS: dict[Say, dict[str, str]] = {
    Say.TITLE: {
        "en": "presencebridge {version} demo: an office day in Berlin and Hamburg",
        "de": "presencebridge {version} Demo: ein Bürotag in Berlin und Hamburg",
    },
    Say.BOARD: {"en": "  Presence board: {url}", "de": "  Präsenzübersicht: {url}"},
    Say.EMPLOYEE: {
        "en": "  An employee:    {url}   (signs in as {name} at the emulator's Entra ID)",
        "de": "  Eine Mitarbeiterin: {url}   (meldet sich als {name} an der Entra ID des "
        "Emulators an)",
    },
    Say.ADMIN_SSO: {
        "en": "  Administrator:  the board link above, or sign in as {upn}",
        "de": "  Administrator:    der Link zur Übersicht oben, oder Anmeldung als {upn}",
    },
    Say.API: {
        "en": "  API:            {url}   (admin token: {token})",
        "de": "  API:              {url}   (Admin-Token: {token})",
    },
    Say.DATA: {"en": "  Data:           {folder}", "de": "  Daten:            {folder}"},
    Say.CTRL_C: {"en": "  Ctrl+C stops the demo.", "de": "  Strg+C beendet die Demo."},
    Say.DAY_BEGINS: {
        "en": "The office day begins: {count} colleagues; the Graph emulator plays Teams.",
        "de": "Der Bürotag beginnt: {count} Kolleginnen und Kollegen; "
        "der Graph-Emulator spielt Teams.",
    },
    Say.GROUP_SYNC: {
        "en": "{group}: {names}; {mode}.",
        "de": "{group}: {names}; {mode}.",
    },
    Say.TELEPHONY_ONLY: {
        "en": "{group} syncs telephony only",
        "de": "{group} gleicht nur die Telefonie ab",
    },
    Say.PBX_CALL: {
        "en": "{caller} calls {callee} on the PBX",
        "de": "{caller} ruft {callee} über die Telefonanlage an",
    },
    Say.PBX_OUTSIDE_CALL: {
        "en": "A customer calls {callee} on the PBX",
        "de": "Ein Kunde ruft {callee} über die Telefonanlage an",
    },
    Say.PBX_ANSWERED: {"en": "{callee} answers", "de": "{callee} nimmt ab"},
    Say.PBX_NO_ANSWER: {
        "en": "Nobody answers; {callee}'s phone stops ringing",
        "de": "Niemand nimmt ab; das Telefon von {callee} hört auf zu klingeln",
    },
    Say.PBX_HANG_UP: {"en": "{names} hang up", "de": "{names} legen auf"},
    Say.PBX_HANGS_UP: {"en": "{names} hangs up", "de": "{names} legt auf"},
    Say.UC_DND: {
        "en": "{name} picks the profile 'Konzentriert' (do not disturb) on the UC side",
        "de": "{name} wählt auf der UC-Seite das Profil 'Konzentriert' (nicht stören)",
    },
    Say.UC_DND_END: {
        "en": "{name} is back: profile 'Im Büro' on the UC side",
        "de": "{name} ist zurück: Profil 'Im Büro' auf der UC-Seite",
    },
    Say.TEAMS_CALL: {
        "en": "{caller} calls {callee} in Teams",
        "de": "{caller} ruft {callee} in Teams an",
    },
    Say.TEAMS_CALL_END: {
        "en": "{names} end their Teams call",
        "de": "{names} beenden ihren Teams-Anruf",
    },
    Say.SCREEN_SHARING: {
        "en": "{presenter} shares the screen with {viewer} in a Teams call",
        "de": "{presenter} teilt in einem Teams-Anruf den Bildschirm mit {viewer}",
    },
    Say.SCREEN_SHARING_END: {
        "en": "{presenter} stops presenting; the Teams call with {viewer} ends",
        "de": "{presenter} beendet die Präsentation; der Teams-Anruf mit {viewer} endet",
    },
    Say.TEAMS_DND: {
        "en": "{name} sets 'Do not disturb' in Teams",
        "de": "{name} stellt in Teams 'Nicht stören' ein",
    },
    Say.TEAMS_DND_END: {
        "en": "{name} resets the status in Teams",
        "de": "{name} setzt den Status in Teams zurück",
    },
    Say.TEAMS_SHOWS: {
        "en": "  → Teams shows {names} '{shown}'",
        "de": "  → Teams zeigt {names} '{shown}'",
    },
    Say.UC_SHOWS: {
        "en": "  → the UC side shows {names} '{shown}'",
        "de": "  → die UC-Seite zeigt {names} '{shown}'",
    },
    Say.TEAMS_KEEPS: {
        "en": "  → Teams still shows {names} '{shown}'{why}",
        "de": "  → Teams zeigt {names} weiter '{shown}'{why}",
    },
    Say.UC_KEEPS: {
        "en": "  → the UC side still shows {names} '{shown}'{why}",
        "de": "  → die UC-Seite zeigt {names} weiter '{shown}'{why}",
    },
    Say.BOTH_WAYS: {
        "en": "telephony and presence synced with Teams both ways",
        "de": "Telefonie und Präsenz in beide Richtungen mit Teams abgeglichen",
    },
    Say.AND: {"en": " and ", "de": " und "},
    Say.STOPPED: {"en": "Demo stopped.", "de": "Demo beendet."},
    Say.SIP: {
        "en": "  SIP:            Kamailio on {server}: the hub watches the dialogs of "
        "extensions {first}–{last} and publishes their presence (BLF: sip:{first}@{server})",
        "de": "  SIP:              Kamailio auf {server}: der Hub beobachtet die Gespräche der "
        "Nebenstellen {first}–{last} und veröffentlicht ihre Präsenz (BLF: sip:{first}@{server})",
    },
    Say.SIP_MISSING: {
        "en": "  SIP:            Kamailio is not installed ({reason}); the demo runs without it",
        "de": "  SIP:              Kamailio ist nicht installiert ({reason}); die Demo läuft ohne",
    },
}

# What Teams shows, in the words of its own client (the activity where it says more).
TEAMS_LABELS: dict[str, dict[str, str]] = {
    "InACall": {"en": "In a call", "de": "Im Anruf"},
    "InAConferenceCall": {"en": "In a conference call", "de": "In einer Telefonkonferenz"},
    "InAMeeting": {"en": "In a meeting", "de": "In einer Besprechung"},
    "Presenting": {"en": "Presenting", "de": "Präsentation"},
    "Available": {"en": "Available", "de": "Verfügbar"},
    "AvailableIdle": {"en": "Available", "de": "Verfügbar"},
    "Busy": {"en": "Busy", "de": "Beschäftigt"},
    "BusyIdle": {"en": "Busy", "de": "Beschäftigt"},
    "DoNotDisturb": {"en": "Do not disturb", "de": "Nicht stören"},
    "BeRightBack": {"en": "Be right back", "de": "Bin gleich zurück"},
    "Away": {"en": "Away", "de": "Abwesend"},
    "Offline": {"en": "Offline", "de": "Offline"},
    "PresenceUnknown": {"en": "Unknown", "de": "Unbekannt"},
}
TEAMS_ACTIVITIES_SHOWN = ("InACall", "InAConferenceCall", "InAMeeting", "Presenting")

# The UC side's status, when a presence carries no text.
STATUS_LABELS: dict[str, dict[str, str]] = {
    "available": {"en": "Available", "de": "Verfügbar"},
    "busy": {"en": "Busy", "de": "Beschäftigt"},
    "away": {"en": "Away", "de": "Abwesend"},
    "dnd": {"en": "Do not disturb", "de": "Nicht stören"},
    "offline": {"en": "Offline", "de": "Offline"},
}


def language_of(value: str) -> str:
    return value if value in LANGUAGES else DEFAULT_LANGUAGE


def say(language: str, key: Say, **fields: object) -> str:
    entry = SAYINGS[key]
    return entry.get(language, entry[DEFAULT_LANGUAGE]).format(**fields)


def label(table: Mapping[str, dict[str, str]], value: str, language: str) -> str:
    entry = table.get(value)
    return value if entry is None else entry.get(language, entry[DEFAULT_LANGUAGE])


def teams_label(presence: Mapping[str, Any], language: str) -> str:
    activity = str(presence.get("activity") or "")
    if activity in TEAMS_ACTIVITIES_SHOWN:
        return label(TEAMS_LABELS, activity, language)
    return label(TEAMS_LABELS, str(presence.get("availability") or "PresenceUnknown"), language)


def uc_label(presence: Mapping[str, Any], language: str) -> str:
    text = str(presence.get("text") or "")
    return text or label(STATUS_LABELS, str(presence.get("status") or ""), language)


NAMES = {user_id: name for user_id, name, _ in USERS}
GROUP_OF = {user_id: group for user_id, _, group in USERS}
GROUP_NAMES = {str(g["id"]): str(g["name"]) for g in GROUPS}
TELEPHONY_ONLY_GROUPS = {
    str(g["id"]) for g in GROUPS if g["settings"].get("teams_sync_mode") == "telephony_only"
}


class Narrator:
    """Prints the story, one line a step, each stamped with the wall-clock time."""

    def __init__(self, language: str, stream: TextIO | None = None) -> None:
        self.language = language_of(language)
        self.stream = stream
        self.muted = False

    def text(self, key: Say, **fields: object) -> str:
        return say(self.language, key, **fields)

    def plain(self, key: Say, **fields: object) -> None:
        stream = self.stream or sys.stdout
        stream.write(self.text(key, **fields) + "\n")
        stream.flush()

    def step(self, key: Say, **fields: object) -> None:
        if self.muted:
            return
        stamp = datetime.now().strftime("%H:%M:%S")  # the reader's local time
        stream = self.stream or sys.stdout
        stream.write(f"{stamp}  {self.text(key, **fields)}\n")
        stream.flush()

    def names(self, users: list[str]) -> str:
        names = [NAMES.get(u, u) for u in users]
        if len(names) <= 1:
            return "".join(names)
        return ", ".join(names[:-1]) + self.text(Say.AND) + names[-1]


# -- the scripted day -------------------------------------------------------------------------

SETTLE_SECONDS = 12.0  # how long a change may take to show on the other side
POLL_SECONDS = 0.25
STOP_SECONDS = 3.0  # how long the scenes may take to put their users back when stopped


class DemoDay:
    """Scenes of an office day, each taking one or two idle colleagues for a while."""

    def __init__(
        self,
        hub: httpx.AsyncClient,
        teams: httpx.AsyncClient | None,
        users: list[str],
        pace: float,
        seed: int | None = None,
        narrator: Narrator | None = None,
    ) -> None:
        self.hub = hub
        self.teams = teams
        self.users = users
        self.pace = pace
        self.dice = random.Random(seed)  # noqa: S311 - a demo's dice, not cryptography
        self.pbx = SimulatedPbx(hub, self.dice, pace)
        self.busy: set[str] = set()
        self.narrator = narrator or Narrator(DEFAULT_LANGUAGE)
        self.stopping = False

    async def run(self) -> None:
        # (weight, scene, how many colleagues it takes)
        scenes: list[tuple[int, Callable[[list[str]], Awaitable[None]], int]] = [
            (2, self.pbx_call, 1),
            (2, self.pbx_call, 2),
            (1, self.uc_dnd, 1),
        ]
        if self.teams is not None:
            scenes += [(3, self.teams_call, 2), (2, self.screen_sharing, 2), (1, self.teams_dnd, 1)]
        weights = [weight for weight, _, _ in scenes]
        running: set[asyncio.Task[None]] = set()
        try:
            while True:
                _, scene, people = self.dice.choices(scenes, weights)[0]
                idle = [u for u in self.users if u not in self.busy]
                if len(idle) >= people:
                    cast = self.dice.sample(idle, people)
                    task = asyncio.create_task(self._play(scene, cast))
                    running.add(task)
                    task.add_done_callback(running.discard)
                await asyncio.sleep(self.dice.uniform(1.5, 4.0) * self.pace)
        finally:
            # Stopped (cancelled): end every scene while the clients are still open;
            # each puts its colleagues back on the way out, in a bounded time.
            self.stopping = True
            self.narrator.muted = True
            scenes_left = list(running)
            for task in scenes_left:
                task.cancel()
            if scenes_left:
                _, late = await asyncio.wait(scenes_left, timeout=STOP_SECONDS)
                for task in late:  # a second cancel cuts their clean-up short
                    task.cancel()
                await asyncio.gather(*scenes_left, return_exceptions=True)

    async def _play(self, scene: Callable[[list[str]], Awaitable[None]], cast: list[str]) -> None:
        self.busy.update(cast)
        try:
            await scene(cast)
        except Exception as error:  # one scene's trouble must not end the day
            if not self.stopping:
                log.warning("demo scene %s failed: %s", scene.__name__, error)
        finally:
            self.busy.difference_update(cast)

    def _hold_time(self) -> float:
        return self.dice.uniform(8.0, 20.0) * self.pace

    # -- reading both sides back

    async def teams_shows(self, user: str) -> str:
        assert self.teams is not None
        response = await self.teams.get(f"/_emulator/users/{teams_id(user)}")
        response.raise_for_status()
        return teams_label(response.json()["presence"], self.narrator.language)

    async def uc_shows(self, user: str) -> str:
        response = await self.hub.get(
            f"/api/v1/users/{user}/presence", params={"lang": self.narrator.language}
        )
        response.raise_for_status()
        return uc_label(response.json(), self.narrator.language)

    async def shown(self, read: Callable[[str], Awaitable[str]], cast: list[str]) -> dict[str, str]:
        return {user: await read(user) for user in cast}

    async def watch(
        self,
        teams_side: bool,
        cast: list[str],
        before: dict[str, str],
        within: float = SETTLE_SECONDS,
    ) -> dict[str, str]:
        """Waits (up to `within` seconds) until the side shows something new for each of
        `cast`, tells what it shows, and returns that."""
        if teams_side and self.teams is None:
            return before
        read = self.teams_shows if teams_side else self.uc_shows
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        now = dict(before)
        pending = list(cast)
        while pending and loop.time() < deadline:
            await asyncio.sleep(POLL_SECONDS)
            changed = []
            for user in pending:
                now[user] = await read(user)
                if now[user] != before[user]:
                    changed.append(user)
            pending = [u for u in pending if u not in changed]
            self._tell(Say.TEAMS_SHOWS if teams_side else Say.UC_SHOWS, changed, now)
        self._tell(Say.TEAMS_KEEPS if teams_side else Say.UC_KEEPS, pending, now)
        return now

    def _tell(self, key: Say, users: list[str], shown: dict[str, str]) -> None:
        by_label: dict[str, list[str]] = {}
        for user in users:
            by_label.setdefault(shown[user], []).append(user)
        for text, who in by_label.items():
            why = ""
            groups = sorted({GROUP_OF.get(u, "") for u in who} & TELEPHONY_ONLY_GROUPS)
            if groups:
                why = f" ({self.narrator.text(Say.TELEPHONY_ONLY, group=GROUP_NAMES[groups[0]])})"
            self.narrator.step(key, names=self.narrator.names(who), shown=text, why=why)

    async def settle(
        self, teams_side: bool, cast: list[str], before: dict[str, str], during: dict[str, str]
    ) -> None:
        """After a scene: tells how the other side returns for those it had changed."""
        changed = [user for user in cast if during.get(user) != before.get(user)]
        if changed:
            await self.watch(teams_side, changed, during)

    async def hold_watching(
        self, teams_side: bool, cast: list[str], before: dict[str, str]
    ) -> dict[str, str]:
        """The scene's hold, telling meanwhile what the other side makes of it (the hold
        lasts until it shows, or SETTLE_SECONDS, however fast the pace)."""
        loop = asyncio.get_running_loop()
        until = loop.time() + self._hold_time()
        now = await self.watch(teams_side, cast, before)
        await asyncio.sleep(max(0.0, until - loop.time()))
        return now

    # -- the scenes

    async def _client(self, user: str, availability: str, activity: str) -> None:
        assert self.teams is not None
        body = {"availability": availability, "activity": activity}
        response = await self.teams.post(f"/_emulator/users/{teams_id(user)}/client", json=body)
        response.raise_for_status()

    async def pbx_call(self, cast: list[str]) -> None:
        """A call on the PBX: from outside to one colleague, or between two."""
        callee = cast[-1]
        name = self.narrator.names
        before = await self.shown(self.teams_shows, cast) if self.teams else {}
        call_id = uuid.uuid4().hex[:12]
        if len(cast) == 2:
            self.narrator.step(Say.PBX_CALL, caller=name(cast[:1]), callee=name([callee]))
        else:
            self.narrator.step(Say.PBX_OUTSIDE_CALL, callee=name([callee]))
        for user in cast:
            await self.pbx.event(user, call_id, "ringing")
        try:
            await asyncio.sleep(self.dice.uniform(1.0, 3.0) * self.pace)
            if self.dice.random() < 0.15:
                self.narrator.step(Say.PBX_NO_ANSWER, callee=name([callee]))
                during = before
            else:
                for user in cast:
                    await self.pbx.event(user, call_id, "connected")
                self.narrator.step(Say.PBX_ANSWERED, callee=name([callee]))
                during = await self.hold_watching(True, cast, before)
                hang_up = Say.PBX_HANG_UP if len(cast) > 1 else Say.PBX_HANGS_UP
                self.narrator.step(hang_up, names=name(cast))
        finally:
            for user in cast:
                await self.pbx.event(user, call_id, "ended")
        await self.settle(True, cast, before, during)

    async def uc_dnd(self, cast: list[str]) -> None:
        """A colleague concentrates: a DnD profile on the UC side (Teams follows in Berlin)."""
        user = cast[0]
        before = await self.shown(self.teams_shows, cast) if self.teams else {}
        self.narrator.step(Say.UC_DND, name=self.narrator.names(cast))
        await self.hub.put(f"/api/v1/users/{user}/profile", json={"name": "Konzentriert"})
        try:
            during = await self.hold_watching(True, cast, before)
            self.narrator.step(Say.UC_DND_END, name=self.narrator.names(cast))
        finally:
            await self.hub.put(f"/api/v1/users/{user}/profile", json={"name": "Im Büro"})
        await self.settle(True, cast, before, during)

    async def teams_call(self, cast: list[str]) -> None:
        """SPEC §3 rows 1 and 2: a Teams call between two colleagues."""
        before = await self.shown(self.uc_shows, cast)
        name = self.narrator.names
        self.narrator.step(Say.TEAMS_CALL, caller=name(cast[:1]), callee=name(cast[1:]))
        try:
            for user in cast:
                await self._client(user, "Busy", "InACall")
            during = await self.hold_watching(False, cast, before)
            self.narrator.step(Say.TEAMS_CALL_END, names=name(cast))
        finally:
            for user in cast:
                await self._client(user, "Available", "Available")
        await self.settle(False, cast, before, during)

    async def screen_sharing(self, cast: list[str]) -> None:
        """SPEC §3 rows 3 and 4: the first presents, the second watches in the call."""
        presenter, viewer = cast
        before = await self.shown(self.uc_shows, cast)
        who = {
            "presenter": self.narrator.names([presenter]),
            "viewer": self.narrator.names([viewer]),
        }
        self.narrator.step(Say.SCREEN_SHARING, **who)
        try:
            await self._client(presenter, "DoNotDisturb", "Presenting")
            await self._client(viewer, "Busy", "InACall")
            during = await self.hold_watching(False, cast, before)
            self.narrator.step(Say.SCREEN_SHARING_END, **who)
        finally:
            await self._client(presenter, "Available", "Available")
            await self._client(viewer, "Available", "Available")
        await self.settle(False, cast, before, during)

    async def teams_dnd(self, cast: list[str]) -> None:
        """A colleague sets DnD by hand in Teams."""
        assert self.teams is not None
        before = await self.shown(self.uc_shows, cast)
        path = f"/_emulator/users/{teams_id(cast[0])}/preferred"
        body = {"availability": "DoNotDisturb", "activity": "DoNotDisturb"}
        self.narrator.step(Say.TEAMS_DND, name=self.narrator.names(cast))
        try:
            (await self.teams.post(path, json=body)).raise_for_status()
            during = await self.hold_watching(False, cast, before)
            self.narrator.step(Say.TEAMS_DND_END, name=self.narrator.names(cast))
        finally:
            await self.teams.delete(path)
        await self.settle(False, cast, before, during)


# -- stopping on Ctrl+C and SIGTERM --------------------------------------------------------

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
SignalHandler = Callable[[int, FrameType | None], Any]


class Stopper:
    """Ctrl+C and SIGTERM stop the office day first, then the server.

    `install` (before the event loop runs) makes both signals merely noted, so
    nothing is interrupted mid-step. While uvicorn serves, it has its own handler
    (which starts the server's shutdown); the demo puts `_while_serving` in front
    of it, which first ends the day (scenes cancelled, users put back, clients
    closed) and only then hands the signal on to uvicorn. A second signal while
    the day ends goes to uvicorn at once.
    """

    def __init__(self) -> None:
        self.received: int | None = None
        self._wake: Callable[[], object] | None = None
        self._previous: dict[int, Any] = {}
        self._server: dict[int, SignalHandler] = {}
        self._handed_on = False

    def install(self) -> None:
        for sig in STOP_SIGNALS:
            self._previous[sig] = signal.signal(sig, self._noted)

    def uninstall(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _noted(self, sig: int, frame: FrameType | None) -> None:
        if self.received is None:
            self.received = sig
        if self._wake is not None:
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                self._wake()

    def _while_serving(self, sig: int, frame: FrameType | None) -> None:
        if self.received is None:
            self._noted(sig, frame)
        else:
            self.hand_on(sig)

    def watch_while_serving(self, stop: asyncio.Event) -> None:
        """Called in the event loop once the server runs: `stop` is set on a signal."""
        loop = asyncio.get_running_loop()
        self._wake = lambda: loop.call_soon_threadsafe(stop.set)
        for sig in STOP_SIGNALS:
            current = signal.getsignal(sig)
            if callable(current) and current != self._noted:
                self._server[sig] = current
                signal.signal(sig, self._while_serving)
        if self.received is not None:
            stop.set()

    def release(self) -> None:
        """The server's own handlers again (the day is over, or stopped)."""
        self._wake = None
        for sig, server_handler in self._server.items():
            if signal.getsignal(sig) == self._while_serving:
                signal.signal(sig, server_handler)

    def hand_on(self, sig: int | None = None) -> None:
        """Let the server stop (after the day has): its handler gets the signal."""
        self.release()
        sig = sig or self.received
        handler = None if sig is None else self._server.get(sig)
        if sig is not None and handler is not None and not self._handed_on:
            self._handed_on = True
            handler(sig, None)


def companion(
    pace: float = 1.0, narrator: Narrator | None = None, stopper: Stopper | None = None
) -> Companion:
    tell = narrator or Narrator(DEFAULT_LANGUAGE)

    async def play(runtime: Runtime) -> None:
        headers = {"Authorization": f"Bearer {runtime.admin_token}"}
        async with httpx.AsyncClient(base_url=runtime.base_url, headers=headers) as hub:
            users = await seed(hub)
            # The employee whose sign-in link is printed is left to the person who signs
            # in: the scripted day plays with the other colleagues.
            users = [u for u in users if u != USERS[0][0]]
            emulator = runtime.emulator
            if emulator is None:
                await DemoDay(hub, None, users, pace, narrator=tell).run()
                return
            context = ssl.create_default_context(cafile=str(emulator.ca_file))
            async with httpx.AsyncClient(base_url=emulator.base_url, verify=context) as teams:
                await make_it_admin(teams)
                tell.step(Say.DAY_BEGINS, count=len(users))
                for group in GROUPS:
                    members = [u for u in users if GROUP_OF.get(u) == group["id"]]
                    mode = group["settings"].get("teams_sync_mode", "")
                    tell.step(
                        Say.GROUP_SYNC,
                        group=group["name"],
                        names=tell.names(members),
                        mode=tell.text(Say.TELEPHONY_ONLY, group=group["name"])
                        if mode == "telephony_only"
                        else tell.text(Say.BOTH_WAYS),
                    )
                await DemoDay(hub, teams, users, pace, narrator=tell).run()

    async def run(runtime: Runtime) -> None:
        if stopper is None:
            await play(runtime)
            return
        stop = asyncio.Event()
        stopper.watch_while_serving(stop)
        day = asyncio.create_task(play(runtime))
        stopped = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait((day, stopped), return_when=asyncio.FIRST_COMPLETED)
        finally:
            # The day ends (its scenes first, then its HTTP clients) before the server.
            stopped.cancel()
            day.cancel()
            try:
                await asyncio.gather(day, stopped, return_exceptions=True)
            finally:
                if stop.is_set():
                    stopper.hand_on()
                else:  # the day ended by itself: Ctrl+C is the server's own again
                    stopper.release()
        if not day.cancelled() and day.exception() is not None:
            log.error("the demo's office day stopped: %r", day.exception())

    return run


async def make_it_admin(teams: httpx.AsyncClient) -> None:
    """The IT administrator: an emulator account holding the console's administrator app
    role, so the demo shows an administrator signing in like everyone else."""
    user = {"id": ADMIN_ID, "upn": ADMIN_UPN}
    (await teams.post("/_emulator/users", json=user)).raise_for_status()
    path = f"/_emulator/apps/{CONSOLE_APP}/role-assignments/{ADMIN_UPN}"
    (await teams.put(path, json={"roles": [CONSOLE_ADMIN_ROLE]})).raise_for_status()


def start_kamailio(folder: Path) -> Kamailio | str:
    """`demo --with-sip`: Kamailio as PBX and presence server on loopback (the config
    the SIP tests use), or why it cannot run here."""
    if shutil.which("kamailio") is None:
        return "kamailio"
    if not (MODULES / "presence.so").exists():
        return "kamailio-presence-modules"
    kamailio = Kamailio(folder / "kamailio")
    kamailio.start()
    return kamailio


def sip_tables(server: str, language: str) -> dict[str, list[dict[str, Any]]]:
    """The `[[pbx]]` and `[[publish]]` tables of the SIP demo, as a config file has them."""
    return {
        "pbx": [{"kind": "sip-dialog", "server": server}],
        "publish": [{"kind": "sip-presence", "server": server, "language": language}],
    }


def run_demo(
    settings: Settings, pace: float, folder: Path, kamailio: Kamailio | str | None = None
) -> int:
    """The `demo` command: serve with the scripted day until Ctrl+C or SIGTERM; exit code 0.
    With a started `kamailio`, the SIP connectors in `settings` watch and publish there."""
    narrator = Narrator(settings.language)
    assert settings.admin_token is not None
    token = settings.admin_token.get_secret_value()
    base = f"http://{settings.host}:{settings.port}"
    narrator.plain(Say.TITLE, version=__version__)
    narrator.plain(Say.BOARD, url=f"{base}/#token={token}")
    first_id, first_name, _ = USERS[0]
    hint = quote(f"{first_id}@{DOMAIN}")
    employee = f"{base}/console/sso?login_hint={hint}&next=/console/me"
    narrator.plain(Say.EMPLOYEE, url=employee, name=first_name)
    narrator.plain(Say.ADMIN_SSO, upn=ADMIN_UPN)
    narrator.plain(Say.API, url=f"{base}/docs", token=token)
    narrator.plain(Say.DATA, folder=folder)
    if isinstance(kamailio, Kamailio):
        first, last = extension_of(0), extension_of(len(USERS) - 1)
        narrator.plain(Say.SIP, server=kamailio.domain, first=first, last=last)
    elif kamailio is not None:
        narrator.plain(Say.SIP_MISSING, reason=kamailio)
    narrator.plain(Say.CTRL_C)
    # One line per request drowns the story: the demo keeps the access log to warnings.
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    stopper = Stopper()
    stopper.install()
    try:
        asyncio.run(serve_hub(settings, (companion(pace, narrator, stopper),), graph_emulator=True))
    finally:
        stopper.uninstall()
        if isinstance(kamailio, Kamailio):
            kamailio.stop()
    narrator.muted = False
    narrator.plain(Say.STOPPED)
    return 0
