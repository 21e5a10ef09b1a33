"""Who may do what: the authorisation matrix, one table for the API and the console.

Every route of the server is in `ACCESS` (the app refuses to start otherwise, and
tests/hostile/test_authorization.py asks every route as every kind of caller):

* `open`: anyone (the probes; Graph's webhook, which brings no token and is guarded by
  its own checks; the sign-in pages).
* `signed-in`: anyone signed in to the console or holding a valid token (the presence
  board, read-only; who am I).
* `self`: an administrator, or the user named in the path acting for themself (a
  console session, the user's agent token or personal token).
* `admin`: an administrator (the admin token, or a console session whose role is
  administrator: a group or app role named in `[sign_in]`, or the break-glass token).
* `agent`: the user's agent token only (the desktop agent's WebSocket).

The README's "Who may do what" renders this table (`matrix_markdown`); a test keeps
them equal.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from fastapi.routing import iter_route_contexts
from starlette.routing import BaseRoute, Mount, WebSocketRoute, compile_path
from starlette.types import Scope

# How a caller proved who they are (names, not secrets).
ADMIN_TOKEN = "admin-token"  # noqa: S105
AGENT_TOKEN = "agent-token"  # noqa: S105
PERSONAL_TOKEN = "personal-token"  # noqa: S105
SESSION = "session"  # a console session (web/security.py)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: `via` says with what (a token's kind, or a console session)."""

    is_admin: bool
    user_id: str | None = None  # the user a token or session acts for
    via: str = ADMIN_TOKEN

    def may_act_for(self, user_id: str) -> bool:
        return self.is_admin or self.user_id == user_id

    def may_see(self, user_id: str) -> bool:
        """The presence stream: a console session shows the whole board (read-only); a
        token shows its own user only."""
        return self.via == SESSION or self.may_act_for(user_id)


class Access(StrEnum):
    OPEN = "open"
    SIGNED_IN = "signed-in"
    SELF = "self"
    ADMIN = "admin"
    AGENT = "agent"


OPEN, SIGNED_IN, SELF, ADMIN, AGENT = (
    Access.OPEN, Access.SIGNED_IN, Access.SELF, Access.ADMIN, Access.AGENT,
)  # fmt: skip

