"""CSV import and export of users against a real server (issue 12 part 7).

A dry run writes nothing; an import creates and updates through the hub (history source
`csv`); a file with bad lines is refused as a whole, naming every bad line, and a GET
afterwards shows that nothing was written.
"""

from __future__ import annotations

import csv
import io
from typing import Any

import httpx

from tests.support.server import make_user

IMPORT = "/api/v1/admin/users/import"
EXPORT = "/api/v1/admin/users/export"
CSV = {"Content-Type": "text/csv"}

FILE = (
    "id,display_name,group,teams_user_id,email,extensions,numbers\n"
    "anna,Anna Schmidt,hq,t-anna,anna@example.com,2101;2102,030 1234567;+49 171 2345678\n"
    'ben,"Müller, Ben",sales,,,2201,\n'
    "carla,Carla Wagner,hq,,carla@example.com,,0049 89 7654321\n"
)


def post(api: httpx.Client, text: str, dry_run: bool = False, bom: bool = False) -> httpx.Response:
    data = (b"\xef\xbb\xbf" if bom else b"") + text.encode()
    return api.post(IMPORT, params={"dry_run": str(dry_run).lower()}, content=data, headers=CSV)


def groups(api: httpx.Client, *names: str) -> None:
    for name in names:
        body = {"id": name, "name": name.upper()}
        assert api.post("/api/v1/groups", json=body).status_code == 201


def rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def user_ids(api: httpx.Client) -> list[str]:
    return [u["id"] for u in api.get("/api/v1/users").json()]


def test_dry_run_then_import_then_export_round_trip(api: httpx.Client) -> None:
    groups(api, "hq", "sales")
    answer = post(api, FILE, dry_run=True)
    assert answer.status_code == 200, answer.text
    plan: dict[str, Any] = answer.json()
    assert (plan["create"], plan["update"], plan["unchanged"]) == (3, 0, 0)
    assert [(line["line"], line["user"], line["action"]) for line in plan["lines"]] == [
        (2, "anna", "create"),
        (3, "ben", "create"),
        (4, "carla", "create"),
    ]
    assert user_ids(api) == []  # a dry run writes nothing

    answer = post(api, FILE)
    assert answer.status_code == 200, answer.text
    assert answer.json()["create"] == 3
    assert [w["user"] for w in answer.json()["written"]] == ["anna", "ben", "carla"]
    anna = api.get("/api/v1/users/anna").json()
    assert anna["numbers"] == ["+49301234567", "+491712345678"]
    assert anna["extensions"] == ["2101", "2102"]

    exported = api.get(EXPORT)
    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith("text/csv")
    want = rows(FILE)
    for row in want:  # the export keeps numbers in E.164
        numbers = {"030 1234567": "+49301234567", "+49 171 2345678": "+491712345678"}
        numbers["0049 89 7654321"] = "+49897654321"
        row["numbers"] = ";".join(numbers[n] for n in row["numbers"].split(";") if n)
    assert rows(exported.text) == sorted(want, key=lambda r: r["id"])

    again = post(api, exported.text)  # the export imports as "nothing to do"
    assert again.status_code == 200, again.text
    assert (again.json()["create"], again.json()["update"], again.json()["unchanged"]) == (0, 0, 3)


def test_semicolons_and_a_bom_as_german_excel_writes_them(api: httpx.Client) -> None:
    groups(api, "hq")
    text = (
        "id;display_name;group;extensions;numbers\r\n"
        'joerg;Jörg Groß;hq;"3101;3102";030 1234567\r\n'
        "\r\n"
        "eva;Eva Kühn;hq;;\r\n"
    )
    answer = post(api, text, bom=True)
    assert answer.status_code == 200, answer.text
    assert [line["line"] for line in answer.json()["lines"]] == [2, 4]
    joerg = api.get("/api/v1/users/joerg").json()
    assert (joerg["display_name"], joerg["extensions"]) == ("Jörg Groß", ["3101", "3102"])
    assert joerg["numbers"] == ["+49301234567"]
    assert api.get("/api/v1/users/eva").json()["display_name"] == "Eva Kühn"


def test_bad_lines_are_all_named_and_nothing_is_written(api: httpx.Client) -> None:
    make_user(api, "bob", group="hq")
    assert api.patch("/api/v1/users/bob", json={"extensions": ["2201"]}).status_code == 200
    text = (
        "id,display_name,group,extensions,numbers\n"
        "anna,Anna,hq,2101,\n"  # fine on its own
        "carl,Carl,nowhere,,\n"  # unknown group
        "dora,Dora,hq,,12ab\n"  # invalid number
        "emil,Emil,hq,2101,\n"  # the extension of line 2 again
        "fritz,Fritz,hq,2201,\n"  # bob's extension
        "gina,Gina,hq,21a1,\n"  # not an extension
        "bob,Bob,hq,2201,+49 30 1234567\n"  # fine: bob keeps his own
    )
    answer = post(api, text)
    assert answer.status_code == 422, answer.text
    problems = {p["line"]: p["problem"] for p in answer.json()["problems"]}
    assert set(problems) == {3, 4, 5, 6, 7}
    assert "group 'nowhere' does not exist" in problems[3]
    assert "'12ab' is not a valid phone number" in problems[4]
    assert "extension '2101' is also on line 2" in problems[5]
    assert "extension '2201' belongs to user 'bob'" in problems[6]
    assert "21a1" in problems[7]
    # For machines (and the console, which says them in its language): code and values.
    coded = {p["line"]: (p["code"], p["params"]) for p in answer.json()["problems"]}
    assert coded[3] == ("unknown_group", {"group": "nowhere"})
    assert coded[5] == ("extension_twice", {"value": "2101", "other": "anna", "other_line": 2})
    assert coded[6] == ("extension_taken", {"value": "2201", "other": "bob"})
    assert coded[4][0] == "not_number" and coded[4][1]["value"] == "12ab"
    detail = answer.json()["detail"]
    assert "nothing was written" in detail and "line 3:" in detail and "line 7:" in detail
    assert user_ids(api) == ["bob"]
    assert api.get("/api/v1/users/bob").json()["numbers"] == []

    dry = post(api, text, dry_run=True)  # a dry run names the same problems
    assert dry.status_code == 422
    assert len(dry.json()["problems"]) == 5


