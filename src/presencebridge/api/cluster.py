"""Several nodes: a request about another node's user is answered by that node.

Any node takes any request. When the handler finds the user belongs to another
node (the hub raises `NotOwner` before changing anything), the answer is turned
into an internal 421 naming the owner, and this middleware sends the same request
there and hands back its answer. A request is forwarded at most once: a node that
receives a forwarded request for a user it does not own (the partition is moving)
answers 503 with Retry-After.

Reads are as consistent as writes (read-your-writes on every node): a read about one
user (`GET /api/v1/users/{id}…`) is forwarded to the node that handles the user
before any handler runs, so it sees whatever the owner acknowledged; any other read
(lists, groups) and the presence stream's snapshot first catch up with the other
nodes through a fan-out barrier (`Cluster.catch_up`).

The body is read once, by `BodyLimit` (outside this middleware), which leaves it in
the scope under `BODY`; forwarding sends that copy on.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response

from presencebridge.adapters.store.leases import LeaseLost
from presencebridge.api.auth import Principal, principal
from presencebridge.service.hub import NotOwner

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

FORWARD_TO = "x-presencebridge-forward-to"
FORWARDED_BY = "x-presencebridge-forwarded-by"
# Hop-by-hop and recomputed headers are not passed on.
NOT_FORWARDED = {b"host", b"content-length", b"connection", b"transfer-encoding", b"keep-alive"}
# Where BodyLimit leaves the request body it read (a key of the ASGI scope).
BODY = "presencebridge.body"
# Reads about one user: answered by the node that handles the user.
USER_READ = re.compile(r"^/api/v1/users/(?P<user>[^/]+)(?:/.*)?$")
READS = {"GET", "HEAD"}
# Reads about this node itself, answered from its own view without catching up.
NODE_LOCAL = ("/api/v1/admin/",)


def moving() -> JSONResponse:
    return JSONResponse(
        {
            "detail": "this user's partition is moving to another node; retry in a second",
            "code": "moving",
        },
        503,
        headers={"Retry-After": "1"},
    )


router = APIRouter(prefix="/api/v1", dependencies=[Depends(principal)])


@router.get("/admin/cluster")
async def cluster_status(
    request: Request, who: Annotated[Principal, Depends(principal)]
) -> dict[str, Any]:
    """Which node this is, which partitions it handles, and who handles the rest."""
    cluster = request.app.state.cluster
    if cluster is None:
        return {"node": None, "clustered": False}
    return {"clustered": True, **cluster.status()}


async def forward_batch(
    request: Request, owner: str, events: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Send one owner its part of a telephony batch; raises if it was not applied.
    Returns the owner's refused events (`index` into `events`)."""
    client: httpx.AsyncClient = request.app.state.forward_client
    answer = await client.post(
        owner.rstrip("/") + "/api/v1/telephony/events/batch",
        json={"events": events},
        headers={
            "authorization": request.headers.get("authorization", ""),
            FORWARDED_BY: request.app.state.cluster.node,
        },
    )
    if answer.status_code != 200:
        raise Moving()
    refused: list[dict[str, Any]] = answer.json().get("rejected", [])
    return refused


class Moving(Exception):
    """Part of a request could not be handed to its owner node now."""


def install(app: FastAPI) -> None:
    """The error handlers that mark a request for forwarding (or refuse it)."""

    @app.exception_handler(NotOwner)
    async def not_owner(request: Request, error: NotOwner) -> Response:
        cluster = request.app.state.cluster
        url = None if cluster is None else await cluster.find_owner(error.user_id)
        if url is None or request.headers.get(FORWARDED_BY):
            return moving()
        return Response(status_code=421, headers={FORWARD_TO: url})

    @app.exception_handler(LeaseLost)
    async def lease_lost(_request: Request, _error: LeaseLost) -> Response:
        return moving()

    @app.exception_handler(Moving)
    async def partly_moving(_request: Request, _error: Moving) -> Response:
        return moving()

    app.include_router(router)


class ForwardToOwner:
    """Sends a request marked by the handlers (421 + owner) on to the owner node."""

    def __init__(self, app: ASGIApp, node: str, timeout: float = 30.0) -> None:
        self.app = app
        self.node = node
        self.client = httpx.AsyncClient(timeout=timeout)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/api/"):
            await self.app(scope, receive, send)
            return
        cluster = scope["app"].state.cluster
        read = scope["method"] in READS and cluster is not None
        if read and await self._read_elsewhere(scope, cluster, send):
            return
        body: bytes = scope[BODY]  # BodyLimit, outside this middleware, read it once

        owner: str | None = None

        async def capture(message: Message) -> None:
            nonlocal owner
            if message["type"] == "http.response.start" and message["status"] == 421:
                headers = dict(message.get("headers") or [])
                if FORWARD_TO.encode() in headers:
                    owner = headers[FORWARD_TO.encode()].decode()
                    return
            if owner is None:
                await send(message)

        await self.app(scope, receive, capture)
        if owner is not None:
            await self._forward(scope, body, owner, send)

    async def _read_elsewhere(self, scope: Scope, cluster: Any, send: Send) -> bool:
        """Make a read as fresh as a write; True when it was answered (by another node)."""
        path: str = scope["path"]
        found = USER_READ.match(path)
        if found is None:
            if not path.startswith(NODE_LOCAL):
                await cluster.catch_up()
            return False
        user_id = found["user"]
        if cluster.owns(user_id):
            return False
        forwarded = any(k.lower() == FORWARDED_BY.encode() for k, _ in scope["headers"])
        owner = None if forwarded else await cluster.find_owner(user_id)
        if owner is None:  # between owners, or sent here by a node whose view is older
            await moving()(scope, _no_body, send)
        else:
            await self._forward(scope, b"", owner, send)
        return True

    async def _forward(self, scope: Scope, body: bytes, owner: str, send: Send) -> None:
        headers = [
            (k.decode("latin-1"), v.decode("latin-1"))
            for k, v in scope["headers"]
            if k.lower() not in NOT_FORWARDED
        ]
        headers.append((FORWARDED_BY, self.node))
        # The path as sent: a decoded one would turn a name's %2F, %3F or %23 into syntax.
        path = scope.get("raw_path") or scope["path"].encode()
        url = owner.rstrip("/") + path.decode("latin-1")
        if scope.get("query_string"):
            url += "?" + scope["query_string"].decode("latin-1")
        try:
            answer = await self.client.request(scope["method"], url, headers=headers, content=body)
        except httpx.HTTPError:
            response: Response = moving()  # the owner is going away; its leases will move
        else:
            passed = {
                k: v
                for k, v in answer.headers.items()
                if k.lower()
                not in {"content-length", "content-encoding", "transfer-encoding", "connection"}
            }
            response = Response(answer.content, answer.status_code, headers=passed)
        await response({**scope}, _no_body, send)

    async def aclose(self) -> None:
        await self.client.aclose()


async def _no_body() -> Message:
    return {"type": "http.disconnect"}
