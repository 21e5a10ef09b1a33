"""The directory sync job (issue 12): a directory's people become the hub's users.

One run: load what the last runs left (cursor, the people listed, disabled marks), read
the directory (a failed or partial read changes nothing), merge a delta into the people,
look up Teams ids for people listed without one, plan (`core/directory.plan`, with the
safety stop), and — unless it is a dry run or stopped — apply the plan through the hub
(new and changed users together through `change_users` in slices, own mode `off`
through `handle_many`, `delete_user`), every change with source `directory`; then store
the new cursor and people in one transaction. Runs never overlap; a run is idempotent
(a second one finds nothing to do).

The rules: those saved in the console or the API (`directory_rules`) replace the
configuration file's until reset. Each run reads them from the store first, so a change
made on another node counts at this node's next run; a preview runs with rules not
saved at all (`preview`).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import datetime
from typing import Any, Literal

from pydantic import ValidationError

from presencebridge.adapters.store import DirectoryRecord, StoredRules
from presencebridge.config import DirectoryRulesConfig
from presencebridge.core import directory as plans
from presencebridge.core import rules
from presencebridge.core.errors import Reason, Rejected
from presencebridge.core.model import TeamsSyncMode
from presencebridge.core.ports import (
    DirectoryPerson,
    DirectoryRead,
    DirectorySource,
    DirectoryUnavailable,
    RuleDrivenSource,
    TeamsIdLookup,
)
from presencebridge.service import audit
from presencebridge.service.hub import Hub, NewUser

log = logging.getLogger(__name__)
SOURCE = "directory"  # the history's source of every change the sync makes
MAX_LINES = 2000  # per-user lines kept in a report
# New or changed users written per transaction: large enough that a first sync of
# 100,000 people is a few dozen commits, small enough that the store thread (which the
# hub's other commits share) is not held for long.
SLICE = 2000


@dataclass
class Report:
    """What a run did (or, dry or stopped, would do)."""

    source: str
    started_at: datetime
    dry_run: bool
    forced: bool
    finished_at: datetime | None = None
    summary: str = ""
    counts: dict[str, int] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)
    stopped: str | None = None  # the safety stop's or a configuration problem's message
    error: str | None = None  # the read failed: nothing was changed
    failures: list[str] = field(default_factory=list)  # single changes the hub refused
    full_read: bool = False
    run: str = field(default_factory=lambda: secrets.token_hex(8))  # this run's id
    preview: bool = False  # a dry run with rules not saved: this report is not stored

    @property
    def ok(self) -> bool:
        return self.stopped is None and self.error is None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["started_at"] = self.started_at.isoformat()
        data["finished_at"] = None if self.finished_at is None else self.finished_at.isoformat()
        data["ok"] = self.ok
        return data

    def text(self) -> str:
        """The summary as the CLI prints it: what happens, then per-user lines."""
        head = ("would " if self.dry_run else "") + self.summary
        if self.error:
            return f"directory {self.source}: {self.error}"
        if self.stopped:
            return f"directory {self.source}: {self.stopped}\n{head}"
        return "\n".join([f"directory {self.source}: {head}", *self.lines, *self.failures])


def person_json(person: DirectoryPerson) -> dict[str, Any]:
    """The person as the store keeps it. Its values are strings, booleans, None and
    tuples of them (immutable): no deep copy as `asdict` makes, which took seconds at
    100,000 people."""
    return {name: getattr(person, name) for name in PERSON_FIELDS}


PERSON_FIELDS = tuple(f.name for f in fields(DirectoryPerson))


def person_from(data: Mapping[str, Any]) -> DirectoryPerson:
    tuples = ("extensions", "numbers", "groups")
    values: dict[str, Any] = {k: tuple(v) if k in tuples else v for k, v in data.items()}
    values["attributes"] = tuple(tuple(pair) for pair in data.get("attributes", ()))
    return DirectoryPerson(**values)


RulesOrigin = Literal["config", "console"]  # the file's, or saved in the console / API


@dataclass(frozen=True, slots=True)
class RulesInEffect:
    """A source's rules and where they come from (`changed_*`: when saved, not from the
    file)."""

    rules: plans.Rules
    origin: RulesOrigin = "config"
    changed_by: str | None = None
    changed_at: datetime | None = None


class StoredRulesUnreadable(ValueError):
    """The rules saved for a source are no longer valid (a database edited by hand, a
    later version's stricter check): the run stops rather than guess."""


def rules_from_store(stored: StoredRules) -> RulesInEffect:
    try:
        config = DirectoryRulesConfig.model_validate(stored.rules)
    except ValidationError as error:
        raise StoredRulesUnreadable(
            f"the rules saved for this directory are not valid ({error.error_count()} "
            "problems); save them again in the console or reset them to the configuration "
            "file. Nothing was changed."
        ) from None
    return RulesInEffect(config.to_rules(), "console", stored.changed_by, stored.changed_at)


class DirectorySync:
    """One directory source's sync: on demand (`run`) and every `schedule_minutes`."""

    def __init__(
        self,
        hub: Hub,
        source: DirectorySource,
        policy: plans.Policy,
        lookup: TeamsIdLookup | None = None,
        schedule_minutes: float = 0,
    ) -> None:
        self.hub = hub
        self.source = source
        self.policy = policy  # its rules: those in effect (`use_rules`)
        self.file_rules = policy.rules  # the configuration file's
        self.rules = RulesInEffect(policy.rules)
        self.lookup = lookup
        self.schedule_minutes = schedule_minutes
        self.last: Report | None = None
        self._running = asyncio.Lock()
        # The people as this job's last run stored them, with that run's id: a delta run
        # at 100,000 people would otherwise spend seconds reading them back.
        self._people: tuple[str, dict[str, DirectoryPerson]] | None = None
        self._task: asyncio.Task[None] | None = None
        # What a source that reads only what rules look at was last told to read (it was
        # made for the file's rules), and whether that is more than the stored cursor and
        # people hold: then every read is a full one until a run has stored one.
        self._reads_for = _looked_at(policy.rules)
        self._full_read_due = False

    @property
    def name(self) -> str:
        return self.policy.source

    # -- the component ----------------------------------------------------------------------

    async def start(self) -> None:
        record = await self.hub.store_io(self.hub.store.load_directory, self.name)
        if record.last_run is not None:
            self.last = _report_from(record.last_run)
        try:
            await self.current_rules()
        except StoredRulesUnreadable as error:
            log.error("directory %s: %s", self.name, error)
        if self.schedule_minutes > 0:
            self._task = asyncio.create_task(self._schedule(), name=f"directory-{self.name}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.source.aclose()

    async def _schedule(self) -> None:
        while True:
            try:
                report = await self.run()
                log.info("%s", report.text().splitlines()[0])
            except Exception:  # the schedule must survive any one bad run
                log.exception("directory %s: the scheduled run failed", self.name)
            await asyncio.sleep(self.schedule_minutes * 60)

    # -- the rules ----------------------------------------------------------------------------

    def use_rules(self, rules: RulesInEffect) -> None:
        """Apply these rules from the next run on (a run under way keeps its own)."""
        self.rules = rules
        self.policy = replace(self.policy, rules=rules.rules)

    async def current_rules(self) -> RulesInEffect:
        """The rules in effect, read from the store (they may have been saved on another
        node): the saved ones, else the configuration file's. They become this job's."""
        stored = await self.hub.store_io(self.hub.store.load_directory_rules, self.name)
        rules = RulesInEffect(self.file_rules) if stored is None else rules_from_store(stored)
        self.use_rules(rules)
        return rules

    def unknown_groups(self, rules: plans.Rules) -> list[tuple[int | None, str]]:
        """(the rule's index, or None for the default group; the group) for each
        configuration group the rules name that the hub does not have."""
        names = {g.id for g in self.hub.groups()}
        found: list[tuple[int | None, str]] = [
            (index, rule.group)
            for index, rule in enumerate(rules.rules)
            if rule.group is not None and rule.group not in names
        ]
        if rules.default_group is not None and rules.default_group not in names:
            found.append((None, rules.default_group))
        return found

    def check_groups(self, rules: plans.Rules) -> None:
        """Raise `Rejected` naming every configuration group the rules name that the hub
        does not have, where the rules name it (`rules.<index>.group`, `default_group`)."""
        problems = [
            f"{'default_group' if index is None else f'rules.{index}.group'}: no "
            f"configuration group {group!r}; create it first"
            for index, group in self.unknown_groups(rules)
        ]
        if problems:
            raise Rejected(Reason.INVALID, "; ".join(problems))

    async def save_rules(self, rules: DirectoryRulesConfig, changed_by: str) -> RulesInEffect:
        """Store these rules in place of the file's (checked first: `Rejected`, nothing
        stored); every node's next run uses them."""
        core = rules.to_rules()
        self.check_groups(core)
        now = self.hub.clock.now()
        await self.hub.store_io(
            self.hub.store.save_directory_rules, self.name, rules.stored(), changed_by, now
        )
        saved = RulesInEffect(core, "console", changed_by, now)
        self.use_rules(saved)
        shown = {"rules": len(core.rules), "default_group": core.default_group}
        await self.hub.audit("directory.rules.saved", self.name, shown)
        log.info("directory %s: rules saved by %s", self.name, changed_by)
        return saved

    async def reset_rules(self) -> RulesInEffect:
        """Forget the saved rules: the configuration file's apply from the next run on."""
        await self.hub.store_io(self.hub.store.delete_directory_rules, self.name)
        rules = RulesInEffect(self.file_rules)
        self.use_rules(rules)
        await self.hub.audit("directory.rules.reset", self.name)
        log.info("directory %s: rules reset to the configuration file", self.name)
        return rules

    # -- a run --------------------------------------------------------------------------------

    async def run(self, dry_run: bool = False, force: bool = False) -> Report:
        """A run; one asked for by someone (not the schedule) that changed something is
        one row of the audit log, not one per user it changed."""
        async with self._running:
            report = Report(self.name, self.hub.clock.now(), dry_run, force)
            try:
                with audit.acting_as(None):
                    await self._run(report)
            finally:
                report.finished_at = self.hub.clock.now()
                self.last = report
            if not dry_run and report.error is None and report.stopped is None:
                shown = {"force": force, "counts": report.counts, "failures": len(report.failures)}
                await self.hub.audit("directory.sync", self.name, shown)
            return report

    async def preview(self, rules: plans.Rules) -> Report:
        """A dry run with these rules in place of those in effect: what a run would do
        if they were saved. Nothing is stored, not even the report (the last run stays)."""
        self.check_groups(rules)
        async with self._running:
            report = Report(self.name, self.hub.clock.now(), True, False, preview=True)
            await self._run(report, rules)
            report.finished_at = self.hub.clock.now()
            return report

    async def _run(self, report: Report, candidate: plans.Rules | None = None) -> None:
        hub = self.hub
        try:
            rules = candidate if candidate is not None else (await self.current_rules()).rules
        except StoredRulesUnreadable as error:
            report.stopped = f"stopped: {error}"
            await self._save_report(report)
            return
        policy = replace(self.policy, rules=rules)
        record = await hub.store_io(hub.store.load_directory, self.name, False)
        before = await self._people_before(record)
        try:
            read = await self._read(rules, record.cursor, report.preview)
            people = plans.merge(before, read)
            people = await self._teams_ids(people)
        except DirectoryUnavailable as error:
            report.error = f"{error}; nothing was changed"
            await self._save_report(report)
            return
        report.full_read = read.full
        problem = self._check_groups(rules)
        plan = plans.plan(
            policy, people, self._known(record.disabled), hub.user_ids(), hub.clock.now(),
            report.forced,
        )  # fmt: skip
        self._describe(report, plan)
        report.stopped = problem or plan.stopped
        if report.stopped or report.dry_run:
            await self._save_report(report)
            return
        disabled = await self._apply(plan, report)
        changed: dict[str, dict[str, Any] | None] = {
            k: person_json(p) for k, p in people.items() if before.get(k) != p
        }
        changed.update({k: None for k in before if k not in people})
        await hub.store_io(
            hub.store.save_directory, self.name, read.cursor, report.to_json(), changed,
            disabled, hub.clock.now(),
        )  # fmt: skip
        self._people = (report.run, people)
        self._full_read_due = self._full_read_due and not read.full

    async def _read(self, rules: plans.Rules, cursor: str | None, preview: bool) -> DirectoryRead:
        """Read the source for these rules: a source that reads only what rules look at
        is told them first; when it reads more than before, the stored cursor and people
        lack that, so everyone is read. A preview puts the source back afterwards."""
        source = self.source
        if not isinstance(source, RuleDrivenSource):
            return await source.read(cursor)
        before, wanted = self._reads_for, _looked_at(rules)
        full = source.follow_rules(*wanted) or self._full_read_due
        if not preview:
            self._reads_for, self._full_read_due = wanted, full
        try:
            return await source.read(None if full else cursor)
        finally:
            if preview:
                source.follow_rules(*before)

    async def _people_before(self, record: DirectoryRecord) -> dict[str, DirectoryPerson]:
        """The people the last run left: kept in memory from this job's last run, unless
        the store names another run as the last (another node's, a dry or failed one)."""
        last_run = (record.last_run or {}).get("run")
        if self._people is not None and self._people[0] == last_run:
            return self._people[1]
        self._people = None
        full = await self.hub.store_io(self.hub.store.load_directory, self.name)
        return {k: person_from(v) for k, v in full.people.items()}

    async def _save_report(self, report: Report) -> None:
        report.finished_at = self.hub.clock.now()
        if report.preview:
            return
        await self.hub.store_io(
            self.hub.store.save_last_run, self.name, report.to_json(), self.hub.clock.now()
        )

    def _check_groups(self, rules: plans.Rules) -> str | None:
        """A rule naming a configuration group the hub does not have stops the run."""
        missing = sorted({group for _, group in self.unknown_groups(rules)})
        if not missing:
            return None
        return (
            f"stopped: the rules of directory {self.name!r} name configuration groups that "
            f"do not exist: {', '.join(missing)}; create them first. Nothing was changed."
        )

    def _known(self, disabled: Mapping[str, datetime]) -> list[plans.Known]:
        prefix = self.name + ":"
        found = []
        for user_id in self.hub.user_ids():
            state = self.hub.user(user_id).state
            key = state.user.directory_key
            if key is not None and key.startswith(prefix):
                off = state.own_mode is TeamsSyncMode.OFF
                found.append(plans.Known(state.user, off, disabled.get(user_id)))
        return found

    async def _teams_ids(self, people: dict[str, DirectoryPerson]) -> dict[str, DirectoryPerson]:
        """Sources without Teams ids (LDAP): find them in Graph by UPN or mail, in batches.
        People already matched keep the id the hub has; nobody found keeps None."""
        if self.lookup is None:
            return people
        have = {}
        for known in self._known({}):
            if known.user.teams_user_id and known.user.directory_key:
                have[known.user.directory_key.split(":", 1)[1]] = known.user.teams_user_id
        missing = {}
        for key, person in people.items():
            if person.teams_user_id is None and person.enabled and key not in have:
                name = person.upn or person.mail
                if name:
                    missing[name] = key
        answers = await self.lookup.lookup(sorted(missing)) if missing else []
        found = {missing[a.looked_up]: a.teams_user_id for a in answers}
        result = dict(people)
        for key, person in people.items():
            teams_id = person.teams_user_id or have.get(key) or found.get(key)
            if teams_id != person.teams_user_id:
                result[key] = _with_teams_id(person, teams_id)
        return result

    def _describe(self, report: Report, plan: plans.Plan) -> None:
        report.summary = plan.summary()
        report.counts = {
            "create": len(plan.creates),
            "update": len(plan.updates),
            "disable": len(plan.disables),
            "delete": len(plan.deletes),
            "unchanged": plan.unchanged,
            "skipped": len(plan.skipped),
        }
        lines = plan.lines()
        report.lines = lines[:MAX_LINES]
        if len(lines) > MAX_LINES:
            report.lines.append(f"… and {len(lines) - MAX_LINES:,} more")

    async def _apply(self, plan: plans.Plan, report: Report) -> dict[str, datetime | None]:
        """Every change of the plan through the hub; one the hub refuses (an extension
        another user has, say) is reported and the rest goes on. Returns the disabled
        marks to store (None: lifted)."""
        disabled: dict[str, datetime | None] = {}
        for start in range(0, max(len(plan.creates), len(plan.updates)), SLICE):
            part = slice(start, start + SLICE)
            await self._write(plan.creates[part], plan.updates[part], report, disabled)
        await self._disable_all(plan.disables, report, disabled)
        for action in plan.deletes:
            await self._one_reported(action, report, disabled)
        return disabled

    async def _write(
        self,
        creates: Sequence[plans.Create],
        updates: Sequence[plans.Update],
        report: Report,
        disabled: dict[str, datetime | None],
    ) -> None:
        """A slice of new users and of changed users' data in one write
        (`Hub.change_users`: checked as a whole, so an extension may move from one person
        to another in any order), then own-mode flags and enable marks; if the database
        refuses the write, one by one, so the refusal names its user and the rest go on."""
        batch = [NewUser(c.user, TeamsSyncMode.OFF if c.sync_off else None) for c in creates]
        changed = [u for u in updates if u.fields]
        try:
            refusals = await self.hub.change_users(
                batch, [(u.user_id, dict(u.fields)) for u in changed], SOURCE
            )
        except Rejected:
            actions: list[plans.Action] = [*updates, *creates]  # who gives up goes first
            for action in actions:
                await self._one_reported(action, report, disabled)
            return
        for index, error in refusals.creates:
            report.failures.append(f"failed: {creates[index].line()}: {error.message}")
        for index, error in refusals.updates:
            report.failures.append(f"failed: {changed[index].line()}: {error.message}")
        failed = {changed[index].user_id for index, _ in refusals.updates}
        for action in updates:
            if action.user_id not in failed and (action.sync_off is not None or action.enable):
                await self._one_reported(replace(action, fields={}), report, disabled)

    async def _disable_all(
        self,
        disables: Sequence[plans.Disable],
        report: Report,
        disabled: dict[str, datetime | None],
    ) -> None:
        """Own mode `off` for all of them at once (their commits shared); where the group
        ignores users' own modes, one by one the Teams id is taken away (`_disable`)."""
        hub = self.hub
        events = [(d.user_id, rules.SetOwnMode(TeamsSyncMode.OFF)) for d in disables]
        refused = dict(await hub.handle_many(events, SOURCE))
        for index, action in enumerate(disables):
            if index in refused:
                report.failures.append(f"failed: {action.line()}: {refused[index].message}")
            elif hub.mode_of(action.user_id) is TeamsSyncMode.OFF:
                disabled[action.user_id] = hub.clock.now()
            else:
                await self._one_reported(action, report, disabled)

    async def _one_reported(
        self, action: plans.Action, report: Report, disabled: dict[str, datetime | None]
    ) -> None:
        try:
            await self._one(action, disabled)
        except Rejected as error:
            report.failures.append(f"failed: {action.line()}: {error.message}")

    async def _one(self, action: plans.Action, disabled: dict[str, datetime | None]) -> None:
        hub = self.hub
        if isinstance(action, plans.Create):
            own = TeamsSyncMode.OFF if action.sync_off else None
            await hub.create_user(action.user, own)
        elif isinstance(action, plans.Update):
            if action.fields:
                await hub.update_user(action.user_id, dict(action.fields), SOURCE)
            if action.sync_off is not None:
                mode = TeamsSyncMode.OFF if action.sync_off else None
                await hub.handle(action.user_id, rules.SetOwnMode(mode), SOURCE)
            if action.enable:
                disabled[action.user_id] = None
        elif isinstance(action, plans.Disable):
            await self._disable(action.user_id)
            disabled[action.user_id] = hub.clock.now()
        else:
            if hub.has_user(action.user_id):
                await hub.delete_user(action.user_id)
            disabled[action.user_id] = None

    async def _disable(self, user_id: str) -> None:
        """Out of the sync: own mode `off` (the Teams writer then clears what the hub set);
        where the group ignores users' own modes, the Teams id is taken away instead (a
        durable Teams release clears it)."""
        hub = self.hub
        await hub.handle(user_id, rules.SetOwnMode(TeamsSyncMode.OFF), SOURCE)
        if hub.mode_of(user_id) is not TeamsSyncMode.OFF:
            await hub.update_user(user_id, {"teams_user_id": None}, SOURCE)


def _looked_at(rules: plans.Rules) -> tuple[list[str], list[str]]:
    """The attributes and directory groups the rules look at, for `follow_rules`."""
    return sorted(rules.attributes_named()), sorted(rules.groups_named())


def _with_teams_id(person: DirectoryPerson, teams_id: str | None) -> DirectoryPerson:
    data = person_json(person)
    data["teams_user_id"] = teams_id
    return person_from(data)


def _report_from(data: Mapping[str, Any]) -> Report:
    fields = {k: v for k, v in data.items() if k in Report.__dataclass_fields__}
    fields["started_at"] = datetime.fromisoformat(str(data["started_at"]))
    finished = data.get("finished_at")
    fields["finished_at"] = None if finished is None else datetime.fromisoformat(str(finished))
    return Report(**fields)
