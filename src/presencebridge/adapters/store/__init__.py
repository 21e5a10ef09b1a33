"""The store: SQLite by default, PostgreSQL by URL, one schema through Alembic.

Everything here is synchronous; the service runs it on a worker thread so the
event loop never waits on a disk.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Connection, Engine

from presencebridge.adapters.store import audit
from presencebridge.adapters.store import tables as t
from presencebridge.adapters.store.bulk import BulkStatement
from presencebridge.core import codec
from presencebridge.core.model import ProfileTemplate, Status, User, UserState
from presencebridge.core.settings import GroupSettings

MIGRATIONS = Path(__file__).parent / "migrations"
HEAD_REVISION = "0009"


def normalise_url(url: str) -> str:
    """Accept the usual spellings of a PostgreSQL URL and use the psycopg 3 driver."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def json_text(value: Any) -> str:
    """The JSON columns' serializer: orjson writes a user's state (`codec.encode`: times
    as `datetime`, states as enum members) in C, several times faster than `json.dumps`
    with the times formatted in Python; non-text keys become text, as with `json`."""
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


# Every engine the store uses is made with these (`create_engine`).
JSON_OPTIONS: dict[str, Any] = {"json_serializer": json_text, "json_deserializer": orjson.loads}


def create_engine(url: str) -> Engine:
    url = normalise_url(url)
    if url.startswith("sqlite"):
        engine = sa.create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, **JSON_OPTIONS
        )

        @sa.event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            # WAL lets readers run beside the writer; FULL makes every commit survive power loss.
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    return sa.create_engine(url, pool_size=10, max_overflow=10, pool_pre_ping=True, **JSON_OPTIONS)


def _alembic_config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def migrate(engine: Engine, revision: str = "head") -> None:
    with engine.begin() as connection:
        command.upgrade(_alembic_config(connection), revision)


def downgrade(engine: Engine, revision: str = "base") -> None:
    with engine.begin() as connection:
        command.downgrade(_alembic_config(connection), revision)


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class GroupRecord:
    id: str
    name: str
    settings: GroupSettings
    templates: tuple[ProfileTemplate, ...]


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    user_id: str
    at: datetime
    source: str
    status: str
    telephony: str
    text: str
    change: str | None = None  # what a lifecycle change did, e.g. "group: a -> b"


@dataclass(frozen=True, slots=True)
class StatusRun:
    """A user's latest run of history rows with one status (`Store.status_runs`)."""

    status: str
    since: datetime  # when the run's first row was written


@dataclass(frozen=True, slots=True)
class TeamsRelease:
    """What the hub must still clear in Teams for a Teams id it no longer syncs."""

    teams_user_id: str
    user_id: str  # who had it: the node that handles this user works it off
    clear_session: bool
    clear_preferred: bool
    id: int | None = None  # given by the store
    clear_message: bool = False  # the hub's Teams status message


@dataclass(frozen=True, slots=True)
class DirectoryRecord:
    """What the last runs of one directory source left in the store."""

    cursor: str | None
    last_run: dict[str, Any] | None
    people: dict[str, dict[str, Any]]  # key -> the person as JSON
    disabled: dict[str, datetime]  # user id -> disabled since


@dataclass(frozen=True, slots=True)
class StoredRules:
    """Directory rules edited in the console or the API: the configuration file's
    fields (`{"rules": [...], "default_group": ...}`), who saved them and when."""

    rules: dict[str, Any]
    changed_by: str
    changed_at: datetime


@dataclass(frozen=True, slots=True)
class AgentTokenInfo:
    id: str
    created_at: datetime
    name: str | None = None


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """A token as the administrator's overview lists it: whose, which kind, which."""

    user_id: str
    kind: str
    token: AgentTokenInfo


AGENT = "agent"  # a token's kind: the desktop agent's
PERSONAL = "personal"  # a script's, made by the user on their page (issue 14)


