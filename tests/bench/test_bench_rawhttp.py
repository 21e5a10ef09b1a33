"""The load generator's HTTP/1.1 client against a canned server: framing and keep-alive."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from presencebridge.bench.rawhttp import Pool

LENGTH = b'HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n{"a": true}'
CHUNKED = (
    b"HTTP/1.1 201 Created\r\nTransfer-Encoding: Chunked\r\n\r\n"
    b'4;ext=1\r\n{"b"\r\n5\r\n: [1]\r\n1\r\n}\r\n0\r\n\r\n'
)
CLOSE = b"HTTP/1.1 202 Accepted\r\nConnection: close\r\ncontent-length: 2\r\n\r\n{}"
UNTIL_CLOSE = b"HTTP/1.1 500 Internal Server Error\r\n\r\nno length, ends at close"
EMPTY = b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n"


class CannedServer:
    """Answers each request with the next canned answer; closes after those that say so."""

    def __init__(self, answers: list[tuple[bytes, bool]]) -> None:
        self.answers = answers
        self.requests: list[tuple[int, bytes, bytes]] = []  # (connection, head, body)
        self.connections = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        connection = self.connections
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    if name.lower() == b"content-length":
                        length = int(value)
                self.requests.append((connection, head, await reader.readexactly(length)))
                answer, close = self.answers.pop(0)
                writer.write(answer)
                await writer.drain()
                if close:
                    break
        except asyncio.IncompleteReadError:
            pass
        finally:
            writer.close()


async def exchange(answers: list[tuple[bytes, bool]], calls: Any) -> tuple[CannedServer, list[Any]]:
    server = CannedServer(answers)
    listening = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    port = listening.sockets[0].getsockname()[1]
    pool = Pool("127.0.0.1", port, size=1, token="t0k")
    try:
        results = [await call(pool) for call in calls]
    finally:
        pool.close()
        listening.close()
        await listening.wait_closed()
    return server, results


def test_framings_and_keep_alive() -> None:
    answers = [(LENGTH, False), (CHUNKED, False), (EMPTY, False), (CLOSE, True)]
    answers += [(UNTIL_CLOSE, True), (LENGTH, False)]
    calls = [
        lambda p: p.request("GET", "/one"),
        lambda p: p.request("POST", "/two", {"x": 1}),
        lambda p: p.request("DELETE", "/three"),
        lambda p: p.request("PUT", "/four", [], token="other"),
        lambda p: p.request("GET", "/five"),
        lambda p: p.json("GET", "/six"),
    ]
    server, results = asyncio.run(exchange(answers, calls))
    assert results == [
        (200, b'{"a": true}'),
        (201, b'{"b": [1]}'),
        (204, b""),
        (202, b"{}"),
        (500, b"no length, ends at close"),
        {"a": True},
    ]
    # one connection kept alive until the server said close, then one per close
    assert [c for c, _, _ in server.requests] == [1, 1, 1, 1, 2, 3]
    heads = [head.decode() for _, head, _ in server.requests]
    assert heads[0].startswith("GET /one HTTP/1.1\r\nHost: 127.0.0.1:")
    assert "Authorization: Bearer t0k\r\n" in heads[0]
    assert "Content-Length" not in heads[0]
    assert "Content-Type: application/json\r\nContent-Length: 8\r\n" in heads[1]
    assert server.requests[1][2] == json.dumps({"x": 1}).encode()
    assert "Authorization: Bearer other\r\n" in heads[3]
    assert "Bearer t0k" not in heads[3]


def test_form_is_not_json_and_answers_json() -> None:
    calls = [lambda p: p.form("/token", {"grant_type": "client_credentials", "scope": "a b"})]
    server, results = asyncio.run(exchange([(LENGTH, False)], calls))
    assert results == [(200, {"a": True})]
    (_, head, body) = server.requests[0]
    assert b"Content-Type: application/x-www-form-urlencoded\r\n" in head
    assert b"application/json" not in head
    assert body == b"grant_type=client_credentials&scope=a+b"


def test_a_kept_alive_connection_the_server_closed_is_reopened_once() -> None:
    # the server closes after the first answer without saying so; the client finds out
    # on its next request and sends it again on a new connection
    calls = [lambda p: p.request("GET", "/a"), lambda p: p.request("GET", "/b")]
    server, results = asyncio.run(exchange([(LENGTH, True), (CHUNKED, False)], calls))
    assert results == [(200, b'{"a": true}'), (201, b'{"b": [1]}')]
    assert [(c, head.split(b" ")[1]) for c, head, _ in server.requests] == [(1, b"/a"), (2, b"/b")]
