"""The forwarding middleware on its own: the body is read once, reads go to the owner."""

from __future__ import annotations

import asyncio
from collections.abc import MutableMapping
from types import SimpleNamespace
from typing import Any

import httpx

from presencebridge.api.app import BodyLimit
from presencebridge.api.cluster import FORWARD_TO, FORWARDED_BY, ForwardToOwner

Message = MutableMapping[str, Any]
OWNER = "http://owner.test"


class FakeCluster:
    """Node 1's view: it handles `mine`; the owner of everyone else is OWNER."""

    def __init__(self, mine: set[str]) -> None:
        self.mine = mine
        self.caught_up = 0

    def owns(self, user_id: str) -> bool:
        return user_id in self.mine

    async def find_owner(self, user_id: str) -> str | None:
        return None if user_id in self.mine else OWNER

    async def catch_up(self) -> None:
        self.caught_up += 1


def stack(cluster: FakeCluster, seen: list[tuple[str, str, bytes, dict[str, str]]]) -> Any:
    """BodyLimit around ForwardToOwner around a handler that reads the body, then says
    (like the hub's NotOwner) that the owner must answer writes about `bob`."""

    async def handler(scope: Any, receive: Any, send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        if scope["method"] == "POST" and "bob" in scope["path"]:
            await send(
                {
                    "type": "http.response.start",
                    "status": 421,
                    "headers": [(FORWARD_TO.encode(), OWNER.encode())],
                }
            )
            await send({"type": "http.response.body", "body": b""})
            return
        answer = b"local:" + body
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": answer})

    def owner(request: httpx.Request) -> httpx.Response:
        seen.append((request.method, request.url.path, request.content, dict(request.headers)))
        return httpx.Response(200, content=b"owner:" + request.content)

    forward = ForwardToOwner(handler, node="node1")
    forward.client = httpx.AsyncClient(transport=httpx.MockTransport(owner))
    app = BodyLimit(forward, max_bytes=1000)
    state = SimpleNamespace(cluster=cluster)
    return app, SimpleNamespace(state=state)


def call(
    cluster: FakeCluster, method: str, path: str, chunks: list[bytes], headers: tuple[Any, ...] = ()
) -> tuple[int, bytes, int, list[tuple[str, str, bytes, dict[str, str]]]]:
    """Send one request through the stack; status, body, how often the server's
    `receive` was called, and what the owner got."""
    seen: list[tuple[str, str, bytes, dict[str, str]]] = []
    app, fake_app = stack(cluster, seen)
    pending = [
        {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
        for i, c in enumerate(chunks)
    ]
    received = 0
    sent: list[Message] = []

    async def receive() -> Message:
        nonlocal received
        received += 1
        return pending.pop(0) if pending else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "query_string": b"",
        "headers": list(headers),
        "app": fake_app,
    }
    asyncio.run(app(scope, receive, send))
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, body, received, seen


def test_a_forwarded_write_reads_the_body_once_and_sends_it_on() -> None:
    status, body, received, seen = call(
        FakeCluster({"alice"}), "POST", "/api/v1/users/bob/meetings", [b"ab", b"cd"]
    )
    assert (status, body) == (200, b"owner:abcd")
    assert received == 2  # each chunk once, by BodyLimit; nobody read it a second time
    assert [(m, p, c) for m, p, c, _ in seen] == [("POST", "/api/v1/users/bob/meetings", b"abcd")]
    assert seen[0][3][FORWARDED_BY] == "node1"


def test_a_write_this_node_handles_is_answered_here() -> None:
    status, body, received, seen = call(
        FakeCluster({"alice"}), "POST", "/api/v1/users/alice/meetings", [b"x"]
    )
    assert (status, body, received, seen) == (200, b"local:x", 1, [])


def test_a_read_about_another_nodes_user_is_answered_by_the_owner() -> None:
    cluster = FakeCluster({"alice"})
    status, body, _, seen = call(cluster, "GET", "/api/v1/users/bob/presence", [b""])
    assert (status, body) == (200, b"owner:")
    assert [(m, p) for m, p, _, _ in seen] == [("GET", "/api/v1/users/bob/presence")]
    assert cluster.caught_up == 0


def test_a_read_about_this_nodes_user_is_answered_here() -> None:
    cluster = FakeCluster({"alice"})
    status, body, _, seen = call(cluster, "GET", "/api/v1/users/alice", [b""])
    assert (status, body, seen) == (200, b"local:", [])


def test_a_forwarded_read_for_a_user_not_held_here_is_refused_not_passed_on() -> None:
    headers = ((FORWARDED_BY.encode(), b"node2"),)
    status, _, _, seen = call(
        FakeCluster(set()), "GET", "/api/v1/users/bob/presence", [b""], headers
    )
    assert (status, seen) == (503, [])


def test_other_reads_catch_up_with_the_other_nodes_first() -> None:
    cluster = FakeCluster(set())
    for path in ("/api/v1/users", "/api/v1/groups/hq/settings"):
        status, body, _, seen = call(cluster, "GET", path, [b""])
        assert (status, body, seen) == (200, b"local:", [])
    assert cluster.caught_up == 2
    call(cluster, "GET", "/api/v1/admin/cluster", [b""])  # about this node: no barrier
    assert cluster.caught_up == 2