def test_unreadable_files_are_refused_with_the_reason(api: httpx.Client) -> None:
    cases = [
        (b"", "empty"),
        (b"id,display_name\nanna,Anna\n", "required column(s) missing: group"),
        (b"id,display_name,group,colour\n", "unknown column(s): colour"),
        (b"id,display_name,group\n\xff\xfe,x,y\n", "line 2: not UTF-8"),
        (b"id,display_name,group\nanna,Anna\n", "line 2: 2 fields, but the header has 3"),
    ]
    for data, words in cases:
        answer = api.post(IMPORT, content=data, headers=CSV)
        assert answer.status_code == 422, (data, answer.text)
        assert words in answer.json()["detail"], (data, answer.text)
    assert httpx.post(str(api.base_url) + IMPORT, content=b"x").status_code == 401
    assert httpx.get(str(api.base_url) + EXPORT).status_code == 401


def test_an_update_is_in_the_history_with_source_csv(api: httpx.Client) -> None:
    make_user(api, "anna", group="hq")
    groups(api, "sales")
    text = "id,display_name,group,email\nanna,Anna Schmidt,sales,anna@example.com\n"
    dry = post(api, text, dry_run=True)
    assert dry.status_code == 200, dry.text
    line = dry.json()["lines"][0]
    assert line["action"] == "update"
    assert line["fields"] == {
        "display_name": "Anna Schmidt",
        "group": "sales",
        "email": "anna@example.com",
    }
    assert "group: hq -> sales" in line["text"]
    assert api.get("/api/v1/users/anna").json()["group"] == "hq"

    answer = post(api, text)
    assert answer.status_code == 200, answer.text
    anna = api.get("/api/v1/users/anna").json()
    assert (anna["display_name"], anna["group"]) == ("Anna Schmidt", "sales")
    history = api.get("/api/v1/users/anna/history").json()
    assert history[0]["source"] == "csv"
    assert "group: hq -> sales" in history[0]["change"]


def test_an_extension_and_a_number_move_between_users_within_one_file(
    api: httpx.Client,
) -> None:
    make_user(api, "alice", group="hq")
    make_user(api, "bob", group="hq")
    body = {"extensions": ["2101"], "numbers": ["030 1234567"], "teams_user_id": "t-alice"}
    assert api.patch("/api/v1/users/alice", json=body).status_code == 200
    # bob's line comes first and takes 2101 and alice's Teams id; a new user takes her
    # number; alice's line, last, no longer lists any of them.
    text = (
        "id,display_name,group,teams_user_id,extensions,numbers\n"
        "bob,Bob,hq,t-alice,2101,\n"
        "carl,Carl,hq,,,+49 30 1234567\n"
        "alice,Alice,hq,,2102,\n"
    )
    dry = post(api, text, dry_run=True)
    assert dry.status_code == 200, dry.text

    answer = post(api, text)

    assert answer.status_code == 200, answer.text
    assert (answer.json()["create"], answer.json()["update"]) == (1, 2)
    bob = api.get("/api/v1/users/bob").json()
    assert (bob["extensions"], bob["teams_user_id"]) == (["2101"], "t-alice")
    assert api.get("/api/v1/users/carl").json()["numbers"] == ["+49301234567"]
    alice = api.get("/api/v1/users/alice").json()
    assert (alice["extensions"], alice["numbers"], alice["teams_user_id"]) == (["2102"], [], None)
    event = {"extension": "2101", "call_id": "c-moved", "state": "connected"}
    assert api.post("/api/v1/telephony/events", json=event).status_code == 200
    assert api.get("/api/v1/users/bob/presence").json()["telephony"] == "on_the_phone"


def test_two_lines_taking_one_value_or_a_value_kept_outside_write_nothing(
    api: httpx.Client,
) -> None:
    make_user(api, "alice", group="hq")
    make_user(api, "zoe", group="hq")
    assert api.patch("/api/v1/users/zoe", json={"extensions": ["2999"]}).status_code == 200
    text = (
        "id,display_name,group,extensions\n"
        "alice,Alice Renamed,hq,2101\n"
        "bob,Bob,hq,2101\n"  # alice's new extension too
        "carl,Carl,hq,2999\n"  # zoe, who is not in the file, keeps it
    )
    answer = post(api, text)
    assert answer.status_code == 422, answer.text
    problems = {p["line"]: p["problem"] for p in answer.json()["problems"]}
    assert problems == {
        3: "extension '2101' is also on line 2 (user 'alice')",
        4: "extension '2999' belongs to user 'zoe'",
    }
    assert user_ids(api) == ["alice", "zoe"]
    assert api.get("/api/v1/users/alice").json()["display_name"] == "Alice"