EXTENSION = "extension"
NUMBER = "number"


class UnknownTokenError(LookupError):
    pass


class Duplicate(sa.exc.IntegrityError):
    """A unique or foreign key of the database refused the write (an extension, number or
    Teams id another user has, a group with users); nothing was written."""

    def __init__(self, error: sa.exc.IntegrityError) -> None:
        orig: BaseException = error if error.orig is None else error.orig
        super().__init__(error.statement, error.params, orig)
        self.reason = _reason(error)


class Unstorable(ValueError):
    """The database refused the data itself (e.g. NUL in text on PostgreSQL, a lone
    surrogate, a value too long): writing it again will not help; nothing was written.

    The API checks requests so that this should not happen; when it does, the write
    that caused it is refused with a 4xx and no other write fails with it.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(f"the database cannot store this: {reason}")
        self.reason = reason


def _reason(error: BaseException) -> str:
    """The database's own words, without the SQL and parameters SQLAlchemy appends."""
    cause = getattr(error, "orig", None) or error
    lines = str(cause).strip().splitlines()
    reason = lines[0] if lines else type(cause).__name__
    detail = getattr(getattr(cause, "diag", None), "message_detail", None)
    return f"{reason} ({detail})" if detail else reason


# Called inside a writing transaction with the users written; raises to refuse the write.
Fence = Callable[[Connection, Collection[str]], None]


