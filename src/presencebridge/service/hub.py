"""The hub: where the pure core meets the store and the listeners.

Each user's events run one at a time (a lock per user); different users run in
parallel. The in-memory state is written through to the store before a change
is acknowledged or published, so what a caller was told survives a crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TypeVar

from presencebridge import metrics
from presencebridge.adapters.store import GroupRecord, HistoryEntry, Store, UnknownTokenError
from presencebridge.core import rules
from presencebridge.core.effective import (
    EffectivePresence,
    effective_presence,
    my_profiles,
)
from presencebridge.core.errors import Reason, Rejected
from presencebridge.core.model import (
    Profile,
    ProfileTemplate,
    Status,
    TeamsSyncMode,
    User,
    UserState,
)
from presencebridge.core.settings import GroupSettings, effective_mode
from presencebridge.core.texts import Text
from presencebridge.service.bus import PresenceBus, PresenceChange
from presencebridge.service.clock import Clock
from presencebridge.service.commit import GroupCommit
from presencebridge.service.membership import SINGLE_NODE, Membership
from presencebridge.service.timers import Deadlines

log = logging.getLogger(__name__)
T = TypeVar("T")

HISTORY_KEPT = timedelta(days=14)
# Users handled side by side by handle_many: enough to fill a group commit many times.
HANDLE_MANY_SLICE = 1000

# The central template `create_teams_profile_template` creates (SPEC §5); editable afterwards.
TEAMS_TEMPLATE = ProfileTemplate("MS Teams", Status.BUSY, Text.ON_THE_PHONE_TEAMS, "#5b5fc7")


@dataclass(slots=True)
class _UserLock:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0  # holding or waiting


class NotOwner(Exception):
    """This node does not handle the user now (several nodes): another one does."""

    def __init__(self, user_id: str) -> None:
        super().__init__(f"user {user_id!r} is handled by another node")
        self.user_id = user_id


@dataclass(frozen=True, slots=True)
class UserView:
    state: UserState
    presence: EffectivePresence


class Hub:
    def __init__(self, store: Store, clock: Clock | None = None) -> None:
        """A hub that handles every user until it `join`s a cluster."""
        self.store = store
        self.clock = clock or Clock()
        self.bus = PresenceBus()
        self._groups: dict[str, GroupRecord] = {}
        self._users: dict[str, UserState] = {}
        self._presence: dict[str, EffectivePresence] = {}
        self._user_locks: dict[str, _UserLock] = {}
        self._group_lock = asyncio.Lock()
        self._timers = Deadlines(self.clock.now, self._tick_due, self._live)
        self._by_teams_id: dict[str, str] = {}
        # SQLite has one writer at a time: one thread avoids lock contention.
        workers = 1 if store.engine.dialect.name == "sqlite" else 8
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="store")
        self._teams_last_sync: dict[str, datetime] = {}
        self._warned_no_dnd_profile: set[str] = set()
        self._change_listeners: list[Callable[[str], None]] = []
        self._takeover_listeners: list[Callable[[Sequence[str]], None]] = []
        self._commit = GroupCommit(self._save)
        self._membership = SINGLE_NODE
        self._started = False

    def join(self, membership: Membership) -> None:
        """Several nodes (service/cluster.py): which users this node handles, and where
        their new states and group changes go. Once, before `start`."""
        if self._started or not self._membership.single:
            raise RuntimeError("a hub joins a cluster once, before it starts")
        self._membership = membership

    def owns(self, user_id: str) -> bool:
        return self._membership.owns(user_id)

    def _replicate(self, state: UserState) -> None:
        self._membership.replicate(state)

    # -- life cycle ------------------------------------------------------------------------

    async def start(self) -> None:
        self._started = True
        groups = await self._io(self.store.load_groups)
        self._groups = {g.id: g for g in groups}
        states = await self._io(self.store.load_users)
        now = self.clock.now()
        # Reconcile at start: whatever time did while we were down takes effect now.
        aged = [rules.age(s, now) for s in states]
        # Several nodes: only our own users are written; taking others over ages them.
        changed = [a for a, s in zip(aged, states, strict=True) if a != s and self.owns(a.user.id)]
        if changed:
            await self._io(self.store.save_users, changed, [], now)
        for state in aged:
            self._users[state.user.id] = state
            self._presence[state.user.id] = self._evaluate(state, now)
            self._index(state)
            self._schedule(state, now)
        await self._io(self.store.prune_history, now - HISTORY_KEPT)
        # Everyone's state lives as long as the process: keep it out of the full garbage
        # collections, which otherwise stop the loop for most of a second at 100k users.
        gc.collect()
        gc.freeze()
        metrics.USERS.set(len(self._users))
        self._commit.start()
        self._timers.start()
        log.info("hub started with %d groups and %d users", len(groups), len(states))

    async def stop(self) -> None:
        await self._timers.stop()
        await self._commit.stop()
        self._executor.shutdown(wait=True)

    async def _save(
        self, states: Sequence[UserState], history: Sequence[HistoryEntry], now: datetime
    ) -> None:
        await self._io(self.store.save_users, states, history, now)

    async def _io(self, fn: Callable[..., T], *args: object) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    # -- reading (from memory) -------------------------------------------------------------

    def groups(self) -> list[GroupRecord]:
        return list(self._groups.values())

    def group(self, group_id: str) -> GroupRecord:
        try:
            return self._groups[group_id]
        except KeyError:
            raise Rejected(Reason.NOT_FOUND, f"unknown group {group_id!r}") from None

    def user_ids(self) -> list[str]:
        return list(self._users)

    def has_user(self, user_id: str) -> bool:
        return user_id in self._users

    def user(self, user_id: str) -> UserView:
        try:
            return UserView(self._users[user_id], self._presence[user_id])
        except KeyError:
            raise Rejected(Reason.NOT_FOUND, f"unknown user {user_id!r}") from None

    def presences(self) -> list[tuple[str, EffectivePresence]]:
        return list(self._presence.items())

    def profiles(self, user_id: str) -> tuple[Profile, ...]:
        state = self.user(user_id).state
        return my_profiles(state, self._groups[state.user.group].templates)

    def settings_for(self, user_id: str) -> GroupSettings:
        return self._groups[self.user(user_id).state.user.group].settings

    async def history(self, user_id: str, limit: int = 50) -> list[HistoryEntry]:
        self.user(user_id)
        return await self._io(self.store.history, user_id, limit)

    # -- groups ----------------------------------------------------------------------------

    async def create_group(self, group_id: str, name: str, settings: GroupSettings) -> GroupRecord:
        async with self._group_lock:
            if group_id in self._groups:
                raise Rejected(Reason.CONFLICT, f"group {group_id!r} exists already")
            templates = (TEAMS_TEMPLATE,) if settings.create_teams_profile_template else ()
            group = GroupRecord(group_id, name, settings, templates)
            await self._io(self.store.create_group, group, self.clock.now())
            if templates:
                await self._io(self.store.save_templates, group_id, templates)
            self._groups[group_id] = group
        self._group_changed(group_id)
        return group

    async def update_group_settings(self, group_id: str, settings: GroupSettings) -> GroupRecord:
        async with self._group_lock:
            group = self.group(group_id)
            templates = group.templates
            wants_teams_template = settings.create_teams_profile_template
            if wants_teams_template and all(t.name != TEAMS_TEMPLATE.name for t in templates):
                templates = (*templates, TEAMS_TEMPLATE)
            await self._io(self.store.save_group_settings, group_id, settings)
            if templates != group.templates:
                await self._io(self.store.save_templates, group_id, templates)
            self._groups[group_id] = replace(group, settings=settings, templates=templates)
        self._group_changed(group_id)
        await self._refresh_group(group_id, "settings")
        return self._groups[group_id]

    async def put_template(self, group_id: str, template: ProfileTemplate) -> GroupRecord:
        """Add a central template, or replace the one of the same name."""
        async with self._group_lock:
            group = self.group(group_id)
            names = [t.name for t in group.templates]
            if template.name in names:
                templates = tuple(
                    template if t.name == template.name else t for t in group.templates
                )
            else:
                templates = (*group.templates, template)
            await self._io(self.store.save_templates, group_id, templates)
            self._groups[group_id] = replace(group, templates=templates)
        self._group_changed(group_id)
        await self._refresh_group(group_id, "template")
        return self._groups[group_id]

    async def _refresh_group(self, group_id: str, source: str) -> None:
        """Templates change members' My Profiles and so, maybe, their presence."""
        members = [u for u, s in self._users.items() if s.user.group == group_id and self.owns(u)]
        await self.tick_all(members, source)

    def _group_changed(self, group_id: str) -> None:
        self._membership.group_changed(group_id)

    async def reload_group(self, group_id: str) -> None:
        """Another node changed the group: read it again, re-evaluate our members."""
        groups = {g.id: g for g in await self._io(self.store.load_groups)}
        async with self._group_lock:
            if group_id not in groups:
                return
            self._groups[group_id] = groups[group_id]
        await self._refresh_group(group_id, "settings")

    # -- users -----------------------------------------------------------------------------

    async def create_user(self, user: User) -> UserView:
        if not self.owns(user.id):
            raise NotOwner(user.id)
        if user.group not in self._groups:
            await self.reload_groups()  # several nodes: made on another one a moment ago
        async with self._lock(user.id):
            self.group(user.group)
            if user.id in self._users:
                raise Rejected(Reason.CONFLICT, f"user {user.id!r} exists already")
            if user.teams_user_id and user.teams_user_id in self._by_teams_id:
                raise Rejected(
                    Reason.CONFLICT, f"teams_user_id {user.teams_user_id!r} belongs to another user"
                )
            state = UserState(user=user)
            now = self.clock.now()
            await self._io(self.store.create_user, state, now)
            self._users[user.id] = state
            self._index(state)
            presence = self._evaluate(state, now)
            self._presence[user.id] = presence
            metrics.USERS.set(len(self._users))
        self.bus.publish(PresenceChange(user.id, presence))
        self._replicate(state)
        return UserView(state, presence)

    async def handle(self, user_id: str, event: rules.Event, source: str) -> UserView:
        """Apply one event to one user, durably; publish the presence if it changed."""
        started = time.perf_counter()
        kind = type(event).__name__
        if not self.owns(user_id):
            self.user(user_id)  # an unknown user is a 404, wherever it is asked
            raise NotOwner(user_id)
        async with self._lock(user_id):
            if not self.owns(user_id):  # given away while we waited
                raise NotOwner(user_id)
            old = self.user(user_id)
            now = self.clock.now()
            group = self._groups[old.state.user.group]
            try:
                applied = rules.apply(
                    old.state, event, rules.GroupContext(group.templates, group.settings), now
                )
            except Rejected:
                metrics.EVENTS.labels(kind, "rejected").inc()
                raise
            new_state, presence = applied.state, applied.presence
            changed = presence != old.presence
            if new_state != old.state or changed:
                history = [self._history(user_id, presence, source, now)] if changed else []
                await self._commit.write([new_state], history, now)
                self._users[user_id] = new_state
                self._index(new_state, old.state)
                self._presence[user_id] = presence
            self._schedule(new_state, now)
            metrics.EVENTS.labels(kind, "applied").inc()
            metrics.EVENT_SECONDS.observe(time.perf_counter() - started)
        if changed:
            metrics.PRESENCE_CHANGES.inc()
            self.bus.publish(PresenceChange(user_id, presence))
        if new_state != old.state:
            self._replicate(new_state)
        self._after_change(old.state, new_state)
        return UserView(new_state, presence)

    async def tick_all(self, user_ids: Sequence[str], source: str) -> None:
        """Let time (or new settings) take effect for many users, a slice at a time."""
        for start in range(0, len(user_ids), HANDLE_MANY_SLICE):
            part = user_ids[start : start + HANDLE_MANY_SLICE]
            await self.handle_many(((u, rules.Tick()) for u in part), source)

    async def handle_many(
        self, events: Iterable[tuple[str, rules.Event]], source: str
    ) -> list[tuple[int, Rejected]]:
        """Apply many events at once; they share durable commits.

        Each user's events keep their order (one task per user, in turn); users run
        side by side. A rejected event is returned with its index; the others apply.
        The new views are not kept: at 100,000 users (a group switched on) holding them
        to the end would raise the peak the allocator then keeps as RSS.
        """
        per_user: dict[str, list[tuple[int, rules.Event]]] = {}
        for index, (user_id, event) in enumerate(events):
            per_user.setdefault(user_id, []).append((index, event))
        rejected: list[tuple[int, Rejected]] = []

        async def run(user_id: str, queue: list[tuple[int, rules.Event]]) -> None:
            for index, event in queue:
                try:
                    await self.handle(user_id, event, source)
                except Rejected as refusal:
                    rejected.append((index, refusal))

        # In slices: a group switched on at 100,000 users must not become 100,000 tasks
        # at once.
        queues = list(per_user.items())
        for start in range(0, len(queues), HANDLE_MANY_SLICE):
            await asyncio.gather(*(run(u, q) for u, q in queues[start : start + HANDLE_MANY_SLICE]))
        return sorted(rejected, key=lambda item: item[0])

    # -- several nodes ---------------------------------------------------------------------

    async def apply_remote(self, state: UserState) -> None:
        """Another node changed a user it handles: keep our copy (for streams) in step."""
        user_id = state.user.id
        if state.user.group not in self._groups:
            await self.reload_groups()  # created on another node a moment ago
        if self.owns(user_id) or state.user.group not in self._groups:
            return  # ours now: our own state is newer than any message about it
        old = self._presence.get(user_id)
        presence = self._evaluate(state, self.clock.now())
        self._users[user_id] = state
        self._presence[user_id] = presence
        self._index(state)
        metrics.USERS.set(len(self._users))
        if presence != old:
            self.bus.publish(PresenceChange(user_id, presence))
        for listener in self._change_listeners:
            listener(user_id)  # an agent connected here learns of its user's change

    async def load_stored_users(self) -> list[UserState]:
        return await self._io(self.store.load_users)

    async def take_over(self, states: Sequence[UserState], claim: Callable[[], None]) -> None:
        """This node now handles these users: their stored states are the truth.

        The states are put in place and `claim` makes them ours in one step (no await
        between), so no event can meet an outdated copy. Whatever their deadlines did
        meanwhile takes effect now, and the Teams side is compared once, as at start.
        """
        if any(s.user.group not in self._groups for s in states):
            await self.reload_groups()
        now = self.clock.now()
        changed: list[tuple[str, EffectivePresence]] = []
        for state in states:
            user_id = state.user.id
            old = self._presence.get(user_id)
            self._users[user_id] = state
            self._index(state)
            self._presence[user_id] = presence = self._evaluate(state, now)
            if presence != old:
                changed.append((user_id, presence))
        claim()
        for user_id, presence in changed:
            self.bus.publish(PresenceChange(user_id, presence))
        # The old owner may have died between its commit and telling the others.
        for state in states:
            self._replicate(state)
        metrics.USERS.set(len(self._users))
        await self.tick_all([s.user.id for s in states], "takeover")
        taken = [s.user.id for s in states]
        for takeover_listener in self._takeover_listeners:
            takeover_listener(taken)

    async def reload_groups(self) -> None:
        groups = await self._io(self.store.load_groups)
        async with self._group_lock:
            self._groups = {g.id: g for g in groups}

    def add_change_listener(self, listener: Callable[[str], None]) -> None:
        """Called with the user id after each handled event, and after another node's
        change reached us (the Teams writer, the agent relay)."""
        self._change_listeners.append(listener)

    def add_takeover_listener(self, listener: Callable[[Sequence[str]], None]) -> None:
        """Called with the users this node has just taken over from another."""
        self._takeover_listeners.append(listener)

    def _after_change(self, old: UserState, new: UserState) -> None:
        for listener in self._change_listeners:
            listener(new.user.id)
        if new.teams.seen.held_by_user and not old.teams.seen.held_by_user:
            metrics.TEAMS_HELD_BY_USER.inc()
            log.info(
                "Teams status of %s is held by the user; the hub does not override it", new.user.id
            )
        chosen = new.selection
        if (
            chosen is not None
            and chosen.builtin
            and new.user.id not in self._warned_no_dnd_profile
            and chosen != old.selection
        ):
            self._warned_no_dnd_profile.add(new.user.id)
            log.warning(
                "%s is in DnD in Teams but has no profile with status dnd in My Profiles: "
                "a built-in DnD is used; add one",
                new.user.id,
            )

    # -- Teams sync --------------------------------------------------------------------------

    def synced_users(self) -> list[tuple[str, str]]:
        """(user id, Teams user id) of everyone whose mode syncs with Teams."""
        result = []
        for user_id, state in self._users.items():
            teams_id = state.user.teams_user_id
            if teams_id is None or not self.owns(user_id):
                continue
            settings = self._groups[state.user.group].settings
            if effective_mode(settings, state.own_mode) is not TeamsSyncMode.OFF:
                result.append((user_id, teams_id))
        return result

    def user_for_teams_id(self, teams_user_id: str) -> str | None:
        return self._by_teams_id.get(teams_user_id)

    def mode_of(self, user_id: str) -> TeamsSyncMode:
        state = self.user(user_id).state
        return effective_mode(self._groups[state.user.group].settings, state.own_mode)

    def note_teams_sync(self, user_id: str, at: datetime) -> None:
        self._teams_last_sync[user_id] = at

    def teams_last_sync(self, user_id: str) -> datetime | None:
        return self._teams_last_sync.get(user_id)

    # -- agent tokens ----------------------------------------------------------------------

    async def issue_agent_token(self, user_id: str) -> str:
        self.user(user_id)
        token = "pba_" + secrets.token_urlsafe(32)
        await self._io(self.store.add_agent_token, user_id, token, self.clock.now())
        return token

    async def agent_token_user(self, token: str) -> str | None:
        try:
            return await self._io(self.store.agent_token_user, token)
        except UnknownTokenError:
            return None

    # -- time ------------------------------------------------------------------------------

    async def advance_clock(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self._timers.wake()
        await self.settle_timers()

    async def settle_timers(self) -> None:
        """Handle every deadline that is due now (used after the clock jumps)."""
        await self._timers.settle()

    def _schedule(self, state: UserState, now: datetime) -> None:
        self._timers.schedule(state.user.id, rules.next_deadline(state, now))

    def _live(self, user_id: str) -> bool:
        """A deadline of a user this node still has and handles."""
        return user_id in self._users and self.owns(user_id)

    async def _tick_due(self, user_ids: Sequence[str]) -> None:
        await self.tick_all(user_ids, "clock")

    # -- helpers ---------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _lock(self, user_id: str) -> AsyncIterator[None]:
        """The user's lock, kept only while someone holds or waits for it: 100,000
        idle locks would cost ~20 MB for nothing."""
        entry = self._user_locks.get(user_id)
        if entry is None:
            entry = self._user_locks[user_id] = _UserLock()
        entry.users += 1
        try:
            async with entry.lock:
                yield
        finally:
            entry.users -= 1
            if entry.users == 0:
                del self._user_locks[user_id]

    def _index(self, state: UserState, old: UserState | None = None) -> None:
        if old is not None and old.user.teams_user_id not in (None, state.user.teams_user_id):
            self._by_teams_id.pop(old.user.teams_user_id, None)
        if state.user.teams_user_id is not None:
            self._by_teams_id[state.user.teams_user_id] = state.user.id

    def _evaluate(self, state: UserState, now: datetime) -> EffectivePresence:
        return effective_presence(state, self._groups[state.user.group].templates, now)

    @staticmethod
    def _history(
        user_id: str, presence: EffectivePresence, source: str, now: datetime
    ) -> HistoryEntry:
        return HistoryEntry(
            user_id, now, source, presence.status.value, presence.telephony.value, presence.text
        )
