"""Oversized, deeply nested and undecodable bodies: a 4xx on every route that takes a body.

The routes come from the server's own OpenAPI document, so a new route is covered
the day it is added. After every refusal everything a client can read back is the
same as before: nothing was written.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.hostile.tally import TALLY, counting_client
from tests.hostile.world import NotifyWorld
from tests.support.server import ADMIN_TOKEN

KIND = "oversized and nested bodies"
LIMIT = 64 * 1024  # the server's default PRESENCEBRIDGE_MAX_BODY_BYTES


def body_routes(world: NotifyWorld) -> list[tuple[str, str]]:
    document = world.admin.get("/openapi.json").json()
    return [
        (method.upper(), path)
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
        if "requestBody" in operation
    ]


def nested_arrays(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def nested_objects(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


def in_every_field(value: bytes) -> bytes:
    """The value under each name a body of this API uses: it reaches the field checks."""
    names = ["id", "name", "settings", "status", "text", "value", "events", "names", "user"]
    return b"{" + b",".join(b'"%s":%s' % (n.encode(), value) for n in names) + b"}"


def padded(size: int) -> bytes:
    """Valid JSON of exactly `size` bytes."""
    head = b'{"id": "x", "padding": "'
    tail = b'"}'
    return head + b"x" * (size - len(head) - len(tail)) + tail


def chunks(total: int) -> Iterator[bytes]:
    yield b'{"padding": "'
    for _ in range(total // 8192):
        yield b"y" * 8192
    yield b'"}'


Send = Callable[[httpx.Client, str, str], int]


def sending(content: Any) -> Send:
    def send(client: httpx.Client, method: str, path: str) -> int:
        body = content() if callable(content) else content
        headers = {"Content-Type": "application/json"}
        return client.request(method, path, content=body, headers=headers).status_code

    return send


def announcing(length: int) -> Send:
    """A small body under a huge Content-Length (httpx will not send that lie, so: a socket)."""

    def send(client: httpx.Client, method: str, path: str) -> int:
        url = client.base_url
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {url.host}:{url.port}\r\n"
            f"Authorization: Bearer {ADMIN_TOKEN}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {length}\r\n\r\n"
        )
        with socket.create_connection((url.host, url.port or 80), timeout=10) as connection:
            connection.sendall(head.encode() + b"{}")
            status_line = connection.makefile("rb").readline()
        status = int(status_line.split()[1])
        TALLY.record(KIND, status)
        return status

    return send


# fmt: off
BODIES: list[tuple[str, Send, set[int]]] = [
    # what, how it is sent, acceptable answers
    ("one byte over the limit", sending(padded(LIMIT + 1)), {413}),
    ("a megabyte, chunked without a length", sending(lambda: chunks(1024 * 1024)), {413}),
    ("a length of 10 GB announced", announcing(10 * 1024**3), {413}),
    ("arrays nested 30,000 deep", sending(nested_arrays(30_000)), {400, 422}),
    ("objects nested 10,000 deep", sending(nested_objects(10_000)), {400, 422}),
    ("objects nested 1,000 deep in every field", sending(in_every_field(nested_objects(1_000))), {400}),
    ("arrays nested 200 deep in every field", sending(in_every_field(nested_arrays(200))), {400, 422}),
    ("objects nested 200 deep in every field", sending(in_every_field(nested_objects(200))), {400, 422}),
    ("a 6 KB string in every field", sending(in_every_field(b'"' + b"s" * 6000 + b'"')), {400, 422}),
    ("5,000 keys", sending(b"{" + b",".join(b'"k%d":1' % i for i in range(5000)) + b"}"), {400, 422}),
    ("not UTF-8", sending(b'{"id": "\xff\xfe", "name": "\xc3"}'), {400}),
]
# fmt: on


@pytest.mark.parametrize(
    ("send", "expected"), [case[1:] for case in BODIES], ids=[case[0] for case in BODIES]
)
def test_hostile_body_is_refused_on_every_route_and_writes_nothing(
    world: NotifyWorld, send: Send, expected: set[int]
) -> None:
    group = world.admin.get(f"/api/v1/users/{world.anna.id}").json()["group"]
    values = {"group": group, "user_id": world.anna.id, "source": "entra"}
    before = world.snapshot()
    answers: dict[str, int] = {}
    with counting_client(world.server.url, KIND, token=ADMIN_TOKEN) as client:
        for method, path in body_routes(world):
            url = path.format(**values)
            answers[f"{method} {path}"] = send(client, method, url)
    wrong = {route: status for route, status in answers.items() if status not in expected}
    assert not wrong, f"expected one of {sorted(expected)}: {wrong}"
    assert world.snapshot() == before
