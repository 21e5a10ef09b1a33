"""The directory sync's rules and plan (issue 12), pure.

* **Rules** say which configuration group a directory person belongs to: the first
  rule whose conditions all hold wins; a rule whose `group` is None puts the person out
  of scope; no rule matching means the default group (None: not in scope).
* **The plan** compares the directory's people (a full picture: a delta read is merged
  into the stored snapshot first) with the users the directory made earlier, and says
  what to create, update, disable (taken out of the sync, kept for the grace period) and
  delete. Users made by hand (no directory key) are never in it.
* **The safety stop**: a plan that would disable more than `max_removal_share` of the
  directory's users is refused unless forced.

Nothing here does I/O or reads a clock.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from presencebridge.core import addresses
from presencebridge.core.model import ID_PATTERN, User
from presencebridge.core.ports import DirectoryPerson, DirectoryRead


@dataclass(frozen=True, slots=True)
class Rule:
    """Conditions (all that are given must hold) and the group they lead to.

    `member_of`: a group the person is a direct member of (name, id or DN, compared
    without case); `ou`: the person's entry lies under this DN (LDAP); `attribute` and
    `equals`: an attribute the directory returns has this value (case ignored).
    `group` None: the person is not in scope.
    """

    group: str | None
    member_of: str | None = None
    ou: str | None = None
    attribute: str | None = None
    equals: str | None = None

    def matches(self, person: DirectoryPerson) -> bool:
        if self.member_of is not None and self.member_of.casefold() not in {
            g.casefold() for g in person.groups
        }:
            return False
        if self.ou is not None and not _under(person.ou, self.ou):
            return False
        if self.attribute is not None:
            values = {k.casefold(): v for k, v in person.attributes}
            value = values.get(self.attribute.casefold())
            if value is None or (
                self.equals is not None and value.casefold() != self.equals.casefold()
            ):
                return False
        return True


def _under(dn: str | None, base: str) -> bool:
    if dn is None:
        return False
    norm = [p.strip().casefold() for p in dn.split(",")]
    want = [p.strip().casefold() for p in base.split(",")]
    return len(norm) >= len(want) and norm[len(norm) - len(want) :] == want


@dataclass(frozen=True, slots=True)
class Rules:
    rules: tuple[Rule, ...] = ()
    default_group: str | None = None

    def group_of(self, person: DirectoryPerson) -> str | None:
        """The configuration group, or None when the person is not in scope."""
        for rule in self.rules:
            if rule.matches(person):
                return rule.group
        return self.default_group

    def groups_named(self) -> set[str]:
        """The directory groups the rules look at (Entra reads only their members)."""
        return {r.member_of for r in self.rules if r.member_of is not None}

    def attributes_named(self) -> set[str]:
        """The directory attributes the rules look at (Entra reads only these)."""
        return {r.attribute for r in self.rules if r.attribute is not None}


@dataclass(frozen=True, slots=True)
class Policy:
    source: str  # the directory's name; prefixes the keys ("entra:<object id>")
    rules: Rules
    max_removal_share: float = 0.10
    grace: timedelta = timedelta(days=30)
    default_country: str = "DE"


@dataclass(frozen=True, slots=True)
class Known:
    """A user the directory made earlier, as the hub has them now."""

    user: User
    sync_off: bool  # the user's own mode is `off`
    disabled_since: datetime | None


# -- actions -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Create:
    user: User
    sync_off: bool  # no Teams account: created with the user's own mode `off`
    notes: tuple[str, ...] = ()

    def line(self) -> str:
        off = ", Teams sync off (no Teams account)" if self.sync_off else ""
        return f"create {self.user.id} ({self.user.display_name}, group {self.user.group}{off})"


@dataclass(frozen=True, slots=True)
class Update:
    user_id: str
    fields: Mapping[str, object]  # for Hub.update_user
    sync_off: bool | None = None  # set (True) or lift (False) the own mode `off`
    enable: bool = False  # was disabled, is back
    notes: tuple[str, ...] = ()

    def line(self) -> str:
        parts = [f"{k}: {_show(v)}" for k, v in sorted(self.fields.items())]
        if self.enable:
            parts.append("enabled again")
        elif self.sync_off is not None:
            parts.append("Teams sync off" if self.sync_off else "Teams sync on")
        return f"update {self.user_id}: " + "; ".join(parts)


@dataclass(frozen=True, slots=True)
class Disable:
    user_id: str
    why: str

    def line(self) -> str:
        return f"disable {self.user_id} ({self.why})"


@dataclass(frozen=True, slots=True)
class Delete:
    user_id: str
    since: datetime

    def line(self) -> str:
        return f"delete {self.user_id} (disabled since {self.since:%Y-%m-%d})"


@dataclass(frozen=True, slots=True)
class Skip:
    key: str
    why: str

    def line(self) -> str:
        return f"skip {self.key}: {self.why}"


Action = Create | Update | Disable | Delete


def _show(value: object) -> str:
    if isinstance(value, tuple):
        return ", ".join(str(v) for v in value) or "-"
    return "-" if value is None else str(value)


@dataclass(frozen=True, slots=True)
class Plan:
    creates: tuple[Create, ...] = ()
    updates: tuple[Update, ...] = ()
    disables: tuple[Disable, ...] = ()
    deletes: tuple[Delete, ...] = ()
    skipped: tuple[Skip, ...] = ()
    unchanged: int = 0
    known: int = 0  # users the directory made before this run
    stopped: str | None = None  # the safety stop's message

    def actions(self) -> list[Action]:
        return [*self.creates, *self.updates, *self.disables, *self.deletes]

    def summary(self) -> str:
        return (
            f"create {len(self.creates):,}, update {len(self.updates):,}, "
            f"disable {len(self.disables):,}, delete {len(self.deletes):,}, "
            f"unchanged {self.unchanged:,}"
        )

    def lines(self) -> list[str]:
        return [a.line() for a in self.actions()] + [s.line() for s in self.skipped]


# -- merging a read into the snapshot --------------------------------------------------


def merge(
    snapshot: Mapping[str, DirectoryPerson], read: DirectoryRead
) -> dict[str, DirectoryPerson]:
    """Everyone the directory lists after this read (a full read replaces the snapshot)."""
    people = {} if read.full else dict(snapshot)
    for key in read.removed:
        people.pop(key, None)
    for person in read.people:
        people[person.key] = person
    if read.memberships is not None:
        members = read.memberships
        people = {k: _with_groups(p, members.get(k, ())) for k, p in people.items()}
    return people


def _with_groups(person: DirectoryPerson, groups: tuple[str, ...]) -> DirectoryPerson:
    return person if person.groups == groups else replace(person, groups=groups)


# -- the plan ----------------------------------------------------------------------------


def directory_key(policy: Policy, person: DirectoryPerson) -> str:
    return f"{policy.source}:{person.key}"


def user_id_for(person: DirectoryPerson) -> str | None:
    """A new user's id: the UPN (or mail) in lower case, else the directory's key."""
    for candidate in (person.upn, person.mail, person.key):
        if candidate and ID_PATTERN.match(candidate.lower()):
            return candidate.lower()
    return None


_SEPARATORS = re.compile(r"[\s./-]")  # within a phone number as people write it


def desired_user(
    policy: Policy,
    person: DirectoryPerson,
    group: str,
    user_id: str,
    known_numbers: tuple[str, ...] = (),
) -> tuple[User, tuple[str, ...]]:
    """The user the directory says this person is, and notes on values left out.

    `known_numbers`: the numbers the user has (E.164, checked when they were set); a
    number the directory spells as one of them in international form with separators
    is taken as it is, without parsing it again (a run looks at every person)."""
    notes: list[str] = []
    extensions: list[str] = []
    for raw in person.extensions:
        try:
            extensions.append(addresses.extension(raw))
        except addresses.AddressError as error:
            notes.append(f"extension left out: {error}")
    numbers: list[str] = []
    for raw in person.numbers:
        compact = _SEPARATORS.sub("", raw)
        if compact in known_numbers:
            numbers.append(compact)
            continue
        try:
            numbers.append(addresses.number(raw, policy.default_country))
        except addresses.AddressError as error:
            notes.append(f"number left out: {error}")
    name = person.display_name.strip() or person.upn or person.key
    user = User(
        user_id,
        name[:200],
        group,
        person.teams_user_id,
        person.upn or person.mail,
        addresses.unique(extensions),
        addresses.unique(numbers),
        directory_key(policy, person),
    )
    return user, tuple(notes)


CHANGEABLE = ("display_name", "group", "teams_user_id", "email", "extensions", "numbers")


@dataclass
class _Builder:
    policy: Policy
    now: datetime
    taken: set[str]  # user ids in use (all users, by hand too)
    creates: list[Create] = field(default_factory=list)
    updates: list[Update] = field(default_factory=list)
    disables: list[Disable] = field(default_factory=list)
    deletes: list[Delete] = field(default_factory=list)
    skipped: list[Skip] = field(default_factory=list)
    unchanged: int = 0

    def person(self, person: DirectoryPerson, known: Known | None) -> None:
        group = self.policy.rules.group_of(person) if person.enabled else None
        if group is None:
            if known is not None:
                self.gone(
                    known, "disabled in the directory" if not person.enabled else "out of scope"
                )
            return
        if known is None:
            self.create(person, group)
            return
        want, notes = desired_user(self.policy, person, group, known.user.id, known.user.numbers)
        fields = {
            n: getattr(want, n) for n in CHANGEABLE if getattr(want, n) != getattr(known.user, n)
        }
        enable = known.disabled_since is not None
        flag = _sync_flag(known, want, enable)
        if not fields and flag is None and not enable:
            self.unchanged += 1
            return
        self.updates.append(Update(known.user.id, fields, flag, enable, notes))

    def create(self, person: DirectoryPerson, group: str) -> None:
        user_id = user_id_for(person)
        if user_id is None or user_id in self.taken:
            why = "no usable user id" if user_id is None else f"user id {user_id!r} is taken"
            self.skipped.append(Skip(person.key, why))
            return
        self.taken.add(user_id)
        user, notes = desired_user(self.policy, person, group, user_id)
        self.creates.append(Create(user, user.teams_user_id is None, notes))

    def gone(self, known: Known, why: str) -> None:
        since = known.disabled_since
        if since is None:
            self.disables.append(Disable(known.user.id, why))
            if self.policy.grace <= timedelta(0):
                self.deletes.append(Delete(known.user.id, self.now))
        elif self.now - since >= self.policy.grace:
            self.deletes.append(Delete(known.user.id, since))
        else:
            self.unchanged += 1


def _sync_flag(known: Known, want: User, enable: bool) -> bool | None:
    """Own mode `off` set (True) or lifted (False) by the directory: set for someone
    without a Teams account; lifted when they got one (or are enabled again) and the
    directory had set it. A user's own choice of `off` otherwise stays."""
    if want.teams_user_id is None:
        return None if known.sync_off else True
    if known.sync_off and (enable or known.user.teams_user_id is None):
        return False
    return None


