"""Console sessions and CSRF protection.

* Starlette's signed cookie carries the CSRF token, flash messages, the sign-in flow in
  progress and, once signed in, a random session id. The session itself (role, user,
  how) lives in the store (`service.sign_in`): signing out, deleting the user or
  changing the admin token ends it everywhere. The cookie-signing key is derived from
  the admin token with HKDF, so a restart keeps sessions and a new token ends them.
* The cookie is HttpOnly and SameSite=Lax: the provider's redirect back to the console
  is a cross-site navigation, which a Strict cookie would not survive (the flow's
  `state` would be lost). Lax still keeps the cookie off cross-site POSTs, and every
  POST must carry the session's CSRF token besides (form field `csrf_token` or header
  `X-CSRF-Token`) and must not come from another origin; otherwise 403 naming it, or,
  for a form of a session that has ended, the sign-in page (`session_lost`).
"""

from __future__ import annotations

import hmac
import secrets
from typing import Any
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from starlette.requests import HTTPConnection, Request

from presencebridge.api.access import SESSION, Principal
from presencebridge.service import audit
from presencebridge.service.sign_in import ConsoleSession, SignIns

SESSION_COOKIE = "pb_console"
SESSION_MAX_AGE = 12 * 3600
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"


def session_secret(admin_token: str) -> str:
    """The cookie-signing key: HKDF-SHA256 of the admin token (stable across restarts)."""
    derived = HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=b"presencebridge console",
        info=b"session cookie signing key v1",
    ).derive(admin_token.encode())
    return derived.hex()


def token_matches(given: str, admin_token: str) -> bool:
    return hmac.compare_digest(given.encode(), admin_token.encode())


def session(connection: HTTPConnection) -> dict[str, Any]:
    if "session" not in connection.scope:
        return {}
    data: dict[str, Any] = connection.session
    return data


def csrf_token(connection: HTTPConnection) -> str:
    """The session's CSRF token, made on first use."""
    data = session(connection)
    token = data.get("csrf")
    if not isinstance(token, str) or len(token) < 32:
        token = secrets.token_urlsafe(32)
        data["csrf"] = token
    return token


def _sign_ins(connection: HTTPConnection) -> SignIns | None:
    return getattr(connection.app.state, "sign_ins", None)


async def console_session(connection: HTTPConnection) -> ConsoleSession | None:
    """The signed-in session of this request (looked up once per request), or None."""
    state = connection.scope.setdefault("state", {})
    if "console_session" in state:
        found: ConsoleSession | None = state["console_session"]
        return found
    session_id = session(connection).get("sid")
    sign_ins = _sign_ins(connection)
    found = None
    if isinstance(session_id, str) and sign_ins is not None:
        found = await sign_ins.session(session_id)
    state["console_session"] = found
    return found


def principal_of(found: ConsoleSession | None) -> Principal | None:
    if found is None:
        return None
    return Principal(is_admin=found.is_admin, user_id=found.user_id, via=SESSION)


def actor_of(found: ConsoleSession) -> audit.Actor:
    """Who the audit log names for a session: the person as the provider named them
    (name or e-mail address), or "administrator" for the break-glass token."""
    return audit.Actor(audit.SESSION, found.subject)


def known_session(connection: HTTPConnection) -> ConsoleSession | None:
    """The session `console_session` found for this request (None before it ran)."""
    found: ConsoleSession | None = connection.scope.get("state", {}).get("console_session")
    return found


def signed_in(connection: HTTPConnection) -> bool:
    return known_session(connection) is not None


def begin_session(request: Request, session_id: str, found: ConsoleSession) -> None:
    """A fresh cookie session (new CSRF token: no fixation) holding the session id."""
    data = session(request)
    data.clear()
    data["sid"] = session_id
    data["csrf"] = secrets.token_urlsafe(32)
    request.scope.setdefault("state", {})["console_session"] = found


async def end_session(request: Request) -> ConsoleSession | None:
    """Sign out: the stored session is deleted, the cookie emptied; returns what ended."""
    found = await console_session(request)
    session_id = session(request).get("sid")
    sign_ins = _sign_ins(request)
    if isinstance(session_id, str) and sign_ins is not None:
        await sign_ins.sign_out(session_id)
    session(request).clear()
    request.scope.setdefault("state", {})["console_session"] = None
    return found


def same_origin(connection: HTTPConnection) -> bool:
    """No Origin header (older clients, same-origin GETs) or one naming this host."""
    origin = connection.headers.get("origin")
    if origin is None:
        return True
    host = connection.headers.get("host", "")
    return origin != "null" and urlsplit(origin).netloc.lower() == host.lower()


CROSS_ORIGIN = "cross-origin request refused"
CSRF_MISSING = "CSRF token missing"
CSRF_INVALID = "CSRF token invalid"


def csrf_problem(request: Request, submitted: str | None) -> str | None:
    """Why this state-changing request is refused, in plain words (one of the three
    above); None if it may pass. A token that is not the session's (`CSRF_INVALID`) is
    also what a form of an ended session sends: the session, and its token, are gone."""
    if not same_origin(request):
        return CROSS_ORIGIN
    expected = session(request).get("csrf")
    if not submitted:
        return CSRF_MISSING
    if not isinstance(expected, str) or not hmac.compare_digest(
        submitted.encode(), expected.encode()
    ):
        return CSRF_INVALID
    return None


def session_lost(connection: HTTPConnection) -> bool:
    """This browser had a session that is gone: the cookie names a session the store no
    longer has (signed out elsewhere, deleted), or it came but could not be read (signed
    with an earlier admin token, or too old). Call after `console_session`."""
    if signed_in(connection):
        return False
    data = session(connection)
    return "sid" in data or (SESSION_COOKIE in connection.cookies and not data)


def safe_next(target: str | None, default: str = "/") -> str:
    """Only paths on this site: never `//host`, a scheme, a backslash or a control
    character (browsers drop tabs and newlines: `/\t/host` would be `//host`)."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return default
    if "\\" in target or any(ord(c) < 0x20 or ord(c) == 0x7F for c in target):
        return default
    if urlsplit(target).scheme or urlsplit(target).netloc:
        return default
    return target