# fmt: off
ACCESS: Final[Mapping[str, Access]] = {
    # -- REST API (SPEC §7) ------------------------------------------------------------------
    "GET /api/v1/me": SIGNED_IN,
    "POST /api/v1/groups": ADMIN,
    "GET /api/v1/groups": ADMIN,
    "GET /api/v1/groups/{group}": ADMIN,
    "DELETE /api/v1/groups/{group}": ADMIN,
    "GET /api/v1/groups/{group}/settings": ADMIN,
    "PATCH /api/v1/groups/{group}/settings": ADMIN,
    "GET /api/v1/groups/{group}/templates": ADMIN,
    "POST /api/v1/groups/{group}/templates": ADMIN,
    "DELETE /api/v1/groups/{group}/templates/{name}": ADMIN,
    "POST /api/v1/users": ADMIN,
    "GET /api/v1/users": ADMIN,
    "GET /api/v1/users/{user_id}": SELF,
    "PATCH /api/v1/users/{user_id}": ADMIN,
    "DELETE /api/v1/users/{user_id}": ADMIN,
    "GET /api/v1/users/{user_id}/settings": SELF,
    "PATCH /api/v1/users/{user_id}/settings": SELF,
    "GET /api/v1/users/{user_id}/profiles": SELF,
    "POST /api/v1/users/{user_id}/profiles": SELF,
    "PUT /api/v1/users/{user_id}/profiles/order": SELF,
    "DELETE /api/v1/users/{user_id}/profiles/{name}": SELF,
    "PUT /api/v1/users/{user_id}/profile": SELF,
    "GET /api/v1/users/{user_id}/appointments": SELF,
    "POST /api/v1/users/{user_id}/appointments": SELF,
    "DELETE /api/v1/users/{user_id}/appointments/{appointment_id}": SELF,
    "GET /api/v1/users/{user_id}/presence": SELF,
    "GET /api/v1/users/{user_id}/history": SELF,
    "POST /api/v1/users/{user_id}/meetings": SELF,
    # A token never makes another token: the console's own page (a session) does.
    "POST /api/v1/users/{user_id}/agent-tokens": ADMIN,
    "GET /api/v1/users/{user_id}/agent-tokens": ADMIN,
    "DELETE /api/v1/users/{user_id}/agent-tokens/{token_id}": ADMIN,
    "POST /api/v1/users/{user_id}/personal-tokens": ADMIN,
    "GET /api/v1/users/{user_id}/personal-tokens": SELF,
    "DELETE /api/v1/users/{user_id}/personal-tokens/{token_id}": SELF,
    "POST /api/v1/telephony/events": ADMIN,
    "POST /api/v1/telephony/events/batch": ADMIN,
    "POST /api/v1/admin/clock": ADMIN,
    "GET /api/v1/admin/teams-sync": ADMIN,
    "POST /api/v1/admin/directory/sync": ADMIN,
    "GET /api/v1/admin/directory": ADMIN,
    "PUT /api/v1/admin/directory/{source}/rules": ADMIN,
    "DELETE /api/v1/admin/directory/{source}/rules": ADMIN,
    "POST /api/v1/admin/directory/{source}/rules/preview": ADMIN,
    "GET /api/v1/admin/webhooks": ADMIN,
    "POST /api/v1/admin/webhooks/{name}/dead/{entry_id}/retry": ADMIN,
    "DELETE /api/v1/admin/webhooks/{name}/dead/{entry_id}": ADMIN,
    "POST /api/v1/admin/users/import": ADMIN,
    "GET /api/v1/admin/users/export": ADMIN,
    "GET /api/v1/admin/cluster": ADMIN,
    "GET /api/v1/admin/service-accounts": ADMIN,
    "POST /api/v1/admin/service-accounts": ADMIN,
    "DELETE /api/v1/admin/service-accounts/{name}": ADMIN,
    "GET /api/v1/admin/audit": ADMIN,
    "WS /api/v1/presence/stream": SIGNED_IN,  # an agent's or person's token: their user only
    "WS /api/v1/agent/stream": AGENT,
    "POST /graph/notifications": OPEN,
    "GET /healthz": OPEN,
    "GET /metrics": OPEN,
    "GET /robots.txt": OPEN,
    "GET /openapi.json": OPEN,
    "GET /docs": OPEN,
    "GET /docs/oauth2-redirect": OPEN,
    "GET /redoc": OPEN,
    # -- the console -------------------------------------------------------------------------
    "GET /console/login": OPEN,
    "POST /console/login": OPEN,
    "GET /console/sso": OPEN,
    "GET /console/sso/callback": OPEN,
    "POST /console/logout": OPEN,
    "POST /console/lang": OPEN,
    "GET /": SIGNED_IN,
    "GET /console/directory.json": SIGNED_IN,
    "GET /console/board/health.json": SIGNED_IN,
    "GET /console/board.csv": SIGNED_IN,
    "WS /console/stream": SIGNED_IN,
    "GET /console/me": SIGNED_IN,
    "GET /console/users/{user_id}": SELF,
    "POST /console/users/{user_id}/profiles": SELF,
    "POST /console/users/{user_id}/profiles/move": SELF,
    "POST /console/users/{user_id}/profiles/order": SELF,
    "POST /console/users/{user_id}/profiles/delete": SELF,
    "POST /console/users/{user_id}/profile": SELF,
    "POST /console/users/{user_id}/dnd": SELF,
    "POST /console/users/{user_id}/appointments": SELF,
    "POST /console/users/{user_id}/appointments/{appointment_id}/delete": SELF,
    "POST /console/users/{user_id}/settings": SELF,
    "POST /console/users/{user_id}/tokens": SELF,
    "POST /console/users/{user_id}/tokens/revoke": SELF,
    "POST /console/users/{user_id}/personal-tokens": SELF,
    "POST /console/users/{user_id}/personal-tokens/revoke": SELF,
    "POST /console/users/{user_id}/directory": ADMIN,
    "POST /console/users/{user_id}/delete": ADMIN,
    "POST /console/users": ADMIN,
    "POST /console/users/import": ADMIN,
    "GET /console/users.csv": ADMIN,
    "GET /console/groups": ADMIN,
    "POST /console/groups": ADMIN,
    "GET /console/groups/{group_id}": ADMIN,
    "POST /console/groups/{group_id}/settings": ADMIN,
    "POST /console/groups/{group_id}/delete": ADMIN,
    "GET /console/groups/{group_id}/templates": ADMIN,
    "POST /console/groups/{group_id}/templates": ADMIN,
    "POST /console/groups/{group_id}/templates/active": ADMIN,
    "POST /console/groups/{group_id}/templates/delete": ADMIN,
    "GET /console/directory": ADMIN,
    "POST /console/directory/sync": ADMIN,
    "GET /console/directory/{name}/rules": ADMIN,
    "POST /console/directory/{name}/rules": ADMIN,
    "POST /console/directory/{name}/rules/reset": ADMIN,
    "GET /console/sync": ADMIN,
    "GET /console/webhooks": ADMIN,
    "POST /console/webhooks/dead": ADMIN,
    "GET /console/service-accounts": ADMIN,
    "POST /console/service-accounts": ADMIN,
    "POST /console/service-accounts/remove": ADMIN,
    "GET /console/tokens": ADMIN,
    "POST /console/tokens/revoke": ADMIN,
    "GET /console/audit": ADMIN,
    "GET /console/audit.csv": ADMIN,
}
# fmt: on