class Store:
    def __init__(self, engine: Engine, fence: Fence | None = None) -> None:
        self.engine = engine
        self.fence = fence  # several nodes: only a partition's owner writes

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        try:
            with self.engine.begin() as connection:
                yield connection
        # Rolled back: nothing written. orjson refuses what no JSON text can carry (a lone
        # surrogate) before the database sees it.
        except (sa.exc.DataError, UnicodeError, orjson.JSONEncodeError) as error:
            raise Unstorable(_reason(error)) from error
        except sa.exc.IntegrityError as error:
            if isinstance(error, Duplicate):
                raise
            raise Duplicate(error) from error

    # -- reading everything at start ---------------------------------------------------------

    def load_groups(self) -> list[GroupRecord]:
        with self._tx() as c:
            templates: dict[str, list[ProfileTemplate]] = {}
            rows = c.execute(
                sa.select(t.profile_templates).order_by(
                    t.profile_templates.c.group_id, t.profile_templates.c.position
                )
            )
            for row in rows:
                templates.setdefault(row.group_id, []).append(
                    ProfileTemplate(
                        row.name,
                        Status(row.status),
                        row.text,
                        row.color,
                        row.active,
                        row.call_forwarding,
                    )
                )
            return [
                GroupRecord(
                    row.id,
                    row.name,
                    GroupSettings.model_validate(row.settings),
                    tuple(templates.get(row.id, ())),
                )
                for row in c.execute(sa.select(t.groups).order_by(t.groups.c.id))
            ]

    def load_users(self) -> list[UserState]:
        with self._tx() as c:
            addresses: dict[tuple[str, str], list[str]] = {}
            for a in c.execute(
                sa.select(t.user_addresses).order_by(
                    t.user_addresses.c.user_id, t.user_addresses.c.position
                )
            ):
                addresses.setdefault((a.user_id, a.kind), []).append(a.value)
            return [
                codec.decode(
                    User(
                        row.id,
                        row.display_name,
                        row.group_id,
                        row.teams_user_id,
                        row.email,
                        tuple(addresses.get((row.id, EXTENSION), ())),
                        tuple(addresses.get((row.id, NUMBER), ())),
                        row.directory_key,
                    ),
                    row.state,
                )
                for row in c.execute(sa.select(t.users).order_by(t.users.c.id))
            ]

    def load_releases(self) -> list[TeamsRelease]:
        with self._tx() as c:
            rows = c.execute(sa.select(t.teams_releases).order_by(t.teams_releases.c.id))
            return [
                TeamsRelease(
                    r.teams_user_id,
                    r.user_id,
                    r.clear_session,
                    r.clear_preferred,
                    r.id,
                    clear_message=r.clear_message,
                )
                for r in rows
            ]

    def delete_release(self, release_id: int) -> None:
        with self._tx() as c:
            c.execute(t.teams_releases.delete().where(t.teams_releases.c.id == release_id))

    # -- groups ------------------------------------------------------------------------------

    def create_group(self, group: GroupRecord, now: datetime) -> None:
        with self._tx() as c:
            c.execute(
                t.groups.insert().values(
                    id=group.id, name=group.name, settings=group.settings.public(), created_at=now
                )
            )

    def save_group_settings(self, group_id: str, settings: GroupSettings) -> None:
        with self._tx() as c:
            c.execute(
                t.groups.update()
                .where(t.groups.c.id == group_id)
                .values(settings=settings.public())
            )

    def save_templates(self, group_id: str, templates: Sequence[ProfileTemplate]) -> None:
        with self._tx() as c:
            c.execute(
                t.profile_templates.delete().where(t.profile_templates.c.group_id == group_id)
            )
            if templates:
                c.execute(
                    t.profile_templates.insert(),
                    [
                        {
                            "group_id": group_id,
                            "name": p.name,
                            "position": i,
                            "status": p.status.value,
                            "text": p.text,
                            "color": p.color,
                            "active": p.active,
                            "call_forwarding": p.call_forwarding,
                        }
                        for i, p in enumerate(templates)
                    ],
                )

    def delete_group(self, group_id: str) -> None:
        with self._tx() as c:
            c.execute(
                t.profile_templates.delete().where(t.profile_templates.c.group_id == group_id)
            )
            c.execute(t.groups.delete().where(t.groups.c.id == group_id))

    # -- users -------------------------------------------------------------------------------

    def create_user(self, state: UserState, now: datetime) -> None:
        with self._tx() as c:
            if self.fence is not None:
                self.fence(c, {state.user.id})
            c.execute(t.users.insert(), _new_user_row(state, now))
            _insert_addresses(c, state.user)

    def create_users(
        self, states: Sequence[UserState], history: Sequence[HistoryEntry], now: datetime
    ) -> None:
        """Many new users, their addresses and history in one transaction (executemany):
        all of them or, when the database refuses one (a unique key), none."""
        self.change_users(states, [], history, [], now)

    def change_users(
        self,
        created: Sequence[UserState],
        updated: Sequence[UserState],
        history: Sequence[HistoryEntry],
        releases: Sequence[TeamsRelease | None],
        now: datetime,
    ) -> list[TeamsRelease | None]:
        """New users and lifecycle changes in one transaction: all of them or, when the
        database refuses one (a unique key), none. A Teams id, extension or number may
        move between the batch's users in any order (even a swap): the changed users' Teams
        ids and addresses are cleared first, then every user's new ones are written. A
        user changed twice is written as the last change left them. Returns the releases
        with their ids."""
        if not created and not updated:
            return [None for _ in releases]
        ua = t.user_addresses
        final = {s.user.id: s for s in updated}
        with self._tx() as c:
            if self.fence is not None:
                self.fence(c, {*final, *(s.user.id for s in created)})
            for chunk in _chunks(list(final), 500):
                c.execute(
                    t.users.update()
                    .where(t.users.c.id.in_(chunk), t.users.c.teams_user_id.is_not(None))
                    .values(teams_user_id=None)
                )
                c.execute(ua.delete().where(ua.c.user_id.in_(chunk)))
            if final:
                c.execute(
                    _USER_UPDATE.values(updated_at=now), [_user_row(s) for s in final.values()]
                )
            if created:
                c.execute(t.users.insert(), [_new_user_row(s, now) for s in created])
            users = [s.user for s in (*final.values(), *created)]
            rows = [row for user in users for row in _address_rows(user)]
            if rows:
                c.execute(ua.insert(), rows)
            _insert_history(c, history)
            return [_insert_release(c, release, now) for release in releases]

    def update_user(
        self,
        state: UserState,
        history: HistoryEntry,
        release: TeamsRelease | None,
        now: datetime,
    ) -> TeamsRelease | None:
        """A lifecycle change: the user's row, addresses, history and what Teams must
        release, in one transaction. Returns the release with its id."""
        user = state.user
        with self._tx() as c:
            if self.fence is not None:
                self.fence(c, {user.id})
            c.execute(_USER_UPDATE.values(updated_at=now), _user_row(state))
            c.execute(t.user_addresses.delete().where(t.user_addresses.c.user_id == user.id))
            _insert_addresses(c, user)
            _insert_history(c, [history])
            return _insert_release(c, release, now)

    def update_users(
        self,
        states: Sequence[UserState],
        history: Sequence[HistoryEntry],
        releases: Sequence[TeamsRelease | None],
        now: datetime,
    ) -> list[TeamsRelease | None]:
        """Many lifecycle changes in one transaction (`change_users` without new users):
        rows, addresses, history, releases. Returns the releases with their ids."""
        return self.change_users([], states, history, releases, now)

    def delete_user(
        self, user_id: str, release: TeamsRelease | None, now: datetime
    ) -> TeamsRelease | None:
        """The user and everything of theirs (addresses, tokens, history), one transaction;
        what Teams must release is written in it."""
        with self._tx() as c:
            if self.fence is not None:
                self.fence(c, {user_id})
            tables = (
                t.user_addresses, t.agent_tokens, t.presence_history, t.directory_disabled,
                t.console_sessions,
            )  # fmt: skip
            for table in tables:
                c.execute(table.delete().where(table.c.user_id == user_id))
            c.execute(t.users.delete().where(t.users.c.id == user_id))
            return _insert_release(c, release, now)

    def save_users(
        self, states: Sequence[UserState], history: Sequence[HistoryEntry], now: datetime
    ) -> None:
        """Write several users' new states (what events change; their directory data is
        left as `change_users` / `update_user` wrote it) and their history in one
        transaction."""
        with self._tx() as c:
            if self.fence is not None:
                self.fence(c, {s.user.id for s in states})
            if states:
                rows = [
                    {"b_id": s.user.id, "b_state": codec.encode(s), "b_updated_at": now}
                    for s in states
                ]
                _STATE_UPDATE_MANY.run(c, rows)
            _HISTORY_INSERT_MANY.run(c, [_history_row(h) for h in history])

    # -- the directory sync ------------------------------------------------------------------

    def load_directory(self, source: str, people: bool = True) -> DirectoryRecord:
        """What the last runs of a directory source left: cursor, last run, people (unless
        `people` is false: a caller that holds them already), and since when each
        disabled directory user is disabled."""
        dp = t.directory_people
        with self._tx() as c:
            row = c.execute(
                sa.select(t.directory_sources).where(t.directory_sources.c.source == source)
            ).first()
            listed = {}
            if people:
                rows = c.execute(sa.select(dp.c.key, dp.c.person).where(dp.c.source == source))
                listed = {r.key: r.person for r in rows}
            disabled = {r.user_id: r.since for r in c.execute(sa.select(t.directory_disabled))}
        return DirectoryRecord(
            None if row is None else row.cursor,
            None if row is None else row.last_run,
            listed,
            disabled,
        )

    def save_directory(
        self,
        source: str,
        cursor: str | None,
        last_run: dict[str, Any],
        people: Mapping[str, dict[str, Any] | None],
        disabled: Mapping[str, datetime | None],
        now: datetime,
    ) -> None:
        """One transaction: the changed people (None: gone), the disabled marks (None:
        lifted), the cursor and the last run."""
        dp, dd, ds = t.directory_people, t.directory_disabled, t.directory_sources
        with self._tx() as c:
            for chunk in _chunks(list(people), 500):
                c.execute(dp.delete().where(dp.c.source == source, dp.c.key.in_(chunk)))
            rows = [{"source": source, "key": k, "person": v} for k, v in people.items() if v]
            if rows:
                c.execute(dp.insert(), rows)
            for user_id, since in disabled.items():
                c.execute(dd.delete().where(dd.c.user_id == user_id))
                if since is not None:
                    c.execute(dd.insert().values(user_id=user_id, since=since))
            c.execute(ds.delete().where(ds.c.source == source))
            c.execute(
                ds.insert().values(source=source, cursor=cursor, last_run=last_run, updated_at=now)
            )

    def save_last_run(self, source: str, last_run: dict[str, Any], now: datetime) -> None:
        """A run that changed nothing (a dry run, a stop, a failed read): only its report."""
        ds = t.directory_sources
        with self._tx() as c:
            updated = c.execute(
                ds.update().where(ds.c.source == source).values(last_run=last_run, updated_at=now)
            )
            if updated.rowcount == 0:
                c.execute(ds.insert().values(source=source, last_run=last_run, updated_at=now))

    def load_directory_rules(self, source: str) -> StoredRules | None:
        """The rules saved for a directory source, or None (the file's rules apply)."""
        dr = t.directory_rules
        with self._tx() as c:
            row = c.execute(sa.select(dr).where(dr.c.source == source)).first()
        return None if row is None else StoredRules(row.rules, row.changed_by, row.changed_at)

    def save_directory_rules(
        self, source: str, rules: dict[str, Any], changed_by: str, now: datetime
    ) -> None:
        """Replace the saved rules of a source, in one transaction."""
        dr = t.directory_rules
        with self._tx() as c:
            c.execute(dr.delete().where(dr.c.source == source))
            c.execute(
                dr.insert().values(
                    source=source, rules=rules, changed_by=changed_by, changed_at=now
                )
            )

    def delete_directory_rules(self, source: str) -> bool:
        """Forget the saved rules of a source (its file's apply again); False: there were none."""
        dr = t.directory_rules
        with self._tx() as c:
            return c.execute(dr.delete().where(dr.c.source == source)).rowcount > 0

    def history(self, user_id: str, limit: int = 50) -> list[HistoryEntry]:
        with self._tx() as c:
            rows = c.execute(
                sa.select(t.presence_history)
                .where(t.presence_history.c.user_id == user_id)
                .order_by(t.presence_history.c.id.desc())
                .limit(limit)
            )
            return [
                HistoryEntry(r.user_id, r.at, r.source, r.status, r.telephony, r.text, r.change)
                for r in rows
            ]

    def status_runs(self) -> dict[str, StatusRun]:
        """Every user's latest run of history rows with one status: the status, and when
        the run's first row was written (`prune_history` never deletes a row of a
        user's latest run, so pruning does not cut the answer short).

        One ordered pass over the index on (user_id, at), in Python: a row that starts
        a run (another user, or another status than the row before) replaces the
        user's answer. The times come as the database's text and only each user's
        answer is parsed, which at 100,000 users is most of the saving."""
        h = t.presence_history
        query = sa.select(
            h.c.user_id, h.c.status, sa.type_coerce(h.c.at, sa.String).label("at")
        ).order_by(h.c.user_id, h.c.at, h.c.id)
        starts: dict[str, tuple[str, Any]] = {}
        with self._tx() as c:
            user = status = None
            for row in c.execute(query):
                if row[0] != user or row[1] != status:
                    user, status = row[0], row[1]
                    starts[user] = (status, row[2])
        return {u: StatusRun(s, _instant(at)) for u, (s, at) in starts.items()}

    def prune_history(self, before: datetime) -> int:
        """Rows older than `before`, except each user's latest run start: the row that
        says since when the user's status is what it is, however long ago that was
        (`status_runs`). A row goes once a later row has another status, or when the
        row before it has the same status (it starts no run)."""
        h = t.presence_history
        other = t.presence_history.alias("other")
        changed_later = sa.exists().where(
            other.c.user_id == h.c.user_id, other.c.at >= h.c.at, other.c.status != h.c.status
        )
        status_before = (
            sa.select(other.c.status)
            .where(
                other.c.user_id == h.c.user_id,
                sa.or_(other.c.at < h.c.at, sa.and_(other.c.at == h.c.at, other.c.id < h.c.id)),
            )
            .order_by(other.c.at.desc(), other.c.id.desc())
            .limit(1)
            .scalar_subquery()
        )
        goes = sa.or_(changed_later, status_before == h.c.status)
        with self._tx() as c:
            result = c.execute(h.delete().where(h.c.at < before, goes))
            return result.rowcount or 0

    # -- the audit log (issue 18) ------------------------------------------------------------

    def append_audit(self, entry: audit.AuditEntry) -> None:
        with self._tx() as c:
            audit.append(c, entry)

    def audit_page(self, query: audit.AuditQuery) -> audit.AuditPage:
        with self._tx() as c:
            return audit.page(c, query)

    def prune_audit(self, before: datetime) -> int:
        with self._tx() as c:
            return audit.prune(c, before)

    # -- agent tokens ------------------------------------------------------------------------

    def add_agent_token(
        self, user_id: str, token: str, now: datetime, kind: str = AGENT, name: str | None = None
    ) -> str:
        token_id = str(uuid.uuid4())
        with self._tx() as c:
            c.execute(
                t.agent_tokens.insert().values(
                    id=token_id, user_id=user_id, token_hash=hash_token(token), created_at=now,
                    kind=kind, name=name,
                )
            )  # fmt: skip
        return token_id

    def agent_tokens(self, user_id: str, kind: str = AGENT) -> list[AgentTokenInfo]:
        tokens = t.agent_tokens.c
        with self._tx() as c:
            rows = c.execute(
                sa.select(tokens.id, tokens.created_at, tokens.name)
                .where(tokens.user_id == user_id, tokens.kind == kind)
                .order_by(tokens.created_at, tokens.id)
            )
            return [AgentTokenInfo(r.id, r.created_at, r.name) for r in rows]

    def all_tokens(self) -> list[TokenRecord]:
        """Every user's agent and personal tokens (the administrator's overview), by user,
        then kind, then age; never a token or its hash."""
        tokens = t.agent_tokens.c
        with self._tx() as c:
            rows = c.execute(
                sa.select(
                    tokens.user_id, tokens.kind, tokens.id, tokens.created_at, tokens.name
                ).order_by(tokens.user_id, tokens.kind, tokens.created_at, tokens.id)
            )
            return [
                TokenRecord(r.user_id, r.kind, AgentTokenInfo(r.id, r.created_at, r.name))
                for r in rows
            ]

    def revoke_agent_token(self, user_id: str, token_id: str, kind: str = AGENT) -> bool:
        """Whether the user had that token; it is gone either way."""
        tokens = t.agent_tokens.c
        with self._tx() as c:
            result = c.execute(
                t.agent_tokens.delete().where(
                    tokens.user_id == user_id, tokens.id == token_id, tokens.kind == kind
                )
            )
            return bool(result.rowcount)

    def token_owner(self, token: str) -> tuple[str, str]:
        """The user a token belongs to and its kind; raises UnknownTokenError."""
        tokens = t.agent_tokens.c
        with self._tx() as c:
            row = c.execute(
                sa.select(tokens.user_id, tokens.kind).where(tokens.token_hash == hash_token(token))
            ).one_or_none()
        if row is None:
            raise UnknownTokenError
        return str(row.user_id), str(row.kind)

    def agent_token_user(self, token: str) -> str:
        """The user an agent token belongs to; raises UnknownTokenError (a personal
        token is no agent's)."""
        user_id, kind = self.token_owner(token)
        if kind != AGENT:
            raise UnknownTokenError
        return user_id


