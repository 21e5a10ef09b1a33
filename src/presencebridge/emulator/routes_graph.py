"""Graph under /v1.0: one route into `GraphApi`, which reads, writes and subscribes.

Graph's reads (`/users/{id}/presence`, `getPresencesByUserId`), writes (`setPresence`
and the other presence actions) and subscriptions are dispatched by `graph.py` rather
than by framework routes, so that a `$batch` runs its inner requests through exactly
the same code (faults, budget, checks, statistics). This route only checks the bearer
token, parses the JSON body and carries the request ids.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from presencebridge.emulator.graph import GraphApi, GraphRequest, error_body
from presencebridge.emulator.identity import AuthFailure
from presencebridge.emulator.routing import Graph, State
from presencebridge.emulator.state import Emulator

GRAPH_METHODS = ["GET", "POST", "PATCH", "DELETE", "PUT"]
UNREADABLE_JSON = (
    "Unable to read JSON request payload. Please ensure Content-Type header "
    "is set and payload is of valid JSON format."
)

router = APIRouter()


def _request_id() -> str:
    return str(uuid.uuid4())


def _answer_headers(request_id: str, client_request_id: str) -> dict[str, str]:
    """Graph's own request id, and the caller's client-request-id echoed (Graph's
    request id in its place when the caller sent none)."""
    return {"request-id": request_id, "client-request-id": client_request_id or request_id}


def _refused(
    state: Emulator,
    graph: GraphApi,
    request: Request,
    status: int,
    error: tuple[str, str],
    headers: dict[str, str],
) -> JSONResponse:
    """An answer given before dispatch (bad token, bad JSON), counted like Graph's own."""
    path = "/" + request.path_params["path"]
    state.stats.requests[graph.template_of(request.method.upper(), path)] += 1
    state.stats.statuses[str(status)] += 1
    code, message = error
    client_request_id = request.headers.get("client-request-id", "")
    body = error_body(code, message, state.now(), client_request_id, headers["request-id"])
    return JSONResponse(body, status, headers=headers)


@router.api_route("/v1.0/{path:path}", methods=GRAPH_METHODS, include_in_schema=False)
async def graph_route(path: str, request: Request, state: State, graph: Graph) -> Response:
    headers = {k.lower(): v for k, v in request.headers.items()}
    request_id = _request_id()
    answer_headers = _answer_headers(request_id, headers.get("client-request-id", ""))
    method = request.method.upper()
    raw = await request.body()
    body: Any = None
    try:
        principal = state.identity.principal(headers.get("authorization"), state.now())
        if raw.strip():
            body = json.loads(raw)
    except AuthFailure as failure:
        error = ("InvalidAuthenticationToken", str(failure))
        www = {"WWW-Authenticate": 'Bearer realm=""'}
        return _refused(state, graph, request, 401, error, answer_headers | www)
    except ValueError:
        error = ("BadRequest", UNREADABLE_JSON)
        return _refused(state, graph, request, 400, error, answer_headers)
    result = await graph.handle(
        GraphRequest(
            method, "/" + path, body, headers, principal, dict(request.query_params), request_id
        )
    )
    if result.body is None:
        return Response(status_code=result.status, headers=answer_headers | result.headers)
    return JSONResponse(result.body, result.status, headers=answer_headers | result.headers)