def plan(
    policy: Policy,
    people: Mapping[str, DirectoryPerson],
    known: Iterable[Known],
    taken: Iterable[str],
    now: datetime,
    force: bool = False,
) -> Plan:
    """What to do so the hub's directory users match `people` (everyone the directory
    lists now). `known`: the users this directory made; `taken`: every user id in use."""
    prefix = policy.source + ":"
    by_key = {
        k.user.directory_key[len(prefix) :]: k
        for k in known
        if k.user.directory_key is not None and k.user.directory_key.startswith(prefix)
    }
    builder = _Builder(policy, now, set(taken))
    for key in sorted(people):
        builder.person(people[key], by_key.get(key))
    for key in sorted(set(by_key) - set(people)):
        builder.gone(by_key[key], "removed from the directory")
    result = Plan(
        tuple(builder.creates),
        tuple(builder.updates),
        tuple(builder.disables),
        tuple(builder.deletes),
        tuple(builder.skipped),
        builder.unchanged,
        len(by_key),
    )
    return replace(result, stopped=None if force else safety_stop(policy, result))


def safety_stop(policy: Policy, result: Plan) -> str | None:
    """Refuse a run that would take too many of the directory's users out of the sync."""
    if result.known == 0:
        return None
    removing = len(result.disables)
    share = removing / result.known
    if share <= policy.max_removal_share:
        return None
    return (
        f"stopped: this run would disable {removing:,} of {result.known:,} users from "
        f"directory {policy.source!r} ({share:.0%}, more than max_removal_share "
        f"{policy.max_removal_share:.0%}); nothing was changed. Check the directory and "
        "the rules, then run again with --force (force: true) if this is intended."
    )


def known_from(users: Sequence[tuple[User, bool]], disabled: Mapping[str, datetime]) -> list[Known]:
    """`Known` for the users a directory made; `disabled` by user id."""
    return [
        Known(user, sync_off, disabled.get(user.id))
        for user, sync_off in users
        if user.directory_key is not None
    ]
