"""Microphone Sync (Präsenzerweiterung, SPEC §6): which program holding the
microphone counts, under which name, and when a change is real (debounce).

Pure: the agent uses it to decide what to report, the server to decide what the
report means, so both sides agree by construction.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from presencebridge.core.effective import MICSYNC_TEMPLATE, micsync_template
from presencebridge.core.model import ProfileTemplate
from presencebridge.core.settings import GroupSettings

# Always on the whitelist; the group's ProcessWhitelist adds to these (SPEC §6).
DEFAULT_WHITELIST = (
    "chrome",
    "firefox",
    "iexplore",
    "msedge",
    "g2mcomm",
    "TeamViewerMeeting",
    "Zoom",
)

# Friendly names of SPEC §6, keyed by normalised process name.
FRIENDLY_NAMES: dict[str, str] = {
    "amazon chime": "Amazon Chime for Windows",
    "bluejeans": "BlueJeans for Windows",
    "circuit": "Circuit for Windows",
    "ciscocollabhost": "Cisco Webex",
    "discord": "Discord",
    "chrome": "Google Chrome",
    "g2mcomm": "GoTo Meeting",
    "firefox": "Mozilla Firefox",
    "msedge": "Microsoft Edge",
    "iexplore": "Microsoft Internet Explorer",
    "teams": "Microsoft Teams (V1)",
    "ms-teams": "Microsoft Teams (V2)",
    "ringcentral": "RingCentral App",
    "slack": "Slack for Windows",
    "teamviewermeeting": "TeamViewer Meeting",
    "unify office": "Unify Office",
    "zoom": "Zoom Meeting",
}

# Other names the same programs go by on some platform (macOS bundle ids, helpers).
ALIASES: dict[str, str] = {
    "zoom.us": "zoom",
    "us.zoom.xos": "zoom",
    "com.microsoft.teams2": "ms-teams",
    "com.microsoft.teams2.modulehost": "ms-teams",
    "msteams": "ms-teams",
    "com.microsoft.teams": "teams",
    "google chrome": "chrome",
    "google-chrome": "chrome",
    "chromium": "chrome",
    "com.google.chrome": "chrome",
    "microsoft edge": "msedge",
    "microsoft-edge": "msedge",
    "org.mozilla.firefox": "firefox",
    "firefox-esr": "firefox",
    "webex": "ciscocollabhost",
    "cisco webex meetings": "ciscocollabhost",
}

BROWSERS = frozenset({"chrome", "firefox", "msedge", "iexplore"})
AGENT_PROCESSES = frozenset({"presencebridge", "presencebridge-agent"})

_SUFFIXES = re.compile(r"\.(exe|app)$", re.IGNORECASE)

# Debounce: in use after ~2 s of use, released after ~5 s of silence (configurable).
DEFAULT_ON_DELAY = timedelta(seconds=2)
DEFAULT_OFF_DELAY = timedelta(seconds=5)


def normalise(name: str) -> str:
    """Case, path, `.exe`/`.app` and known aliases do not matter (SPEC §6)."""
    base = re.split(r"[\\/]", name.strip())[-1]
    base = _SUFFIXES.sub("", base).strip().lower()
    return ALIASES.get(base, base)


def effective_whitelist(configured: str | Iterable[str]) -> frozenset[str]:
    """The defaults plus the group's `MicrophoneUsageSync.ProcessWhitelist`."""
    names = configured.split(",") if isinstance(configured, str) else list(configured)
    return frozenset(normalise(n) for n in (*DEFAULT_WHITELIST, *names) if n.strip())


def friendly_name(process: str) -> str:
    key = normalise(process)
    return FRIENDLY_NAMES.get(key, process.strip() or key)


def _rank(process: str) -> tuple[int, str]:
    # Dedicated meeting apps say more than a browser that happens to use the microphone.
    return (1 if process in BROWSERS else 0, process)


def choose(processes: Iterable[str], whitelist: frozenset[str]) -> str | None:
    """The process that names the service, among those on the whitelist; None if none."""
    candidates = {normalise(p) for p in processes} - AGENT_PROCESSES
    allowed = sorted((p for p in candidates if p in whitelist), key=_rank)
    return allowed[0] if allowed else None


@dataclass
class Debouncer:
    """Turns raw snapshots into reports: a use counts after `on_delay`, ends after `off_delay`.

    Feed it every snapshot (`observe`) and call `due` when woken; it answers with the
    set to report when the reported set should change, else None.
    """

    on_delay: timedelta = DEFAULT_ON_DELAY
    off_delay: timedelta = DEFAULT_OFF_DELAY
    reported: frozenset[str] = frozenset()
    _seen_since: dict[str, datetime] = field(default_factory=dict)
    _gone_since: dict[str, datetime] = field(default_factory=dict)

    def observe(self, processes: Iterable[str], now: datetime) -> frozenset[str] | None:
        current = frozenset(processes)
        for name in current:
            self._seen_since.setdefault(name, now)
            self._gone_since.pop(name, None)
        for name in list(self._seen_since):
            if name not in current:
                del self._seen_since[name]
        for name in self.reported - current:
            self._gone_since.setdefault(name, now)
        return self.due(now)

    def due(self, now: datetime) -> frozenset[str] | None:
        on = {n for n, since in self._seen_since.items() if now - since >= self.on_delay}
        still = {n for n in self.reported if n in self._seen_since}
        lingering = {
            n for n in self.reported - still if now - self._gone_since.get(n, now) < self.off_delay
        }
        wanted = frozenset(on | still | lingering)
        if wanted == self.reported:
            return None
        for name in self.reported - wanted:
            self._gone_since.pop(name, None)
        self.reported = wanted
        return wanted

    def next_wakeup(self, now: datetime) -> datetime | None:
        moments = [s + self.on_delay for n, s in self._seen_since.items() if n not in self.reported]
        moments += [g + self.off_delay for g in self._gone_since.values()]
        future = [m for m in moments if m > now]
        return min(future) if future else None


def micsync_problem(enabled: int, template_exists: bool, template_active: bool) -> str | None:
    """Why Microphone Sync does nothing for a group, or None when it works (SPEC §6)."""
    if not enabled:
        return "MicrophoneUsageSync.Enable is 0"
    if not template_exists:
        return "the central profile template MicSync is missing: create it for the group"
    if not template_active:
        return "the central profile template MicSync is inactive: activate it"
    return None


def group_problem(settings: GroupSettings, templates: tuple[ProfileTemplate, ...]) -> str | None:
    """Why Microphone Sync does nothing in a group with these settings and templates."""
    existing = any(t.name == MICSYNC_TEMPLATE for t in templates)
    active = micsync_template(templates) is not None
    return micsync_problem(settings.microphone_sync_enable, existing, active)