def route_key(scope: Scope) -> str:
    """`ACCESS`'s key for the route a request is for (the app's `RouteKeys`)."""
    keys: RouteKeys = scope["app"].state.route_keys
    return keys.key(scope)


def _plain(path: str) -> str:
    return re.sub(r":\w+}", "}", path)


def decide(access: Access, who: Principal | None, target_user: str | None) -> int | None:
    """None if `who` may; else 401 (nobody known) or 403 (known, not allowed)."""
    if access is Access.OPEN:
        return None
    if who is None:
        return 401
    if access is Access.AGENT:
        return None if who.via == AGENT_TOKEN else 403
    if access is Access.SIGNED_IN or who.is_admin:
        return None
    if access is Access.SELF and target_user is not None and who.user_id == target_user:
        return None
    return 403


def refusal(access: Access) -> str:
    if access is Access.ADMIN:
        return "this needs an administrator (the admin token or an administrator's sign-in)"
    if access is Access.AGENT:
        return "this needs an agent token"
    return "a user acts only for their own user"


class RouteKeys:
    """Every route's key and pattern; finds the key of a request's route. The most
    literal pattern wins (`/console/users/import` before `/console/users/{user_id}`)."""

    def __init__(self, routes: Iterable[BaseRoute]) -> None:
        entries: list[tuple[int, str, re.Pattern[str], str]] = []
        for route in iter_route_contexts(list(routes)):
            path = route.path
            if path is None or isinstance(route.original_route, Mount):
                continue
            regex, _, convertors = compile_path(path)
            kinds = (
                ["WS"]
                if isinstance(route.original_route, WebSocketRoute)
                else sorted(m for m in (route.methods or {"GET"}) if m != "HEAD")
            )
            for kind in kinds:
                entries.append((len(convertors), kind, regex, f"{kind} {_plain(path)}"))
        entries.sort(key=lambda entry: entry[0])
        self.entries = entries
        self.keys = {entry[3] for entry in entries}

    def key(self, scope: Scope) -> str:
        if scope["type"] == "websocket":
            kind = "WS"
        else:
            kind = "GET" if scope.get("method") == "HEAD" else str(scope.get("method"))
        path = scope.get("path", "")
        for _, entry_kind, regex, key in self.entries:
            if entry_kind == kind and regex.match(path):
                return key
        return f"{kind} {path}"  # no route: nothing to authorise (404 follows)


def check_complete(routes: Iterable[BaseRoute]) -> RouteKeys:
    """Every route has its row, and every row a route: a new route cannot be forgotten."""
    keys = RouteKeys(routes)
    missing = sorted(keys.keys - ACCESS.keys())
    stale = sorted(ACCESS.keys() - keys.keys)
    if missing or stale:
        raise RuntimeError(
            f"authorisation table: routes without a row {missing}, rows without a route {stale}"
        )
    return keys


def matrix_markdown() -> str:
    """The table as the README shows it."""
    lines = ["| route | who may |", "|---|---|"]
    lines += [f"| `{key}` | {access.value} |" for key, access in ACCESS.items()]
    return "\n".join(lines)