# A user's row as the hub holds it (an event's new state, a lifecycle change): one
# statement for every update of users, run as one executemany.
_USER_UPDATE = (
    t.users.update()
    .where(t.users.c.id == sa.bindparam("b_id"))
    .values(
        display_name=sa.bindparam("b_display_name"),
        group_id=sa.bindparam("b_group_id"),
        teams_user_id=sa.bindparam("b_teams_user_id"),
        email=sa.bindparam("b_email"),
        directory_key=sa.bindparam("b_directory_key"),
        state=sa.bindparam("b_state"),
        version=t.users.c.version + 1,
    )
)


# What an event changes: the state document. Directory data is written where it changes
# (`change_users`, `update_user`); setting its columns again on every event cost SQLite
# the unique indexes' and the group's foreign key's work per row (~4 µs).
_STATE_UPDATE_MANY = BulkStatement(
    t.users.update()
    .where(t.users.c.id == sa.bindparam("b_id"))
    .values(
        state=sa.bindparam("b_state"),
        version=t.users.c.version + 1,
        updated_at=sa.bindparam("b_updated_at"),
    )
)


def _user_row(state: UserState) -> dict[str, Any]:
    user = state.user
    return {
        "b_id": user.id,
        "b_display_name": user.display_name,
        "b_group_id": user.group,
        "b_teams_user_id": user.teams_user_id,
        "b_email": user.email,
        "b_directory_key": user.directory_key,
        "b_state": codec.encode(state),
    }


