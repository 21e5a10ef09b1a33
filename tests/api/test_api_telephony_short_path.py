"""The PBX event routes' short path (api/telephony.py) answers as the FastAPI routes do.

A request with `Content-Type: application/json` and the admin token takes the short
path; the same request with a charset parameter goes through FastAPI's route: both
must give the same answer, byte for byte.
"""

from __future__ import annotations

import logging

import httpx
import pytest

from presencebridge.logs import PbxAccessSummary
from tests.support.server import make_user

SINGLE = "/api/v1/telephony/events"
BATCH = "/api/v1/telephony/events/batch"
SHORT = {"Content-Type": "application/json"}
ROUTE = {"Content-Type": "application/json; charset=utf-8"}


def _post(api: httpx.Client, path: str, body: str, headers: dict[str, str]) -> httpx.Response:
    return api.post(path, content=body.encode(), headers=headers)


@pytest.mark.parametrize(
    ("query", "extra"),
    [("", {}), ("?lang=de", {}), ("", {"Accept-Language": "de-DE,de;q=0.9"})],
    ids=["default language", "lang=de", "Accept-Language"],
)
def test_single_event_answer_is_the_routes(
    api: httpx.Client, query: str, extra: dict[str, str]
) -> None:
    make_user(api, "carla")
    answers: list[httpx.Response] = []
    steps = ((SHORT, "c1", "connected"), (ROUTE, "c1", "ended"), (SHORT, "c2", "connected"))
    for headers, call, state in steps:
        body = f'{{"user": "carla", "call_id": "{call}", "state": "{state}"}}'
        answers.append(_post(api, SINGLE + query, body, {**headers, **extra}))
    short, route, again = answers
    assert short.status_code == route.status_code == again.status_code == 200
    assert short.headers["content-type"] == route.headers["content-type"]
    assert short.json()["telephony"] == "on_the_phone" and route.json()["telephony"] == "idle"
    assert short.content == again.content  # same state twice: the same bytes
    assert set(short.json()) == set(route.json())


def test_batch_answer_is_the_routes(api: httpx.Client) -> None:
    make_user(api, "dora")
    body = '{"events": [{"user": "dora", "call_id": "d1", "state": "connected"}]}'
    short = _post(api, BATCH, body, SHORT)
    route = _post(api, BATCH, body.replace('"d1"', '"d2"'), ROUTE)
    assert short.status_code == route.status_code == 200
    assert short.content == route.content == b'{"accepted":1,"users":1,"rejected":[]}'


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ('{"user": "nobody", "call_id": "x", "state": "connected"}', 404),
        ('{"user": "erik", "call_id": "x", "state": "connected", "extra": 1}', 422),
        ('{"user": "erik", "call_id": "x"', 400),
    ],
    ids=["unknown user", "unknown field", "malformed JSON"],
)
def test_refusals_are_the_routes(api: httpx.Client, body: str, status: int) -> None:
    make_user(api, "erik")
    short = _post(api, SINGLE, body, SHORT)
    route = _post(api, SINGLE, body, ROUTE)
    assert short.status_code == route.status_code == status
    assert short.json() == route.json()


def test_other_query_parameters_go_to_the_route(api: httpx.Client) -> None:
    make_user(api, "fritz")
    body = '{"user": "fritz", "call_id": "f1", "state": "connected"}'
    answer = _post(api, SINGLE + "?lang=fr", body, SHORT)
    assert answer.status_code == 422 and "lang" in answer.json()["detail"]


def _access(status: int, path: str = SINGLE, created: float = 0.0) -> logging.LogRecord:
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "POST", path, "1.1", status),
        None,
    )
    record.created = created
    return record


def test_access_log_sums_up_accepted_pbx_events() -> None:
    summary = PbxAccessSummary()
    assert summary.filter(_access(200, created=1000.0))  # the first is logged
    assert not summary.filter(_access(200, created=1001.0))
    assert not summary.filter(_access(200, BATCH, created=1002.0))
    assert summary.filter(_access(404, created=1003.0))  # refusals always
    assert summary.filter(_access(200, "/api/v1/users", created=1004.0))  # other routes
    later = _access(200, created=1061.0)
    assert summary.filter(later)
    assert "and 2 more 200 answers to PBX events since" in later.getMessage()
