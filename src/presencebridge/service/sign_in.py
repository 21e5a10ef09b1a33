"""Console sessions (issue 14): open one for a person the provider vouched for, or for
the administrator's break-glass token; find it per request; end it.

A session lives in the store (`console_sessions`), so signing out, deleting the user or
changing the admin token ends it at once on every node; the browser's cookie holds only
a random id. Lifetimes count in wall-clock time, never the hub's (test-controlled) clock.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from presencebridge.adapters.store.sessions import SessionRecord, SessionStore
from presencebridge.core.signin import Person, Role, SignInPolicy, role_of
from presencebridge.service.hub import Hub

SESSION_LIFETIME = timedelta(hours=12)
OIDC = "oidc"
ADMIN_TOKEN = "admin-token"  # noqa: S105 (a sign-in method's name)


@dataclass(frozen=True, slots=True)
class ConsoleSession:
    role: Role
    user_id: str | None  # None: an administrator who is no hub user
    method: str  # OIDC or ADMIN_TOKEN
    subject: str  # who, as the provider named them (or "administrator")
    provider: str | None  # the issuer, to offer its sign-out

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN


class NoHubUser(Exception):
    """The person signed in at the provider, but no hub user is theirs."""

    def __init__(self, person: Person) -> None:
        super().__init__(person.shown_as)
        self.person = person


def admin_fingerprint(admin_token: str) -> str:
    """What an admin-token session keeps of the token: an HMAC, never the token."""
    return hmac.new(admin_token.encode(), b"console sign-in v1", hashlib.sha256).hexdigest()[:32]


def _hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def _now() -> datetime:
    return datetime.now(UTC)


KEPT_FOR = timedelta(minutes=15)
KEPT_AT_MOST = 1000


@dataclass(frozen=True, slots=True)
class KeptForm:
    """A console form sent after its session ended: where it went, what it held."""

    action: str
    fields: tuple[tuple[str, str], ...]
    until: datetime


class KeptForms:
    """Forms kept across a sign-in at the provider (issue 18), in this process's memory:
    the browser's cookie names one by a random key until the sign-in starts, then it
    is bound to that sign-in's `state` and handed out once, after the callback. Never
    in a URL; gone after `KEPT_FOR`; at most `KEPT_AT_MOST` (the oldest go first)."""

    def __init__(self) -> None:
        self._forms: dict[str, KeptForm] = {}

    def keep(self, action: str, fields: list[tuple[str, str]]) -> str:
        self._sweep()
        key = secrets.token_urlsafe(24)
        self._forms[key] = KeptForm(action, tuple(fields), _now() + KEPT_FOR)
        return key

    def bind(self, key: str, state: str) -> None:
        """The sign-in with this `state` carries the form kept under `key`."""
        form = self._forms.pop(key, None)
        if form is not None and form.until > _now():
            self._forms["state:" + state] = form

    def take(self, state: str) -> KeptForm | None:
        """The form the sign-in with this `state` carries, once."""
        form = self._forms.pop("state:" + state, None)
        return form if form is not None and form.until > _now() else None

    def _sweep(self) -> None:
        now = _now()
        for key in [k for k, f in self._forms.items() if f.until <= now]:
            del self._forms[key]
        while len(self._forms) >= KEPT_AT_MOST:
            del self._forms[next(iter(self._forms))]


class SignIns:
    def __init__(
        self, hub: Hub, store: SessionStore, policy: SignInPolicy, admin_fingerprint: str
    ) -> None:
        self.hub = hub
        self.store = store
        self.policy = policy
        self.admin_fingerprint = admin_fingerprint
        self.kept = KeptForms()  # forms carried across a sign-in at the provider

    async def sign_in_person(self, person: Person) -> tuple[str, ConsoleSession]:
        """A new session for `person`; `NoHubUser` if they are no administrator and no
        hub user is theirs."""
        role = role_of(person, self.policy)
        user_id = await self.hub.store_io(
            self.store.user_for_person, person.object_id, person.names
        )
        if user_id is None and role is Role.USER:
            raise NoHubUser(person)
        session = ConsoleSession(role, user_id, OIDC, person.shown_as, person.issuer)
        return await self._open(session, None), session

    async def sign_in_admin(self) -> tuple[str, ConsoleSession]:
        session = ConsoleSession(Role.ADMIN, None, ADMIN_TOKEN, "administrator", None)
        return await self._open(session, self.admin_fingerprint), session

    async def _open(self, session: ConsoleSession, fingerprint: str | None) -> str:
        session_id = secrets.token_urlsafe(32)
        now = _now()
        record = SessionRecord(
            id_hash=_hash(session_id),
            role=session.role.value,
            user_id=session.user_id,
            method=session.method,
            subject=session.subject,
            provider=session.provider,
            admin_fingerprint=fingerprint,
            created_at=now,
            expires_at=now + SESSION_LIFETIME,
        )
        await self.hub.store_io(self.store.open, record)
        # Sessions nobody signed out of: gone once expired, swept at each sign-in.
        await self.hub.store_io(self.store.prune, now)
        return session_id

    async def session(self, session_id: str) -> ConsoleSession | None:
        record = await self.hub.store_io(self.store.find, _hash(session_id), _now())
        if record is None:
            return None
        if record.method == ADMIN_TOKEN and not secrets.compare_digest(
            record.admin_fingerprint or "", self.admin_fingerprint
        ):
            return None  # opened with an admin token that is no longer the admin token
        return ConsoleSession(
            Role(record.role), record.user_id, record.method, record.subject, record.provider
        )

    async def sign_out(self, session_id: str) -> None:
        await self.hub.store_io(self.store.close, _hash(session_id))

    async def prune(self) -> int:
        return await self.hub.store_io(self.store.prune, _now())
