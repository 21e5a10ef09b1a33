"""Graph's directory paths under /v1.0 (issue 12): users, their delta, group members.

The facts followed, with the Learn pages they come from, are in `directory.py`. These
handlers are routes of `graph.GraphApi`, so a `$batch` runs them the same way.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from presencebridge.emulator.directory import (
    DirectoryError,
    DirectoryUser,
    Removal,
    decode_token,
    encode_token,
)

if TYPE_CHECKING:
    from presencebridge.emulator.state import Emulator

# graph.py's request and response types (graph.py imports this module: no cycle back).
GraphRequest = Any
GraphResponse = Any

SERVICE_ROOT = "https://graph.microsoft.com/v1.0"
FILTER = re.compile(r"^\s*(userPrincipalName|mail)\s+eq\s+'((?:[^']|'')*)'\s*$", re.IGNORECASE)
Handler = Callable[[Any, dict[str, str]], Awaitable[Any]]


class DirectoryApi:
    def __init__(self, emulator: Emulator, errors: Any) -> None:
        self.emulator = emulator
        self.errors = errors  # the graph module: GraphError, GraphResponse

    def routes(self) -> list[tuple[str, str, str, Handler, bool]]:
        return [
            ("GET", r"/users", "/users", self.list_users, False),
            ("GET", r"/users/delta", "/users/delta", self.delta, False),
            ("GET", r"/users/(?P<id>[^/]+)", "/users/{id}", self.get_user, False),
            ("GET", r"/groups", "/groups", self.list_groups, False),
            ("GET", r"/groups/(?P<gid>[^/]+)/members", "/groups/{id}/members",
             self.group_members, False),
        ]  # fmt: skip

    # -- checks ---------------------------------------------------------------------------

    def _admit(self, request: GraphRequest, role: str) -> None:
        who = request.principal
        roles = who.roles if who.kind == "app" else who.scopes
        if not roles & {role, "Directory.Read.All"}:
            raise self.errors.GraphError(
                403,
                "Authorization_RequestDenied",
                f"Insufficient privileges to complete the operation (needs {role}).",
            )
        emulator = self.emulator
        faults = emulator.directory.fail_after_pages
        if faults is not None:
            if faults <= 0:
                emulator.stats.injected["503"] += 1
                raise self.errors.GraphError(503, "serviceNotAvailable", "Service unavailable.")
            emulator.directory.fail_after_pages = faults - 1
        wait = emulator.directory_budget.admit(
            who.app_id, who.tenant_id, emulator.now().timestamp()
        )
        if wait is not None:
            emulator.stats.throttled += 1
            raise self.errors.GraphError(
                429,
                "TooManyRequests",
                "Too many requests: the directory's resource units for this application "
                "and tenant are used up.",
                {"Retry-After": str(max(1, round(wait)))},
            )

    def _bad(self, error: DirectoryError) -> Exception:
        failure: Exception = self.errors.GraphError(400, "Request_BadRequest", str(error))
        return failure

    def _ok(self, body: dict[str, Any]) -> GraphResponse:
        response: GraphResponse = self.errors.GraphResponse(200, body)
        return response

    # -- users ------------------------------------------------------------------------------

    async def list_users(self, request: GraphRequest, params: dict[str, str]) -> GraphResponse:
        self._admit(request, "User.Read.All")
        directory = self.emulator.directory
        query = request.params
        try:
            if "$skiptoken" in query:
                state = decode_token(query["$skiptoken"])
            else:
                state = {"s": ",".join(directory.select(query.get("$select"))),
                         "t": directory.top(query.get("$top")), "a": ""}  # fmt: skip
            select = tuple(state["s"].split(","))
            if "$filter" in query:
                return self._filtered(query["$filter"], select)
            entries, after = directory.page(str(state["a"]), int(state["t"]), None, 1 << 62)
        except (DirectoryError, KeyError, TypeError) as error:
            raise self._bad(DirectoryError(str(error))) from None
        body: dict[str, Any] = {
            "@odata.context": f"{SERVICE_ROOT}/$metadata#users({state['s']})",
            "value": [e.project(select) for e in entries if isinstance(e, DirectoryUser)],
        }
        if after is not None:
            token = encode_token({**state, "a": after})
            body["@odata.nextLink"] = f"{SERVICE_ROOT}/users?$skiptoken={token}"
        return self._ok(body)

    def _filtered(self, raw: str, select: tuple[str, ...]) -> GraphResponse:
        found = FILTER.match(raw)
        if found is None:
            raise DirectoryError(
                "Unsupported query: the emulator knows $filter=userPrincipalName eq '…' and "
                "mail eq '…'."
            )
        name, value = found.group(1), found.group(2).replace("''", "'").lower()
        users = self.emulator.directory.users.values()
        if name.lower() == "mail":
            value_of: Callable[[DirectoryUser], str] = lambda u: (u.mail or "").lower()  # noqa: E731
        else:
            value_of = lambda u: u.userPrincipalName.lower()  # noqa: E731
        hits = [u.project(select) for u in users if value_of(u) == value]
        return self._ok({"@odata.context": f"{SERVICE_ROOT}/$metadata#users", "value": hits})

    async def get_user(self, request: GraphRequest, params: dict[str, str]) -> GraphResponse:
        self._admit(request, "User.Read.All")
        directory = self.emulator.directory
        try:
            select = directory.select(request.params.get("$select"))
        except DirectoryError as error:
            raise self._bad(error) from None
        user = directory.find(params["id"])
        if user is None:
            raise self.errors.GraphError(
                404,
                "Request_ResourceNotFound",
                f"Resource '{params['id']}' does not exist or one of its queried reference-"
                "property objects are not present.",
            )
        return self._ok({"@odata.context": f"{SERVICE_ROOT}/$metadata#users/$entity",
                         **user.project(select)})  # fmt: skip

    async def delta(self, request: GraphRequest, params: dict[str, str]) -> GraphResponse:
        """First round: every user, paged, then a deltaLink; with `$deltatoken`: what
        changed since it was issued. Page size: Graph picks it; here 100 by default, or
        `Prefer: odata.maxpagesize=N` (at most 999) on each request."""
        self._admit(request, "User.Read.All")
        directory = self.emulator.directory
        query = request.params
        try:
            state = self._delta_state(query, request.headers.get("prefer", ""))
            select = tuple(state["s"].split(","))
            since = None if state["f"] is None else int(state["f"])
            entries, after = directory.page(
                str(state["a"]), int(state["t"]), since, int(state["u"])
            )
        except (DirectoryError, KeyError, TypeError, ValueError) as error:
            raise self._bad(DirectoryError(str(error))) from None
        body: dict[str, Any] = {
            "@odata.context": f"{SERVICE_ROOT}/$metadata#users({state['s']})",
            "value": [_delta_item(e, select, since) for e in entries],
        }
        if after is not None:
            token = encode_token({**state, "a": after})
            body["@odata.nextLink"] = f"{SERVICE_ROOT}/users/delta?$skiptoken={token}"
        else:
            token = encode_token({"s": state["s"], "f": state["u"], "t": state["t"]})
            body["@odata.deltaLink"] = f"{SERVICE_ROOT}/users/delta?$deltatoken={token}"
        return self._ok(body)

    def _delta_state(self, query: dict[str, str], prefer: str) -> dict[str, Any]:
        directory = self.emulator.directory
        size = re.search(r"odata\.maxpagesize=(\d+)", prefer)
        top = min(999, max(1, int(size.group(1)))) if size else 100
        if "$skiptoken" in query:
            return {**decode_token(query["$skiptoken"]), **({"t": top} if size else {})}
        if query.get("$deltatoken") == "latest":
            # "Sync from now" (delta-query-overview): no resources, only a deltaLink.
            select = ",".join(directory.select(query.get("$select")))
            return {"s": select, "f": directory.change, "t": 100, "a": "~", "u": directory.change}
        if "$deltatoken" in query:
            previous = decode_token(query["$deltatoken"])
            return {**previous, "a": "", "u": directory.change, **({"t": top} if size else {})}
        select = ",".join(directory.select(query.get("$select")))
        return {"s": select, "f": None, "t": top, "a": "", "u": directory.change}

    # -- groups -----------------------------------------------------------------------------

    async def list_groups(self, request: GraphRequest, params: dict[str, str]) -> GraphResponse:
        self._admit(request, "GroupMember.Read.All")
        groups = sorted(self.emulator.directory.groups.values(), key=lambda g: g.id)
        value = [{"id": g.id, "displayName": g.displayName} for g in groups]
        return self._ok({"@odata.context": f"{SERVICE_ROOT}/$metadata#groups", "value": value})

    async def group_members(self, request: GraphRequest, params: dict[str, str]) -> GraphResponse:
        self._admit(request, "GroupMember.Read.All")
        directory = self.emulator.directory
        group = directory.groups.get(params["gid"])
        if group is None:
            raise self.errors.GraphError(
                404, "Request_ResourceNotFound", f"Resource '{params['gid']}' does not exist."
            )
        query = request.params
        try:
            state: dict[str, Any] = (
                decode_token(query["$skiptoken"])
                if "$skiptoken" in query
                else {"t": directory.top(query.get("$top")), "a": ""}
            )
        except DirectoryError as error:
            raise self._bad(error) from None
        ordered = sorted(m for m in group.members if m > str(state["a"]))
        chunk = ordered[: int(state["t"])]
        body: dict[str, Any] = {
            "@odata.context": f"{SERVICE_ROOT}/$metadata#directoryObjects(id)",
            "value": [{"@odata.type": "#microsoft.graph.user", "id": m} for m in chunk],
        }
        if len(ordered) > len(chunk):
            token = encode_token({**state, "a": chunk[-1]})
            body["@odata.nextLink"] = (
                f"{SERVICE_ROOT}/groups/{quote(group.id)}/members?$skiptoken={token}"
            )
        return self._ok(body)


def _delta_item(
    entry: DirectoryUser | Removal, select: tuple[str, ...], since: int | None
) -> dict[str, Any]:
    if isinstance(entry, Removal):
        return {"id": entry.id, "@removed": {"reason": entry.reason}}
    return entry.project(select) if since is None else entry.project_changes(select, since)
