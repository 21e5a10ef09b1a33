"""The ports: what the service layer needs of the outside world, as types only.

Adapters implement these (`adapters/graph` for Teams); the service layer and its
tests depend on them and never on an adapter. No I/O here.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol, runtime_checkable

from presencebridge.core.model import CallState
from presencebridge.core.publication import Publication


@dataclass(frozen=True, slots=True)
class Reading:
    """What Graph showed for one Teams user."""

    teams_user_id: str
    availability: str
    activity: str
    sequence: str | None
    status_message: str | None = None
    out_of_office: bool = False


class TeamsPresenceWrites(Protocol):
    """The four presence writes the Teams sync makes, for one Teams user each.

    `duration` None means Graph's default expiry. A client acting for the signed-in
    user only (`/me`) ignores `teams_user_id`.
    """

    async def set_session(self, teams_user_id: str, availability: str, activity: str) -> None: ...

    async def clear_session(self, teams_user_id: str) -> None: ...

    async def set_preferred_dnd(self, teams_user_id: str, duration: timedelta | None) -> None: ...

    async def clear_preferred(self, teams_user_id: str) -> None: ...

    async def set_status_message(
        self, teams_user_id: str, text: str, until: datetime | None
    ) -> None: ...

    async def clear_status_message(self, teams_user_id: str) -> None: ...


class TeamsPresenceApi(TeamsPresenceWrites, Protocol):
    """What the server's Teams sync needs of Graph: reads in batches, and the writes."""

    max_ids_per_read: int

    async def read(self, teams_user_ids: Sequence[str]) -> Sequence[Reading]: ...


# -- the directory (issue 12): where users come from --------------------------------------


@dataclass(frozen=True, slots=True)
class DirectoryPerson:
    """One person as a directory lists them, before any rule is applied.

    `key` is the directory's own stable id (Entra object id, AD `objectGUID`, an LDAP
    server's `entryUUID`); it survives renames and moves. Numbers are as the directory
    spells them (the hub parses them). `groups` are the names or DNs of the groups the
    person is a direct member of; `ou` is the LDAP entry's parent DN (None for Entra);
    `attributes` holds the further attributes the configuration's rules name.
    """

    key: str
    display_name: str
    upn: str | None = None
    mail: str | None = None
    enabled: bool = True
    extensions: tuple[str, ...] = ()
    numbers: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    ou: str | None = None
    attributes: tuple[tuple[str, str], ...] = ()
    teams_user_id: str | None = None  # Entra: the object id; LDAP: looked up in Graph


@dataclass(frozen=True, slots=True)
class DirectoryRead:
    """What one read of a directory returned.

    A full read lists everyone in scope (`removed` empty); a delta read (Entra's
    `/users/delta`) lists only changed people and the keys of removed ones. `cursor`
    is what the next read starts from (Entra's deltaLink), None when the source has
    none. A read that failed part-way raises `DirectoryUnavailable`, never returns.
    """

    people: tuple[DirectoryPerson, ...]
    full: bool = True
    removed: tuple[str, ...] = ()
    cursor: str | None = None
    # Optional (Entra): the complete membership of the groups the rules name, person key
    # -> group names, read anew on every run. A delta read does not list a person whose
    # only change is a group membership, so this is applied to everyone the hub knows.
    # None: `DirectoryPerson.groups` of the people read is all there is.
    memberships: Mapping[str, tuple[str, ...]] | None = None


class DirectoryUnavailable(Exception):
    """The directory could not be read completely; the sync changes nothing."""


class DirectorySource(Protocol):
    """A directory the hub's users come from (Entra ID through Graph, LDAP / AD)."""

    name: str

    async def read(self, cursor: str | None) -> DirectoryRead:
        """Everyone (cursor None), or what changed since `cursor` where the source can."""
        ...

    async def aclose(self) -> None: ...


