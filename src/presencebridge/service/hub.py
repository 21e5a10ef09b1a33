"""The hub: where the pure core meets the store and the listeners.

Each user's events run one at a time (a lock per user); different users run in
parallel. The in-memory state is written through to the store before a change
is acknowledged or published, so what a caller was told survives a crash.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import gc
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from presencebridge import metrics
from presencebridge.adapters.store import (
    AGENT,
    AgentTokenInfo,
    Duplicate,
    GroupRecord,
    HistoryEntry,
    Store,
    TeamsRelease,
    TokenRecord,
    UnknownTokenError,
)
from presencebridge.core import addresses, claims, rules, teams
from presencebridge.core.effective import (
    EffectivePresence,
    effective_presence,
    my_profiles,
    refuse_reserved_name,
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
from presencebridge.service import audit
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
# Users of handle_many in flight at once, over all its callers (a poll round's reads, the
# clock, a group switched on); a slice bigger than what is left waits until the others
# are done. Each user in flight holds ~4 KB of transient objects (old and new state,
# history, encoded row, task); unbounded, a first poll round at 20,000 users had them all
# in flight at once and the allocator kept the peak (docs/benchmarks.md finding 6). A
# steady round's reads bring a few changes each: they never wait.
HANDLE_MANY_IN_FLIGHT = 2000
# Distinct effective presences kept for sharing (see `_Presences`) before starting afresh.
PRESENCES_SHARED = 4096

# The central template `create_teams_profile_template` creates (SPEC §5); editable afterwards.
TEAMS_TEMPLATE = ProfileTemplate("MS Teams", Status.BUSY, Text.ON_THE_PHONE_TEAMS, "#5b5fc7")


@dataclass(slots=True)
class _UserLock:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0  # holding or waiting


@dataclass(frozen=True, slots=True)
class NewUser:
    """A user for `Hub.create_users`, with their own Teams sync mode from the start."""

    user: User
    own_mode: TeamsSyncMode | None = None


@dataclass(frozen=True, slots=True)
class _Planned:
    """A lifecycle change worked out and not yet written."""

    old: UserView
    state: UserState
    presence: EffectivePresence
    entry: HistoryEntry
    release: TeamsRelease | None


@dataclass(frozen=True, slots=True)
class Refusals:
    """The changes of a batch (`Hub.change_users`) that were refused: (index, why) of its
    new users and of its updates."""

    creates: list[tuple[int, Rejected]] = field(default_factory=list)
    updates: list[tuple[int, Rejected]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.creates or self.updates)


@dataclass(slots=True)
class _AppliedBatch:
    """A telephony batch applied in memory (`Hub.handle_batch`): per user the view before
    and each applied step; the history entries, the rejected events, the applied kinds."""

    steps: dict[str, tuple[UserView, list[UserView]]] = field(default_factory=dict)
    history: list[HistoryEntry] = field(default_factory=list)
    rejected: list[tuple[int, Rejected]] = field(default_factory=list)
    applied: collections.Counter[str] = field(default_factory=collections.Counter)


@dataclass(frozen=True, slots=True)
class _Batch:
    """New users and lifecycle changes worked out and checked, not yet written."""

    created: list[NewUser]
    updated: list[_Planned]  # a user changed twice: both, in order
    refusals: Refusals


class StoreRefused(Rejected):
    """A unique or foreign key of the database refused a lifecycle write (another node's
    user holds the value); nothing was changed. `said`: the database's words."""

    def __init__(self, reason: str) -> None:
        super().__init__(
            Reason.CONFLICT,
            f"the database refused it: {reason}; nothing was changed",
            "store_refused",
        )
        self.said = reason


class NotOwner(Exception):
    """This node does not handle the user now (several nodes): another one does."""

    def __init__(self, user_id: str) -> None:
        super().__init__(f"user {user_id!r} is handled by another node")
        self.user_id = user_id


@dataclass(frozen=True, slots=True)
class UserView:
    state: UserState
    presence: EffectivePresence


class _Presences(dict[str, EffectivePresence]):
    """Every user's effective presence, and since when their status is what it is.

    The status-since time is kept where each presence is set, so no write path can
    forget it: it is the hub's clock when the status (not the text, the telephony or
    the colour) last changed. Users loaded at start take it from the presence history
    (`Hub._since_from_history`); without a history row that says, it is unknown until
    their status next changes.
    """

    def __init__(self, clock: Clock) -> None:
        super().__init__()
        self.clock = clock
        self.loading = False
        self.since: dict[str, datetime] = {}  # no entry: unknown
        # Equal presences are kept once (they are immutable): most users show one of a
        # few (available and idle, Teams read as available), and each copy with its Teams
        # view costs ~240 B.
        self._shared: dict[EffectivePresence, EffectivePresence] = {}

    def __setitem__(self, user_id: str, presence: EffectivePresence) -> None:
        self.put(user_id, presence, self.clock.now())

    def put(self, user_id: str, presence: EffectivePresence, now: datetime) -> None:
        """The presence a change made at `now`: the time its history row carries, so a
        restart finds the same status-since in the history."""
        shared = self._shared.setdefault(presence, presence)
        if len(self._shared) > PRESENCES_SHARED:
            self._shared.clear()  # many distinct ones (texts, appointments): start afresh
        presence = shared
        old = self.get(user_id)
        if old is None or old.status != presence.status:
            if self.loading:  # unknown: no entry (100,000 of them cost ~5 MB)
                self.since.pop(user_id, None)
            else:
                self.since[user_id] = now
        super().__setitem__(user_id, presence)

    def __delitem__(self, user_id: str) -> None:
        super().__delitem__(user_id)
        self.since.pop(user_id, None)

    def forget(self, user_id: str) -> None:
        self.pop(user_id, None)
        self.since.pop(user_id, None)