def _new_user_row(state: UserState, now: datetime) -> dict[str, Any]:
    user = state.user
    return {
        "id": user.id,
        "display_name": user.display_name,
        "group_id": user.group,
        "teams_user_id": user.teams_user_id,
        "email": user.email,
        "directory_key": user.directory_key,
        "state": codec.encode(state),
        "version": 1,
        "updated_at": now,
    }


def _instant(value: Any) -> datetime:
    """A time column read as the database gave it (`status_runs`): SQLite's text in UTC,
    or PostgreSQL's aware datetime."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    assert isinstance(value, datetime)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _address_rows(user: User) -> list[dict[str, Any]]:
    return [
        {"kind": kind, "value": value, "user_id": user.id, "position": i}
        for kind, values in ((EXTENSION, user.extensions), (NUMBER, user.numbers))
        for i, value in enumerate(values)
    ]


def _insert_addresses(c: Connection, user: User) -> None:
    rows = _address_rows(user)
    if rows:
        c.execute(t.user_addresses.insert(), rows)


def _insert_history(c: Connection, history: Sequence[HistoryEntry]) -> None:
    _HISTORY_INSERT_MANY.run(c, [_history_row(h) for h in history])


def _history_row(h: HistoryEntry) -> dict[str, Any]:
    return {
        "user_id": h.user_id,
        "at": h.at,
        "source": h.source,
        "status": h.status,
        "telephony": h.telephony,
        "text": h.text[:200],
        "change": None if h.change is None else h.change[:200],
    }


# The group commit's two statements, many rows each (bulk.py says why).
_HISTORY_INSERT_MANY = BulkStatement(
    t.presence_history.insert(),
    ["user_id", "at", "source", "status", "telephony", "text", "change"],
)


def _insert_release(
    c: Connection, release: TeamsRelease | None, now: datetime
) -> TeamsRelease | None:
    if release is None:
        return None
    result = c.execute(
        t.teams_releases.insert().values(
            teams_user_id=release.teams_user_id,
            user_id=release.user_id,
            clear_session=release.clear_session,
            clear_preferred=release.clear_preferred,
            clear_message=release.clear_message,
            created_at=now,
        )
    )
    key = result.inserted_primary_key
    assert key is not None
    return replace(release, id=int(key[0]))