@runtime_checkable
class RuleDrivenSource(Protocol):
    """A directory source that reads only what the rules look at (Entra ID: the
    attributes named, and the members of the groups named). The sync tells it the
    rules in effect before each read, as they may have changed since the last."""

    def follow_rules(self, attributes: Sequence[str], groups: Sequence[str]) -> bool:
        """Read these from now on. True when the source now reads an attribute it did
        not: a delta would lack its values, so the next read must be a full one."""
        ...


@dataclass(frozen=True, slots=True)
class TeamsAccount:
    """What Graph knows of one person looked up by UPN or mail."""

    looked_up: str  # the UPN or mail asked for
    teams_user_id: str | None  # None: no such account in Entra ID


class TeamsIdLookup(Protocol):
    """Finds the Entra object id (the Teams user id) of people a directory such as LDAP
    lists without one, by UPN or mail, in batches."""

    async def lookup(self, names: Sequence[str]) -> Sequence[TeamsAccount]:
        """One answer per name; raises `DirectoryUnavailable` when Graph cannot say."""
        ...


# -- PBX and presence connectors (issue 13) -------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConnectorHealth:
    """What a connector says of itself on /healthz, /metrics and the console.

    `up`: connected and doing its work (every subscription, login or stream in place);
    `detail`: one line for an administrator, never a secret; `counts`: running totals
    such as notifications received or malformed bodies ignored.
    """

    name: str
    kind: str
    up: bool
    detail: str
    counts: Mapping[str, int]


class TelephonyLines(Protocol):
    """What a PBX connector (`[[pbx]]`) reports into: call states per extension.

    Call ids are the connector's own (a SIP dialog id, an Asterisk channel); the hub
    keeps them apart per connector and extension. Every method is safe to call for an
    extension no user has (it is ignored and counted).
    """

    def lines(self) -> Sequence[str]:
        """The extensions to watch now: every extension of every user this node
        handles, sorted."""
        ...

    def add_lines_listener(self, listener: Callable[[], None]) -> None:
        """Called (without arguments) when the set of `lines()` may have changed."""
        ...

    async def report(self, extension: str, call_id: str, state: CallState) -> None:
        """One call on an extension rings, is connected, or ended."""
        ...

    async def settle(self, extension: str, active: Collection[str]) -> None:
        """The PBX says these are all the calls on the extension now (a full-state
        notification, a new subscription, a reconnect): every call this connector
        reported earlier and not listed has ended."""
        ...


@dataclass(frozen=True, slots=True)
class OutwardUser:
    """One user as a presence outlet (`[[publish]]`) sees them: addresses and what to
    show. `publication` None: the user was deleted or left the hub; withdraw them."""

    user_id: str
    display_name: str
    email: str | None
    extensions: tuple[str, ...]
    publication: Publication | None


class PresenceOutlet(Protocol):
    """A system presence goes out to (a SIP presence server, XMPP, Asterisk).

    `publish` is called with the newest state of one user at a time (bursts already
    coalesced); it raises `OutletUnavailable` when the system cannot take it now, and
    the caller tries again later with whatever is newest then.
    """

    name: str
    kind: str
    language: str

    async def start(self) -> None: ...

    async def publish(self, user: OutwardUser) -> None: ...

    async def stop(self) -> None:
        """Withdraw what was published where the system keeps it (SIP `Expires: 0`)."""
        ...

    def health(self) -> ConnectorHealth: ...


class OutletUnavailable(Exception):
    """The outlet's system did not take a publication; the hub retries."""


class PbxConnector(Protocol):
    """A connector that reads telephony state from a PBX into `TelephonyLines`."""

    name: str
    kind: str

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def health(self) -> ConnectorHealth: ...


class UserNotes(Protocol):
    """Where a connector says something into a user's history that is no presence
    change: e.g. that a forwarding the user set on the phone was kept (issue 17). An
    adapter cannot reach the service layer; bootstrap passes this in."""

    async def note(self, user_id: str, change: str) -> None: ...
