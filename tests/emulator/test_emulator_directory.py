"""Conformance of the emulator's directory paths with Microsoft's documentation.

user-list: default page 100, `$top` 1..999, `@odata.nextLink`; user-delta /
delta-query-overview: pages then `@odata.deltaLink`, later only changes, `@removed`
with reason "changed" | "deleted", `$deltatoken=latest`; user-get by id or UPN;
json-batching: at most 20; group-list-members; throttling: 429 with Retry-After.
"""

from __future__ import annotations

from typing import Any

import httpx

from tests.emulator.support import app_token


def add(control: httpx.Client, count: int, **fields: Any) -> None:
    users = [{"id": f"u{n:04d}", "displayName": f"User {n}",
              "userPrincipalName": f"u{n}@contoso.com", **fields}
             for n in range(count)]  # fmt: skip
    assert control.post("/_emulator/directory/users/bulk", json={"users": users}).is_success


def get(control: httpx.Client, token: str, link: str) -> dict[str, Any]:
    path = link.split("/v1.0", 1)[1] if "://" in link else link
    response = control.get("/v1.0" + path, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


def test_list_pages_by_100_and_top_is_1_to_999(control: httpx.Client) -> None:
    add(control, 250)
    token = app_token(control)
    first = get(control, token, "/users")
    assert len(first["value"]) == 100 and "@odata.nextLink" in first
    assert set(first["value"][0]) >= {"id", "displayName", "userPrincipalName", "mail"}
    assert "accountEnabled" not in first["value"][0]
    seen = [u["id"] for u in first["value"]]
    link = first["@odata.nextLink"]
    while link:
        page = get(control, token, link)
        seen += [u["id"] for u in page["value"]]
        link = page.get("@odata.nextLink")
    assert len(seen) == len(set(seen)) == 250
    headers = {"Authorization": f"Bearer {token}"}
    for bad in ("0", "1000"):
        refused = control.get(f"/v1.0/users?$top={bad}", headers=headers)
        assert refused.status_code == 400 and "between 1 and 999" in refused.text
    assert len(get(control, token, "/users?$top=999")["value"]) == 250
    chosen = get(control, token, "/users?$select=id,accountEnabled&$top=1")["value"][0]
    assert set(chosen) == {"id", "accountEnabled"}


def test_delta_pages_then_returns_only_changes_and_removals(control: httpx.Client) -> None:
    add(control, 150)
    token = app_token(control)
    page = get(control, token, "/users/delta?$select=id,displayName")
    count = len(page["value"])
    while "@odata.nextLink" in page:
        assert "@odata.deltaLink" not in page  # never both on one page
        page = get(control, token, page["@odata.nextLink"])
        count += len(page["value"])
    assert count == 150
    delta = page["@odata.deltaLink"]
    assert get(control, token, delta)["value"] == []
    control.patch("/_emulator/directory/users/u0001", json={"displayName": "Renamed"})
    control.delete("/_emulator/directory/users/u0002")
    control.delete("/_emulator/directory/users/u0003?permanent=true")
    changes = get(control, token, delta)
    assert {"id": "u0001", "displayName": "Renamed"} in changes["value"]
    assert {"id": "u0002", "@removed": {"reason": "changed"}} in changes["value"]
    assert {"id": "u0003", "@removed": {"reason": "deleted"}} in changes["value"]
    latest = get(control, token, "/users/delta?$deltatoken=latest")
    assert latest["value"] == [] and "@odata.deltaLink" in latest


def test_an_updated_user_comes_with_its_changed_properties_a_new_one_whole(
    control: httpx.Client,
) -> None:
    """delta-query-overview: updated instances "with at least the properties that have
    been updated"; newly created ones in their standard representation."""
    add(control, 2)
    token = app_token(control)
    select = "id,displayName,mail,accountEnabled"
    page = get(control, token, f"/users/delta?$select={select}")
    while "@odata.nextLink" in page:
        page = get(control, token, page["@odata.nextLink"])
    delta = page["@odata.deltaLink"]
    control.patch("/_emulator/directory/users/u0000", json={"mail": "new@contoso.com"})
    control.patch("/_emulator/directory/users/u0001", json={"groups": []})  # not a property
    new = {"id": "u0009", "displayName": "New", "userPrincipalName": "n@contoso.com"}
    control.post("/_emulator/directory/users", json=new)
    changes = {item["id"]: item for item in get(control, token, delta)["value"]}
    assert changes["u0000"] == {"id": "u0000", "mail": "new@contoso.com"}
    assert set(changes["u0009"]) == {"id", "displayName", "mail", "accountEnabled"}
    assert "u0001" not in changes


def test_a_delta_pages_by_what_each_request_prefers(control: httpx.Client) -> None:
    add(control, 300)
    token = app_token(control)
    latest = get(control, token, "/users/delta?$deltatoken=latest")["@odata.deltaLink"]
    for n in range(250):
        control.patch(f"/_emulator/directory/users/u{n:04d}", json={"displayName": f"R{n}"})
    path = latest.split("/v1.0", 1)[1]
    default = get(control, token, path)
    assert len(default["value"]) == 100 and "@odata.nextLink" in default
    headers = {"Authorization": f"Bearer {token}", "Prefer": "odata.maxpagesize=999"}
    larger = control.get("/v1.0" + path, headers=headers).json()
    assert len(larger["value"]) == 250 and "@odata.deltaLink" in larger
    # a nextLink followed with the preference: the rest in one page
    next_path = default["@odata.nextLink"].split("/v1.0", 1)[1]
    rest = control.get("/v1.0" + next_path, headers=headers).json()
    assert len(rest["value"]) == 150 and "@odata.deltaLink" in rest


def test_get_by_upn_group_members_and_batch(control: httpx.Client) -> None:
    add(control, 3)
    control.post("/_emulator/directory/groups", json={"id": "g1", "displayName": "Sales"})
    control.patch("/_emulator/directory/users/u0001", json={"groups": ["g1"]})
    token = app_token(control)
    assert get(control, token, "/users/u1@contoso.com")["id"] == "u0001"
    members = get(control, token, "/groups/g1/members?$select=id")["value"]
    assert [m["id"] for m in members] == ["u0001"]
    requests = [{"id": str(i), "method": "GET", "url": f"/users/u{i}@contoso.com"}
                for i in range(21)]  # fmt: skip
    headers = {"Authorization": f"Bearer {token}"}
    too_many = control.post("/v1.0/$batch", json={"requests": requests}, headers=headers)
    assert too_many.status_code == 400
    answer = control.post("/v1.0/$batch", json={"requests": requests[:4]}, headers=headers)
    statuses = {r["id"]: r["status"] for r in answer.json()["responses"]}
    assert statuses == {"0": 200, "1": 200, "2": 200, "3": 404}
    # An inner request's URL is percent-encoded as any URL is (the `@` of a UPN).
    encoded = [{"id": "1", "method": "GET", "url": "/users/u1%40contoso.com?$select=id"}]
    answer = control.post("/v1.0/$batch", json={"requests": encoded}, headers=headers)
    assert answer.json()["responses"][0]["body"]["id"] == "u0001"


def test_directory_requests_are_throttled_with_retry_after(control: httpx.Client) -> None:
    """3,500 units per 10 s: in batches of 20 (each inner request costs its unit) the
    budget is spent in a few seconds even on a busy machine; then 429 + Retry-After."""
    add(control, 1)
    token = app_token(control)
    headers = {"Authorization": f"Bearer {token}"}
    requests = [{"id": str(i), "method": "GET", "url": "/users/u0000?$select=id"}
                for i in range(20)]  # fmt: skip
    admitted = 0
    refused: dict[str, Any] | None = None
    while refused is None and admitted < 20_000:
        answer = control.post("/v1.0/$batch", json={"requests": requests}, headers=headers)
        for inner in answer.json()["responses"]:
            if inner["status"] == 429 and refused is None:
                refused = inner
            elif inner["status"] == 200 and refused is None:
                admitted += 1
    assert refused is not None, f"no 429 after {admitted} directory requests"
    assert admitted >= 3500  # more only if part of the window slid by meanwhile
    assert float(refused["headers"]["Retry-After"]) > 0