class Hub:
    def __init__(
        self,
        store: Store,
        clock: Clock | None = None,
        default_country: str = "DE",
        audit_retention: timedelta = audit.RETENTION,
    ) -> None:
        """A hub that handles every user until it `join`s a cluster."""
        self.store = store
        self.audit_retention = audit_retention  # audit log rows older than this are pruned
        self.clock = clock or Clock()
        self.default_country = default_country  # national phone numbers are read in it
        self.bus = PresenceBus()
        self._groups: dict[str, GroupRecord] = {}
        self._users: dict[str, UserState] = {}
        self._presence = _Presences(self.clock)
        self._user_locks: dict[str, _UserLock] = {}
        self._group_lock = asyncio.Lock()
        self._timers = Deadlines(self.clock.now, self._tick_due, self._live)
        self._by_teams_id: dict[str, str] = {}
        self._by_extension: dict[str, str] = {}
        self._by_number: dict[str, str] = {}
        self._holders = {  # by kind (core/claims.py)
            "teams_user_id": self._by_teams_id,
            "extension": self._by_extension,
            "number": self._by_number,
        }
        # Extensions, numbers and Teams ids are unique across users: changes to them
        # are checked and written one at a time.
        self._directory_lock = asyncio.Lock()
        self._releases: dict[int, TeamsRelease] = {}
        self._release_listeners: list[Callable[[TeamsRelease], None]] = []
        self._token_listeners: list[Callable[[str], None]] = []
        # SQLite has one writer at a time: one thread avoids lock contention.
        workers = 1 if store.engine.dialect.name == "sqlite" else 8
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="store")
        self._teams_last_sync: dict[str, datetime] = {}
        self._warned_no_dnd_profile: set[str] = set()
        self._change_listeners: list[Callable[[str], None]] = []
        self._takeover_listeners: list[Callable[[Sequence[str]], None]] = []
        self._lines_listeners: list[Callable[[], None]] = []
        self._commit = GroupCommit(self._save)
        self._many_room = asyncio.Condition()
        self._many_in_flight = 0
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
        self._presence.loading = True  # statuses from before the start: since unknown
        for state in aged:
            self._users[state.user.id] = state
            self._presence[state.user.id] = self._evaluate(state, now)
            self._index(state)
            self._schedule(state, now)
        self._presence.loading = False
        await self._since_from_history(now)
        await self._io(self.store.prune_history, now - HISTORY_KEPT)
        # The audit log counts in wall-clock time (its rows say when a person acted).
        await self._io(self.store.prune_audit, datetime.now(UTC) - self.audit_retention)
        self._releases = {r.id: r for r in await self._io(self.store.load_releases) if r.id}
        # Everyone's state lives as long as the process: keep it out of the full garbage
        # collections, which otherwise stop the loop for most of a second at 100k users.
        gc.collect()
        gc.freeze()
        metrics.USERS.set(len(self._users))
        self._commit.start()
        self._timers.start()
        log.info("hub started with %d groups and %d users", len(groups), len(states))

    async def _since_from_history(self, now: datetime) -> None:
        """Each user's status-since from before the start, out of the presence history
        (one query): when the latest run of rows with the user's current status began.
        Unknown (None) when the history has no row of the user (pruned, or never
        written) or its last row has another status (it changed while the hub was down,
        or at this start)."""
        runs = await self._io(self.store.status_runs)
        since = self._presence.since
        for user_id, run in runs.items():
            presence = self._presence.get(user_id)
            if presence is not None and presence.status.value == run.status:
                since[user_id] = min(run.since, now)

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

    async def store_io(self, fn: Callable[..., T], *args: object) -> T:
        """Run a store call on the hub's store thread (services beside the hub, such as
        the directory sync, keep their own rows in the same database)."""
        return await self._io(fn, *args)

    async def audit(
        self,
        action: str,
        target: str,
        details: Mapping[str, Any] | None = None,
        actor: audit.Actor | None = None,
    ) -> None:
        """Record a change the current actor (or `actor`) made (`service.audit`);
        nothing if no one acts (timers, connectors, a scheduled directory run)."""
        row = audit.entry(action, target, details, actor)
        if row is not None:
            await self._io(self.store.append_audit, row)

    # -- reading (from memory) -------------------------------------------------------------

    def groups(self) -> list[GroupRecord]:
        return list(self._groups.values())

    def group(self, group_id: str) -> GroupRecord:
        try:
            return self._groups[group_id]
        except KeyError:
            raise Rejected(
                Reason.NOT_FOUND, f"unknown group {group_id!r}", "group_unknown", {"id": group_id}
            ) from None

    def user_ids(self) -> list[str]:
        return list(self._users)

    def has_user(self, user_id: str) -> bool:
        return user_id in self._users

    def user(self, user_id: str) -> UserView:
        try:
            return UserView(self._users[user_id], self._presence[user_id])
        except KeyError:
            raise Rejected(
                Reason.NOT_FOUND, f"unknown user {user_id!r}", "user_unknown", {"id": user_id}
            ) from None

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
                raise Rejected(
                    Reason.CONFLICT,
                    f"group {group_id!r} exists already",
                    "group_exists",
                    {"id": group_id},
                )
            templates = (TEAMS_TEMPLATE,) if settings.create_teams_profile_template else ()
            group = GroupRecord(group_id, name, settings, templates)
            await self._io(self.store.create_group, group, self.clock.now())
            if templates:
                await self._io(self.store.save_templates, group_id, templates)
            self._groups[group_id] = group
        self._group_changed(group_id)
        await self.audit("group.created", group_id, {"name": name})
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
        changed = audit.changes(group.settings.public(), settings.public())
        if changed:
            await self.audit("group.settings.changed", group_id, changed)
        await self._refresh_group(group_id, "settings")
        return self._groups[group_id]

    async def put_template(self, group_id: str, template: ProfileTemplate) -> GroupRecord:
        """Add a central template, or replace the one of the same name. A built-in's name
        is refused: the template would replace the built-in for the whole group."""
        refuse_reserved_name(template.name, "template_reserved")
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
        before = next((t for t in group.templates if t.name == template.name), None)
        shown = {"name": template.name} | _template_changes(before, template)
        await self.audit("template.saved", group_id, shown)
        await self._refresh_group(group_id, "template")
        return self._groups[group_id]

    async def delete_group(self, group_id: str) -> None:
        """Only an empty group: while users are in it, a conflict naming how many."""
        async with self._group_lock:
            self.group(group_id)
            members = sum(1 for s in self._users.values() if s.user.group == group_id)
            if members:
                raise Rejected(
                    Reason.CONFLICT,
                    f"group {group_id!r} still has {members} user(s): move or delete them first",
                    "group_not_empty",
                    {"id": group_id, "n": members},
                )
            await self._stored(self.store.delete_group, group_id)
            del self._groups[group_id]
        self._group_changed(group_id)
        await self.audit("group.deleted", group_id)

    async def delete_template(self, group_id: str, name: str) -> GroupRecord:
        async with self._group_lock:
            group = self.group(group_id)
            templates = tuple(t for t in group.templates if t.name != name)
            if len(templates) == len(group.templates):
                raise Rejected(
                    Reason.NOT_FOUND,
                    f"group {group_id!r} has no template named {name!r}",
                    "template_unknown",
                    {"name": name},
                )
            await self._io(self.store.save_templates, group_id, templates)
            self._groups[group_id] = replace(group, templates=templates)
        self._group_changed(group_id)
        await self.audit("template.deleted", group_id, {"name": name})
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
                self._groups.pop(group_id, None)  # deleted there
                return
            self._groups[group_id] = groups[group_id]
        await self._refresh_group(group_id, "settings")

    # -- users -----------------------------------------------------------------------------

    async def create_user(self, user: User, own_mode: TeamsSyncMode | None = None) -> UserView:
        """`own_mode`: the user's own Teams sync mode from the start (the directory makes
        people without a Teams account with `off`)."""
        if not self.owns(user.id):
            raise NotOwner(user.id)
        if user.group not in self._groups:
            await self.reload_groups()  # several nodes: made on another one a moment ago
        async with self._directory_lock, self._lock(user.id):
            self.group(user.group)
            if user.id in self._users:
                raise Rejected(
                    Reason.CONFLICT,
                    f"user {user.id!r} exists already",
                    "user_exists",
                    {"id": user.id},
                )
            self._check_directory(user)
            state = UserState(user=user, own_mode=own_mode)
            now = self.clock.now()
            await self._stored(self.store.create_user, state, now)
            self._users[user.id] = state
            self._index(state)
            presence = self._evaluate(state, now)
            self._presence[user.id] = presence
            metrics.USERS.set(len(self._users))
        self.bus.publish(PresenceChange(user.id, presence))
        self._replicate(state)
        await self.audit("user.created", user.id, _user_fields(None, user))
        return UserView(state, presence)

    async def create_users(
        self, users: Sequence[NewUser], source: str
    ) -> list[tuple[int, Rejected]]:
        """Create many users at once (`change_users` without updates); returns the
        refused ones with their index."""
        return (await self.change_users(users, [], source)).creates

    async def update_users(
        self, changes: Sequence[tuple[str, Mapping[str, Any]]], source: str
    ) -> list[tuple[int, Rejected]]:
        """`update_user` for many users in one write (`change_users` without new users);
        returns the refused ones with their index."""
        return (await self.change_users([], changes, source)).updates

    async def change_users(
        self,
        creates: Sequence[NewUser],
        updates: Sequence[tuple[str, Mapping[str, Any]]],
        source: str,
        whole: bool = False,
    ) -> Refusals:
        """Create and change many users in one write (the directory sync, the CSV import).

        Each new user is checked as `create_user` checks one (group, id), each change as
        `update_user` does; Teams ids, extensions and numbers are checked for the batch
        as a whole (`core/claims.py`): what counts is who holds each value once every
        change is made, so a value one change gives up may be taken by any other, in any
        order. What passes is written in one transaction with history entries from
        `source` and Teams releases, then indexed, published and replicated. Returns
        what was refused; with `whole`, any refusal means nothing is written (an import:
        all or nothing).

        When the database refuses the write (another node's user holds a unique value),
        nothing is written, nothing changes in memory, and a `Rejected` (conflict) is
        raised. The directory lock keeps other lifecycle changes out; the changed users'
        locks keep their events out (new ids are unknown to the hub until the end)."""
        self._check_batch_owner(creates, updates)
        groups = {n.user.group for n in creates} | {f["group"] for _, f in updates if "group" in f}
        if groups - set(self._groups):
            await self.reload_groups()  # several nodes: made on another one a moment ago
        async with self._directory_lock, contextlib.AsyncExitStack() as locks:
            for user_id in sorted({u for u, _ in updates}):
                await locks.enter_async_context(self._lock(user_id))
            now = self.clock.now()
            batch = self._plan_batch(creates, updates, source, now)
            if whole and batch.refusals:
                return batch.refusals
            created, saved = await self._write_batch(batch, source, now)
        for view in created:
            self.bus.publish(PresenceChange(view.state.user.id, view.presence))
            self._replicate(view.state)
        for item, release in zip(batch.updated, saved, strict=True):
            self._published(item.old, UserView(item.state, item.presence))
            self._release_added(release)
        return batch.refusals

    def _check_batch_owner(
        self, creates: Sequence[NewUser], updates: Sequence[tuple[str, Mapping[str, Any]]]
    ) -> None:
        for new in creates:
            if not self.owns(new.user.id):
                raise NotOwner(new.user.id)
        for user_id, _ in updates:
            if user_id in self._users and not self.owns(user_id):
                raise NotOwner(user_id)

    def _plan_batch(
        self,
        creates: Sequence[NewUser],
        updates: Sequence[tuple[str, Mapping[str, Any]]],
        source: str,
        now: datetime,
    ) -> _Batch:
        """Each change checked on its own, then the Teams ids, extensions and numbers of
        all of them as a whole; a refused change is left out of the batch."""
        refusals = Refusals()
        created = self._check_new(creates, refusals.creates)
        updated = self._plan_updates(updates, source, now, refusals.updates)
        changes: dict[str, claims.Change] = {
            new.user.id: claims.Change(None, new.user) for _, new in created
        }
        for _, item in updated:
            user_id = item.state.user.id
            first = changes[user_id].old if user_id in changes else item.old.state.user
            changes[user_id] = claims.Change(first, item.state.user)
        clashes = claims.refused(self._holder, changes)
        for index, new in created:
            if new.user.id in clashes:
                refusals.creates.append((index, claims.Taken(clashes[new.user.id])))
        for index, item in updated:
            if item.state.user.id in clashes:
                refusals.updates.append((index, claims.Taken(clashes[item.state.user.id])))
        refusals.creates.sort(key=lambda item: item[0])
        refusals.updates.sort(key=lambda item: item[0])
        return _Batch(
            [n for _, n in created if n.user.id not in clashes],
            [p for _, p in updated if p.state.user.id not in clashes],
            refusals,
        )

    def _check_new(
        self, users: Sequence[NewUser], refused: list[tuple[int, Rejected]]
    ) -> list[tuple[int, NewUser]]:
        """The new users whose group exists and whose id is new (to the hub and to the
        batch), with their index; the others go to `refused`."""
        accepted: list[tuple[int, NewUser]] = []
        ids: set[str] = set()
        for index, new in enumerate(users):
            try:
                self.group(new.user.group)
                if new.user.id in self._users or new.user.id in ids:
                    raise Rejected(Reason.CONFLICT, f"user {new.user.id!r} exists already")
            except Rejected as refusal:
                refused.append((index, refusal))
                continue
            ids.add(new.user.id)
            accepted.append((index, new))
        return accepted

    def _plan_updates(
        self,
        changes: Sequence[tuple[str, Mapping[str, Any]]],
        source: str,
        now: datetime,
        refused: list[tuple[int, Rejected]],
    ) -> list[tuple[int, _Planned]]:
        """Each change worked out on the user as the batch's earlier changes left them
        (no change at all is left out); refused ones go to `refused`."""
        planned: list[tuple[int, _Planned]] = []
        current: dict[str, UserView] = {}
        for index, (user_id, fields) in enumerate(changes):
            try:
                old = current.get(user_id) or self.user(user_id)
                item = self._planned(old, fields, source, now)
            except Rejected as refusal:
                refused.append((index, refusal))
                continue
            if item is not None:
                current[user_id] = UserView(item.state, item.presence)
                planned.append((index, item))
        return planned

    async def _write_batch(
        self, batch: _Batch, source: str, now: datetime
    ) -> tuple[list[UserView], list[TeamsRelease | None]]:
        """The batch into the store (one transaction), then into memory; the new users'
        views and the releases with their ids."""
        states = [UserState(user=n.user, own_mode=n.own_mode) for n in batch.created]
        created = [UserView(s, self._evaluate(s, now)) for s in states]
        history = []
        for view in created:
            entry = self._history(view.state.user.id, view.presence, source, now)
            history.append(replace(entry, change=f"created: {view.state.user.group}"))
        saved = await self._stored(
            self.store.change_users,
            states,
            [p.state for p in batch.updated],
            [*history, *(p.entry for p in batch.updated)],
            [p.release for p in batch.updated],
            now,
        )
        for view in created:
            self._users[view.state.user.id] = view.state
            self._presence.put(view.state.user.id, view.presence, now)
            self._index(view.state)
        for item in batch.updated:
            self._take(item, now)
        metrics.USERS.set(len(self._users))
        return created, saved

    # -- the user lifecycle (issue 12) ----------------------------------------------------

    def parse_numbers(self, raw: Sequence[str], field: str = "numbers") -> tuple[str, ...]:
        """Phone numbers in E.164 (national ones read in the default country), each once;
        an invalid one is refused naming the field and the value."""
        parsed = []
        for index, value in enumerate(raw):
            try:
                parsed.append(addresses.number(value, self.default_country))
            except addresses.AddressError as error:
                raise Rejected(Reason.INVALID, f"{field}[{index}]: {error}") from None
        return addresses.unique(parsed)

    def resolve(
        self, user: str | None = None, extension: str | None = None, number: str | None = None
    ) -> str:
        """The user a PBX names by id, extension or number; unknown: NOT_FOUND naming it."""
        if user is not None:
            self.user(user)
            return user
        if extension is not None:
            found = self._by_extension.get(extension.strip())
            if found is None:
                raise Rejected(Reason.NOT_FOUND, f"unknown extension {extension!r}")
            return found
        if number is None:
            raise Rejected(Reason.INVALID, "name the user by user, extension or number")
        try:
            found = self._by_number.get(addresses.number(number, self.default_country))
        except addresses.AddressError:
            found = None
        if found is None:
            raise Rejected(Reason.NOT_FOUND, f"unknown number {number!r}")
        return found

    def directory_conflict(self, user: User) -> tuple[str, str, str] | None:
        """(what, value, other user) of the first Teams id, extension or number of `user`
        that another user has, else None."""
        for key in claims.keys(user):
            other = self._holder(key)
            if other is not None and other != user.id:
                return key[0], key[1], other
        return None

    def _holder(self, key: claims.Key) -> str | None:
        """Who holds a Teams id, extension or number now."""
        return self._holders[key[0]].get(key[1])

    def _check_directory(self, user: User) -> None:
        """Teams id, extensions and numbers are each one user's: 409 naming the other."""
        conflict = self.directory_conflict(user)
        if conflict is not None:
            raise claims.Taken((claims.Clash(*conflict),))

    async def _stored(self, fn: Callable[..., T], *args: object) -> T:
        """A lifecycle write; a unique key the database holds (another node's user) is a
        conflict, not an error."""
        try:
            return await self._io(fn, *args)
        except Duplicate as error:
            raise StoreRefused(error.reason) from None

    async def update_user(self, user_id: str, fields: dict[str, Any], source: str) -> UserView:
        """Change a user's directory data (only the fields given), with its history entry.

        A new `teams_user_id` first takes back what the hub set in Teams under the old
        one (a durable release, see `TeamsRelease`) and what the sync created on the UC
        side; a group whose mode is `off` makes the writer clear as mode `off` always does.
        """
        if not self.owns(user_id):
            # The owner answers, also for a user it does not have (404): this node's
            # copy of a user created elsewhere a moment ago may not have arrived yet.
            raise NotOwner(user_id)
        async with self._directory_lock, self._lock(user_id):
            old = self.user(user_id)
            now = self.clock.now()
            item = self._planned(old, fields, source, now)
            if item is None:
                return old
            self._check_directory(item.state.user)
            saved = await self._stored(
                self.store.update_user, item.state, item.entry, item.release, now
            )
            self._take(item, now)
        new = UserView(item.state, item.presence)
        self._published(old, new)
        self._release_added(saved)
        await self.audit("user.changed", user_id, _user_fields(old.state.user, new.state.user))
        return new

    def _planned(
        self,
        old: UserView,
        fields: Mapping[str, Any],
        source: str,
        now: datetime,
    ) -> _Planned | None:
        """A user's directory data changed (None: it is no change), checked: the group
        exists. Whether its Teams id, extensions and numbers are nobody else's is for
        the caller to check (one user, or a batch as a whole)."""
        user = replace(old.state.user, **fields)
        if user == old.state.user:
            return None
        group = self.group(user.group)
        state, release = self._leave_old_teams_id(old.state, user, now)
        context = rules.GroupContext(group.templates, group.settings)
        applied = rules.apply(state, rules.Tick(), context, now)
        entry = self._history(user.id, applied.presence, source, now)
        entry = replace(entry, change=_describe_change(old.state.user, user))
        return _Planned(old, applied.state, applied.presence, entry, release)

    def _take(self, item: _Planned, now: datetime) -> None:
        """A written change into memory: state, indexes, presence, deadline."""
        user_id = item.state.user.id
        self._users[user_id] = item.state
        self._index(item.state, item.old.state)
        self._presence.put(user_id, item.presence, now)
        self._schedule(item.state, now)

    @staticmethod
    def _leave_old_teams_id(
        state: UserState, user: User, now: datetime
    ) -> tuple[UserState, TeamsRelease | None]:
        old_teams_id = state.user.teams_user_id
        if old_teams_id is None or old_teams_id == user.teams_user_id:
            return replace(state, user=user), None
        release = _release(state, now)
        return replace(teams.leave_teams(state), user=user), release

    def _published(self, old: UserView, new: UserView) -> None:
        if new.presence != old.presence:
            self.bus.publish(PresenceChange(new.state.user.id, new.presence))
        self._replicate(new.state)
        self._after_change(old.state, new.state)

    async def delete_user(self, user_id: str) -> None:
        """The user and everything of theirs, in one transaction that also records what
        the hub must still clear in Teams for them (worked off by the Teams writer)."""
        if not self.owns(user_id):
            # The owner answers, also for a user it does not have (404): this node's
            # copy of a user created elsewhere a moment ago may not have arrived yet.
            raise NotOwner(user_id)
        async with self._directory_lock, self._lock(user_id):
            state = self.user(user_id).state
            now = self.clock.now()
            release = _release(state, now) if state.user.teams_user_id else None
            saved = await self._stored(self.store.delete_user, user_id, release, now)
            del self._users[user_id]
            del self._presence[user_id]
            self._unindex(state)
            self._teams_last_sync.pop(user_id, None)
            metrics.USERS.set(len(self._users))
        self._release_added(saved)
        self.bus.publish(PresenceChange(user_id, None))  # boards drop the user's row
        self._membership.removed(user_id)  # other nodes let go of agents connected there
        self.recheck_tokens(user_id)  # an agent of the user connected here is let go
        await self.audit("user.deleted", user_id, {"display_name": state.user.display_name})

    # -- what the hub must still clear in Teams ---------------------------------------------

    def add_release_listener(self, listener: Callable[[TeamsRelease], None]) -> None:
        """Called with each new Teams release (the Teams writer works them off)."""
        self._release_listeners.append(listener)

    def releases(self) -> list[TeamsRelease]:
        """The releases not yet acknowledged by Graph, of users this node handles."""
        return [r for r in self._releases.values() if self.owns(r.user_id)]

    def _release_added(self, release: TeamsRelease | None) -> None:
        if release is None or release.id is None:
            return
        self._releases[release.id] = release
        for listener in self._release_listeners:
            listener(release)

    async def release_done(self, release: TeamsRelease) -> None:
        """Graph acknowledged the clears: the release is done, durably."""
        if release.id is not None:
            await self._io(self.store.delete_release, release.id)
            self._releases.pop(release.id, None)

    async def handle(self, user_id: str, event: rules.Event, source: str) -> UserView:
        """Apply one event to one user, durably; publish the presence if it changed."""
        started = time.perf_counter()
        kind = type(event).__name__
        if not self.owns(user_id):
            # The owner answers, also for a user it does not have (404): this node's
            # copy of a user created elsewhere a moment ago may not have arrived yet.
            raise NotOwner(user_id)
        async with self._lock(user_id):
            if not self.owns(user_id):  # given away while we waited
                raise NotOwner(user_id)
            old = self.user(user_id)
            now = self.clock.now()
            new, entry = self._step(user_id, old, event, self._context(old.state), source, now)
            new_state, presence = new.state, new.presence
            changed = entry is not None
            if new_state != old.state or changed:
                await self._commit.write([new_state], [entry] if entry else [], now)
                self._users[user_id] = new_state
                self._index(new_state, old.state)
                self._presence.put(user_id, presence, now)
            self._schedule(new_state, now)
            metrics.EVENTS.labels(kind, "applied").inc()
            metrics.EVENT_SECONDS.observe(time.perf_counter() - started)
        if changed:
            metrics.PRESENCE_CHANGES.inc()
            self.bus.publish(PresenceChange(user_id, presence))
        if new_state != old.state:
            self._replicate(new_state)
        self._after_change(old.state, new_state)
        if type(event) in _AUDITED_EVENTS and audit.acting.get() is not None:
            await self.audit(*_event_record(user_id, event, old.state))
        return UserView(new_state, presence)

    async def note(self, user_id: str, source: str, change: str) -> None:
        """A history entry that is no presence change (a connector says what it did or
        left alone, e.g. kept a forwarding the user set on the phone); nothing for a
        user this node does not have."""
        if not self.has_user(user_id):
            return
        now = self.clock.now()
        entry = self._history(user_id, self._presence[user_id], source, now)
        await self._commit.write([], [replace(entry, change=change)], now)

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
        # at once; and at most HANDLE_MANY_IN_FLIGHT users of all callers together.
        queues = list(per_user.items())
        for start in range(0, len(queues), HANDLE_MANY_SLICE):
            part = queues[start : start + HANDLE_MANY_SLICE]
            await self._many_enter(len(part))
            try:
                await asyncio.gather(*(run(u, q) for u, q in part))
            finally:
                await self._many_leave(len(part))
        return sorted(rejected, key=lambda item: item[0])

    async def handle_batch(
        self, events: Sequence[tuple[str, rules.Event]], source: str
    ) -> list[tuple[int, Rejected]]:
        """Apply a batch of events (a PBX's) as one change: all or nothing durable.

        What `handle` does per event, done once for the batch: each user's lock taken
        once, every event applied in memory in order (per user), one durable commit for
        all, then the changes published in order. A rejected event is returned with its
        index and the others apply; if the store refuses the commit, no event applies.
        A user this node does not handle refuses the batch before anything is applied.
        """
        started = time.perf_counter()
        per_user: dict[str, list[tuple[int, rules.Event]]] = {}
        for index, (user_id, event) in enumerate(events):
            per_user.setdefault(user_id, []).append((index, event))
        for user_id in per_user:
            if not self.owns(user_id):
                raise NotOwner(user_id)
        async with self._locks(sorted(per_user)):  # one order for everyone: no deadlock
            for user_id in per_user:
                if not self.owns(user_id):  # given away while we waited
                    raise NotOwner(user_id)
            now = self.clock.now()
            batch = self._apply_batch(per_user, source, now)
            # A user whose steps changed anything is written (as `handle` would).
            dirty = {
                user_id: steps[-1]
                for user_id, (old, steps) in batch.steps.items()
                if any(_changed(v.state, old.state) or _changed(v.presence, old.presence)
                       for v in steps)
            }  # fmt: skip
            if dirty:
                await self._commit.write([v.state for v in dirty.values()], batch.history, now)
            self._keep_batch(batch, dirty, now)
            elapsed = time.perf_counter() - started
            for kind, count in batch.applied.items():
                metrics.EVENTS.labels(kind, "applied").inc(count)
                for _ in range(count):
                    metrics.EVENT_SECONDS.observe(elapsed)
        self._publish_batch(batch)
        return sorted(batch.rejected, key=lambda item: item[0])

    def _apply_batch(
        self, per_user: dict[str, list[tuple[int, rules.Event]]], source: str, now: datetime
    ) -> _AppliedBatch:
        """`handle_batch`'s events applied in memory (nothing kept yet)."""
        batch = _AppliedBatch()
        for user_id, queue in per_user.items():
            try:
                old = self.user(user_id)
            except Rejected as refusal:
                batch.rejected += [(index, refusal) for index, _ in queue]
                continue
            context = self._context(old.state)
            current = old
            steps: list[UserView] = []
            for index, event in queue:
                try:
                    current, entry = self._step(user_id, current, event, context, source, now)
                except Rejected as refusal:
                    batch.rejected.append((index, refusal))
                    continue
                if entry is not None:
                    batch.history.append(entry)
                steps.append(current)
                batch.applied[type(event).__name__] += 1
            if steps:
                batch.steps[user_id] = (old, steps)
        return batch

    def _keep_batch(
        self, batch: _AppliedBatch, dirty: Mapping[str, UserView], now: datetime
    ) -> None:
        """After `handle_batch`'s commit: the new states in memory, their deadlines."""
        for user_id, (old, steps) in batch.steps.items():
            if user_id in dirty:
                self._users[user_id] = steps[-1].state
                self._index(steps[-1].state, old.state)
                self._presence.put(user_id, steps[-1].presence, now)
            self._schedule(steps[-1].state, now)

    def _publish_batch(self, batch: _AppliedBatch) -> None:
        """After `handle_batch`'s commit: each step published in order, as `handle` does."""
        for user_id, (old, steps) in batch.steps.items():
            before = old
            for step in steps:
                if _changed(step.presence, before.presence):
                    metrics.PRESENCE_CHANGES.inc()
                    self.bus.publish(PresenceChange(user_id, step.presence))
                self._after_change(before.state, step.state)
                before = step
            if _changed(before.state, old.state):
                self._replicate(before.state)

    async def _many_enter(self, users: int) -> None:
        """Wait until `users` more may be in flight in handle_many (or none are)."""
        async with self._many_room:
            await self._many_room.wait_for(
                lambda: (
                    self._many_in_flight == 0
                    or self._many_in_flight + users <= HANDLE_MANY_IN_FLIGHT
                )
            )
            self._many_in_flight += users

    async def _many_leave(self, users: int) -> None:
        async with self._many_room:
            self._many_in_flight -= users
            self._many_room.notify_all()

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
        self._index(state, self._users.get(user_id))
        self._users[user_id] = state
        self._presence[user_id] = presence
        metrics.USERS.set(len(self._users))
        if presence != old:
            self.bus.publish(PresenceChange(user_id, presence))
        for listener in self._change_listeners:
            listener(user_id)  # an agent connected here learns of its user's change

    def forget_remote(self, user_id: str) -> None:
        """Another node deleted a user it handled: drop our copy (and its board row), and
        let go of the user's agent connected here (its token went with the user)."""
        state = self._users.get(user_id)
        if state is not None and not self.owns(user_id):
            del self._users[user_id]
            self._presence.forget(user_id)
            self._unindex(state)
            self._teams_last_sync.pop(user_id, None)
            metrics.USERS.set(len(self._users))
            self.bus.publish(PresenceChange(user_id, None))
        self.recheck_tokens(user_id)

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
            self._index(state, self._users.get(user_id))
            self._users[user_id] = state
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
        # Releases the old owner recorded and had not worked off are ours now.
        self._releases = {r.id: r for r in await self._io(self.store.load_releases) if r.id}
        for takeover_listener in self._takeover_listeners:
            takeover_listener(taken)
        self._lines_changed()

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

    # -- PBX lines (issue 13) ----------------------------------------------------------------

    def lines(self) -> list[str]:
        """Every extension of every user this node handles, sorted (what PBX connectors
        watch)."""
        return sorted(e for e, user_id in self._by_extension.items() if self.owns(user_id))

    def add_lines_listener(self, listener: Callable[[], None]) -> None:
        """Called when `lines()` may have changed: an extension added, moved or removed,
        a user deleted, users taken over from another node."""
        self._lines_listeners.append(listener)

    def _lines_changed(self) -> None:
        for listener in self._lines_listeners:
            listener()

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

    def synced_user_for(self, teams_user_id: str) -> str | None:
        """The user this node syncs with that Teams user, if any: one of `synced_users`
        found without walking them all (a notification names a few of 100,000)."""
        user_id = self._by_teams_id.get(teams_user_id)
        state = None if user_id is None else self._users.get(user_id)
        if user_id is None or state is None or not self.owns(user_id):
            return None
        settings = self._groups[state.user.group].settings
        if effective_mode(settings, state.own_mode) is TeamsSyncMode.OFF:
            return None
        return user_id

    def mode_of(self, user_id: str) -> TeamsSyncMode:
        state = self.user(user_id).state
        return effective_mode(self._groups[state.user.group].settings, state.own_mode)

    def note_teams_sync(self, user_id: str, at: datetime) -> None:
        self._teams_last_sync[user_id] = at

    def teams_last_sync(self, user_id: str) -> datetime | None:
        return self._teams_last_sync.get(user_id)

    def status_since(self, user_id: str) -> datetime | None:
        """When the user's effective status last changed (the hub's clock); None if
        unknown (unchanged since the hub started)."""
        return self._presence.since.get(user_id)

    # -- agent tokens ----------------------------------------------------------------------

    async def issue_agent_token(self, user_id: str) -> str:
        return (await self.issue_token(user_id, AGENT))[1]

    async def issue_token(
        self, user_id: str, kind: str, name: str | None = None
    ) -> tuple[str, str]:
        """A new token for the user (its id, the token), shown once: the store keeps only
        its hash. An agent token serves the desktop agent; a personal one a script of the
        user's (issue 14)."""
        self.user(user_id)
        token = ("pba_" if kind == AGENT else "pbp_") + secrets.token_urlsafe(32)
        now = self.clock.now()
        token_id = await self._io(self.store.add_agent_token, user_id, token, now, kind, name)
        # The token's id and name only: the token itself is never recorded.
        await self.audit(f"{_token_kind(kind)}.issued", user_id, {"id": token_id, "name": name})
        return token_id, token

    async def agent_tokens(self, user_id: str, kind: str = AGENT) -> list[AgentTokenInfo]:
        self.user(user_id)
        return await self._io(self.store.agent_tokens, user_id, kind)

    async def all_tokens(self) -> list[TokenRecord]:
        """Every user's agent and personal tokens (ids, kinds, names, when made)."""
        return await self._io(self.store.all_tokens)

    async def revoke_agent_token(self, user_id: str, token_id: str, kind: str = AGENT) -> None:
        """The token stops working at once: requests are refused, a connected agent
        that used it is let go."""
        self.user(user_id)
        if not await self._io(self.store.revoke_agent_token, user_id, token_id, kind):
            what = "agent token" if kind == AGENT else "personal token"
            raise Rejected(Reason.NOT_FOUND, f"user {user_id!r} has no {what} {token_id!r}")
        self.recheck_tokens(user_id)
        self._membership.tokens_changed(user_id)  # agents connected to other nodes
        await self.audit(f"{_token_kind(kind)}.revoked", user_id, {"id": token_id})

    def recheck_tokens(self, user_id: str) -> None:
        """The user's agent tokens changed (here, or on another node: the store has it
        already): connected agents check theirs again."""
        for listener in self._token_listeners:
            listener(user_id)

    def add_token_listener(self, listener: Callable[[str], None]) -> None:
        """Called with a user id when one of their agent tokens was revoked or the user
        was deleted, on this node or another: connected agents check their token again."""
        self._token_listeners.append(listener)

    async def agent_token_user(self, token: str) -> str | None:
        try:
            return await self._io(self.store.agent_token_user, token)
        except UnknownTokenError:
            return None

    async def token_owner(self, token: str) -> tuple[str, str] | None:
        """(user id, kind) of an agent or personal token; None if it is no token."""
        try:
            return await self._io(self.store.token_owner, token)
        except UnknownTokenError:
            return None

    # -- time ------------------------------------------------------------------------------

    async def advance_clock(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self._timers.wake()
        await self.settle_timers()
        await self.audit("clock.advanced", "clock", {"seconds": seconds})

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

    @contextlib.asynccontextmanager
    async def _locks(self, user_ids: Sequence[str]) -> AsyncIterator[None]:
        """`_lock` for many users at once, taken in the order given: a batch of 100
        users costs one context manager, not a hundred."""
        entries: list[tuple[str, _UserLock]] = []
        held = 0
        try:
            for user_id in user_ids:
                entry = self._user_locks.get(user_id)
                if entry is None:
                    entry = self._user_locks[user_id] = _UserLock()
                entry.users += 1
                entries.append((user_id, entry))
                await entry.lock.acquire()
                held += 1
            yield
        finally:
            for position, (user_id, entry) in enumerate(entries):
                if position < held:
                    entry.lock.release()
                entry.users -= 1
                if entry.users == 0:
                    del self._user_locks[user_id]

    def _index(self, state: UserState, old: UserState | None = None) -> None:
        if old is not None:
            if state.user is old.user:
                return  # an event, not a directory change: the indexes hold already
            self._unindex(old)
        user = state.user
        if user.teams_user_id is not None:
            self._by_teams_id[user.teams_user_id] = user.id
        for value in user.extensions:
            self._by_extension[value] = user.id
        for value in user.numbers:
            self._by_number[value] = user.id
        # After indexing: a listener reads `lines()` at once and must see the new ones.
        if user.extensions != (() if old is None else old.user.extensions):
            self._lines_changed()

    def _unindex(self, state: UserState) -> None:
        user = state.user
        if user.extensions and user.id not in self._users:
            self._lines_changed()  # deleted
        indexes = (
            (self._by_teams_id, () if user.teams_user_id is None else (user.teams_user_id,)),
            (self._by_extension, user.extensions),
            (self._by_number, user.numbers),
        )
        for index, values in indexes:
            for value in values:
                if index.get(value) == user.id:
                    del index[value]

    def _evaluate(self, state: UserState, now: datetime) -> EffectivePresence:
        return effective_presence(state, self._groups[state.user.group].templates, now)

    def _context(self, state: UserState) -> rules.GroupContext:
        group = self._groups[state.user.group]
        return rules.GroupContext(group.templates, group.settings)

    def _step(
        self,
        user_id: str,
        current: UserView,
        event: rules.Event,
        context: rules.GroupContext,
        source: str,
        now: datetime,
    ) -> tuple[UserView, HistoryEntry | None]:
        """One event applied in memory: the view after it, and its history entry when the
        presence changed. A refusal is counted and raised."""
        try:
            applied = rules.apply(current.state, event, context, now)
        except Rejected:
            metrics.EVENTS.labels(type(event).__name__, "rejected").inc()
            raise
        if applied.presence == current.presence:
            # The same object kept: later checks of this step compare by identity.
            return UserView(applied.state, current.presence), None
        entry = self._history(user_id, applied.presence, source, now)
        return UserView(applied.state, applied.presence), entry

    @staticmethod
    def _history(
        user_id: str, presence: EffectivePresence, source: str, now: datetime
    ) -> HistoryEntry:
        return HistoryEntry(
            user_id, now, source, presence.status.value, presence.telephony.value, presence.text
        )


def _changed(new: object, old: object) -> bool:
    # Identity first: an unchanged presence is the same object (`Hub._step`), and most
    # steps change the state; equality only for a new object that may equal the old.
    return new is not old and new != old


def _release(state: UserState, now: datetime) -> TeamsRelease | None:
    """What to clear in Teams for the user's current Teams id, if anything."""
    teams_id = state.user.teams_user_id
    plan = teams.release_plan(state, now)
    if teams_id is None or not plan:
        return None
    return TeamsRelease(
        teams_id,
        state.user.id,
        plan.clear_session,
        plan.clear_preferred,
        clear_message=plan.clear_message,
    )


def _describe_change(old: User, new: User) -> str:
    """What a lifecycle change did, for the history: "group: a -> b; extensions"."""
    parts = []
    names = ("display_name", "group", "teams_user_id", "email", "extensions", "numbers")
    for name in (*names, "directory_key"):
        before, after = getattr(old, name), getattr(new, name)
        if before == after:
            continue
        if isinstance(after, tuple):
            parts.append(f"{name}: {', '.join(after) or '-'}")
        else:
            parts.append(f"{name}: {before or '-'} -> {after or '-'}")
    return "; ".join(parts)


# -- what the audit log says of a change (service/audit.py) -----------------------------------

_AUDITED_EVENTS = (
    rules.AddProfile, rules.DeleteProfile, rules.ReorderProfiles, rules.SelectProfile,
    rules.AddAppointment, rules.DeleteAppointment, rules.SetOwnMode,
)  # fmt: skip

_USER_FIELDS = (
    "display_name", "group", "teams_user_id", "email", "extensions", "numbers",
)  # fmt: skip


def _token_kind(kind: str) -> str:
    return "agent_token" if kind == AGENT else "personal_token"


def _user_fields(old: User | None, new: User) -> dict[str, Any]:
    """A new user's fields, or the fields that changed (old -> new)."""
    fields = {f: getattr(new, f) for f in _USER_FIELDS}
    if old is None:
        return {f: v for f, v in fields.items() if v not in (None, ())}
    return audit.changes({f: getattr(old, f) for f in _USER_FIELDS}, fields)


def _template_changes(old: ProfileTemplate | None, new: ProfileTemplate) -> dict[str, Any]:
    fields = ("status", "text", "color", "active", "call_forwarding")
    after = {f: getattr(new, f) for f in fields}
    if old is None:
        return after
    return audit.changes({f: getattr(old, f) for f in fields}, after)


def _event_record(
    user_id: str, event: rules.Event, old: UserState
) -> tuple[str, str, dict[str, Any]]:
    """An audited event as the audit log records it: action, target, details."""
    if isinstance(event, rules.AddProfile):
        return "profile.created", user_id, {"name": event.profile.name}
    if isinstance(event, rules.DeleteProfile):
        return "profile.deleted", user_id, {"name": event.name}
    if isinstance(event, rules.ReorderProfiles):
        return "profile.reordered", user_id, {"order": list(event.names)}
    if isinstance(event, rules.SelectProfile):
        before = None if old.selection is None else old.selection.profile
        return "profile.selected", user_id, {"name": [before, event.name]}
    if isinstance(event, rules.AddAppointment):
        shown = {"subject": event.subject, "start": event.start, "end": event.end}
        return "appointment.created", user_id, shown
    if isinstance(event, rules.DeleteAppointment):
        return "appointment.deleted", user_id, {"id": event.id}
    assert isinstance(event, rules.SetOwnMode)
    return "user.settings.changed", user_id, {"teams_sync_mode": [old.own_mode, event.mode]}
