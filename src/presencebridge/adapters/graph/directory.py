"""Entra ID as a directory source (issue 12), over Microsoft Graph with the app's token.

Permissions: `User.Read.All` (application), and `GroupMember.Read.All` when rules name
groups. What Microsoft documents and we rely on (the Graph emulator follows the same,
see `emulator/directory.py`):

* First run: `GET /users/delta?$deltatoken=latest` for a deltaLink from now on ("sync
  from now", delta-query-overview), then `GET /users?$select=…&$top=999` through every
  `@odata.nextLink` (user-list: default page 100, at most 999). Asking for the link
  first means a change made during the read shows up again in the next delta: harmless,
  the sync is idempotent; the other order could miss it.
* Later runs: the stored `@odata.deltaLink`, through every nextLink up to the new
  deltaLink (user-delta), each page asked for with `Prefer: odata.maxpagesize=999`
  (delta-query-overview; else Graph pages by 100); an item with `@removed` is a
  removed user. A deltaLink Graph no longer takes (400, `syncStateNotFound` after 7
  days) starts a full read again.
* Group membership: `GET /groups/{id}/members?$select=id&$top=999` for the groups the
  rules name (group-list-members: application permission `GroupMember.Read.All`).
  `/users/{id}/memberOf` would need `Directory.Read.All` for an app (user-list-memberof)
  and one request per user; `$expand=memberOf` returns at most 20 related objects.
  Groups named by display name are found through `GET /groups?$select=id,displayName`.
* Any request that fails after the retry policy (`GraphClient`: 429 with Retry-After,
  5xx, network) fails the whole read: `DirectoryUnavailable`, and the sync changes
  nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

import httpx

from presencebridge.adapters.graph.auth import TokenError
from presencebridge.adapters.graph.client import GraphClient, GraphError
from presencebridge.core.ports import (
    DirectoryPerson,
    DirectoryRead,
    DirectoryUnavailable,
    TeamsAccount,
)

BASE_SELECT = (
    "id",
    "displayName",
    "userPrincipalName",
    "mail",
    "accountEnabled",
    "businessPhones",
    "mobilePhone",
)
PAGE = 999
# Graph picks a delta's page size (100 for users) unless asked for more (delta-query-
# overview: `Prefer: odata.maxpagesize`); 1,000 changes are then 2 requests, not 10.
PREFER_PAGE = {"Prefer": f"odata.maxpagesize={PAGE}"}
MAX_BATCH = 20  # json-batching: at most 20 requests in one $batch
FAILURES = (GraphError, httpx.HTTPError, TokenError, ValueError, KeyError, TypeError)


def select_of(extension_attribute: str | None, attributes: Sequence[str]) -> tuple[str, ...]:
    """`$select` for the base fields, the extension attribute (`employeeId`, or
    `onPremisesExtensionAttributes/extensionAttribute1`: its top-level property is
    selected) and the attributes rules look at."""
    names = list(BASE_SELECT)
    for name in (extension_attribute, *attributes):
        if name:
            top = name.split("/", 1)[0]
            if top not in names:
                names.append(top)
    return tuple(names)


def attribute_value(item: dict[str, Any], name: str) -> str | None:
    value: Any = item
    for part in name.split("/"):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    if value is None or isinstance(value, (dict, list)):
        return None
    return str(value)


def person_of(
    item: dict[str, Any], extension_attribute: str | None, attributes: Sequence[str]
) -> DirectoryPerson:
    numbers = [str(n) for n in item.get("businessPhones") or () if n]
    if item.get("mobilePhone"):
        numbers.append(str(item["mobilePhone"]))
    extension = attribute_value(item, extension_attribute) if extension_attribute else None
    values = tuple(
        (name, value) for name in attributes if (value := attribute_value(item, name)) is not None
    )
    key = str(item["id"])
    return DirectoryPerson(
        key=key,
        display_name=str(item.get("displayName") or item.get("userPrincipalName") or key),
        upn=item.get("userPrincipalName"),
        mail=item.get("mail"),
        enabled=item.get("accountEnabled") is not False,
        extensions=tuple(e.strip() for e in (extension or "").split(";") if e.strip()),
        numbers=tuple(numbers),
        attributes=values,
        teams_user_id=key,  # the Entra object id is the Teams user id
    )


class EntraDirectory:
    """`DirectorySource` over Graph; `groups` are the group ids or names rules name."""

    def __init__(
        self,
        client: GraphClient,
        name: str = "entra",
        extension_attribute: str | None = None,
        attributes: Sequence[str] = (),
        groups: Sequence[str] = (),
    ) -> None:
        self.client = client
        self.name = name
        self.extension_attribute = extension_attribute
        self.attributes = tuple(attributes)
        self.groups = tuple(groups)
        self.select = ",".join(select_of(extension_attribute, self.attributes))

    async def aclose(self) -> None:
        await self.client.aclose()

    def follow_rules(self, attributes: Sequence[str], groups: Sequence[str]) -> bool:
        """The rules changed (console, API): read their attributes and groups from now
        on. True when `$select` gained a property: the stored deltaLink was made with
        the old one, and the people read before lack the new values; read all again."""
        before = set(self.select.split(","))
        self.attributes = tuple(sorted(attributes))
        self.groups = tuple(sorted(groups))
        self.select = ",".join(select_of(self.extension_attribute, self.attributes))
        return not set(self.select.split(",")) <= before

    async def read(self, cursor: str | None) -> DirectoryRead:
        try:
            if cursor is not None:
                try:
                    read = await self._delta(cursor)
                except GraphError as error:
                    if error.status != 400:
                        raise
                    read = await self._full()  # the deltaLink expired: start again
            else:
                read = await self._full()
            if not self.groups:
                return read
            memberships = await self._memberships()
        except FAILURES as error:
            raise DirectoryUnavailable(f"Entra ID could not be read: {error}") from None
        return DirectoryRead(read.people, read.full, read.removed, read.cursor, memberships)

    def _person(self, item: dict[str, Any]) -> DirectoryPerson:
        return person_of(item, self.extension_attribute, self.attributes)

    async def _full(self) -> DirectoryRead:
        latest = await self.client.get_json(
            "users/delta", f"/users/delta?$select={self.select}&$deltatoken=latest"
        )
        cursor = str(latest["@odata.deltaLink"])
        people: list[DirectoryPerson] = []
        link: str | None = f"/users?$select={self.select}&$top={PAGE}"
        while link is not None:
            page = await self.client.get_json("users", link)
            people.extend(self._person(item) for item in page["value"])
            link = page.get("@odata.nextLink")
        return DirectoryRead(tuple(people), True, (), cursor)

    async def _delta(self, cursor: str) -> DirectoryRead:
        items: list[dict[str, Any]] = []
        removed: list[str] = []
        link = cursor
        while True:
            page = await self.client.get_json("users/delta", link, PREFER_PAGE)
            for item in page["value"]:
                if "@removed" in item:
                    removed.append(str(item["id"]))
                else:
                    items.append(item)
            if "@odata.nextLink" not in page:
                break
            link = str(page["@odata.nextLink"])
        whole, gone = await self._whole(items)
        people = tuple(self._person(item) for item in whole)
        return DirectoryRead(people, False, (*removed, *gone), str(page["@odata.deltaLink"]))

    async def _whole(self, items: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
        """Delta items are updated users "with at least the properties that have been
        updated" (delta-query-overview), not whole users: those missing a selected
        property are read again, 20 to a `$batch`. One gone meanwhile counts as removed."""
        wanted = self.select.split(",")
        partial = [str(i["id"]) for i in items if any(n not in i for n in wanted)]
        if not partial:
            return items, []
        read: dict[str, dict[str, Any]] = {}
        gone: list[str] = []
        for start in range(0, len(partial), MAX_BATCH):
            requests = [
                {"id": key, "method": "GET", "url": f"/users/{quote(key)}?$select={self.select}"}
                for key in partial[start : start + MAX_BATCH]
            ]
            answer = await self.client.post_json("$batch", "/$batch", {"requests": requests})
            for response in answer["responses"]:
                status, key = int(response["status"]), str(response["id"])
                if status == 200:
                    read[key] = response["body"]
                elif status == 404:
                    gone.append(key)
                else:
                    raise GraphError(status, f"reading changed user {key!r} again failed")
        whole = [read.get(str(i["id"]), i) for i in items if str(i["id"]) not in gone]
        return whole, gone

    async def _memberships(self) -> dict[str, tuple[str, ...]]:
        """person key -> the rule groups they are a direct member of (by id and by name)."""
        names = await self._group_names()
        members: dict[str, list[str]] = {}
        for wanted in self.groups:
            group_id = wanted if wanted in names else _by_name(names, wanted)
            if group_id is None:
                raise GraphError(404, f"no group {wanted!r} in Entra ID (rules name it)")
            link: str | None = f"/groups/{quote(group_id)}/members?$select=id&$top={PAGE}"
            while link is not None:
                page = await self.client.get_json("groups/members", link)
                for item in page["value"]:
                    members.setdefault(str(item["id"]), []).extend((group_id, names[group_id]))
                link = page.get("@odata.nextLink")
        return {k: tuple(dict.fromkeys(v)) for k, v in members.items()}

    async def _group_names(self) -> dict[str, str]:
        names: dict[str, str] = {}
        link: str | None = "/groups?$select=id,displayName"
        while link is not None:
            page = await self.client.get_json("groups", link)
            names.update({str(g["id"]): str(g.get("displayName") or "") for g in page["value"]})
            link = page.get("@odata.nextLink")
        return names


def _by_name(names: dict[str, str], wanted: str) -> str | None:
    for group_id, name in names.items():
        if name.casefold() == wanted.casefold():
            return group_id
    return None


class GraphTeamsLookup:
    """`TeamsIdLookup`: Entra object ids by UPN or mail, 20 lookups per `$batch`
    (json-batching). A UPN is looked up as `/users/{upn}` (user-get takes the id or the
    userPrincipalName); a 404 there is asked again as `$filter=mail eq '…'`."""

    def __init__(self, client: GraphClient) -> None:
        self.client = client

    async def lookup(self, names: Sequence[str]) -> list[TeamsAccount]:
        found: list[TeamsAccount] = []
        try:
            for start in range(0, len(names), MAX_BATCH):
                found.extend(await self._batch(names[start : start + MAX_BATCH]))
        except FAILURES as error:
            raise DirectoryUnavailable(f"Teams accounts could not be looked up: {error}") from None
        return found

    async def _batch(self, names: Sequence[str]) -> list[TeamsAccount]:
        requests = []
        for index, name in enumerate(names):
            escaped = name.replace("'", "''")
            by_mail = f"/users?$filter=mail eq '{quote(escaped)}'&$select=id"
            requests.append({"id": f"u{index}", "method": "GET", "url": f"/users/{quote(name)}"})
            requests.append({"id": f"m{index}", "method": "GET", "url": by_mail})
        answers: dict[str, dict[str, Any]] = {}
        for start in range(0, len(requests), MAX_BATCH):
            body = {"requests": requests[start : start + MAX_BATCH]}
            result = await self.client.post_json("$batch", "/$batch", body)
            answers.update({str(r["id"]): r for r in result["responses"]})
        return [
            self._account(name, answers[f"u{i}"], answers[f"m{i}"]) for i, name in enumerate(names)
        ]

    @staticmethod
    def _account(name: str, by_upn: dict[str, Any], by_mail: dict[str, Any]) -> TeamsAccount:
        for answer in (by_upn, by_mail):
            status = int(answer["status"])
            if status == 200:
                body = answer.get("body") or {}
                value = body.get("value") if "value" in body else [body]
                if value:
                    return TeamsAccount(name, str(value[0]["id"]))
            elif status != 404:
                raise GraphError(status, f"looking up {name!r} failed")
        return TeamsAccount(name, None)
