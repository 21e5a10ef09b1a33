"""Console sign-in and CSRF protection.

* The session is Starlette's signed cookie. Its key is derived from the admin
  token with HKDF, so a restart keeps sessions valid and changing the admin token
  ends them all. The cookie is HttpOnly and SameSite=Strict.
* The session remembers a fingerprint of the admin token it was opened with (an
  HMAC, never the token), so a signature alone is not a sign-in.
* Every session (also before sign-in, for the login form) has a random CSRF token.
  Every state-changing request (POST) must carry it, as the form field
  `csrf_token` or the header `X-CSRF-Token`, and must not come from another
  origin; otherwise 403 naming the problem.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from typing import Any
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from starlette.requests import HTTPConnection, Request

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


def token_fingerprint(admin_token: str) -> str:
    return hmac.new(admin_token.encode(), b"console sign-in v1", hashlib.sha256).hexdigest()[:32]


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


def signed_in(connection: HTTPConnection) -> bool:
    data = session(connection)
    admin_token: str = connection.app.state.admin_token
    fingerprint = data.get("auth")
    at = data.get("at")
    if not isinstance(fingerprint, str) or not isinstance(at, int | float):
        return False
    if time.time() - at > SESSION_MAX_AGE:
        return False
    return hmac.compare_digest(fingerprint, token_fingerprint(admin_token))


def sign_in(request: Request) -> None:
    """A fresh session (new CSRF token: no fixation) for the administrator."""
    data = session(request)
    data.clear()
    data["auth"] = token_fingerprint(request.app.state.admin_token)
    data["at"] = int(time.time())
    data["csrf"] = secrets.token_urlsafe(32)


def sign_out(request: Request) -> None:
    session(request).clear()


def same_origin(connection: HTTPConnection) -> bool:
    """No Origin header (older clients, same-origin GETs) or one naming this host."""
    origin = connection.headers.get("origin")
    if origin is None:
        return True
    host = connection.headers.get("host", "")
    return origin != "null" and urlsplit(origin).netloc.lower() == host.lower()


def csrf_problem(request: Request, submitted: str | None) -> str | None:
    """Why this state-changing request is refused, in plain words; None if it may pass."""
    if not same_origin(request):
        return "cross-origin request refused"
    expected = session(request).get("csrf")
    if not submitted:
        return "CSRF token missing"
    if not isinstance(expected, str) or not hmac.compare_digest(
        submitted.encode(), expected.encode()
    ):
        return "CSRF token invalid"
    return None


def safe_next(target: str | None, default: str = "/") -> str:
    """Only paths on this site: never `//host` or a scheme (no open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    return target
