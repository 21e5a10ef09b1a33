"""What the emulator's routers share: the state behind a request and problem answers.

The routers are module-level `APIRouter`s; `create_app` includes them and keeps the
`Emulator` and its `GraphApi` on `app.state`, where these dependencies find them.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict

from presencebridge.emulator.graph import GraphApi
from presencebridge.emulator.state import Emulator


async def emulator_of(request: Request) -> Emulator:
    # async: FastAPI would run a plain def dependency in its thread pool.
    emulator: Emulator = request.app.state.emulator
    return emulator


async def graph_of(request: Request) -> GraphApi:
    graph: GraphApi = request.app.state.graph
    return graph


State = Annotated[Emulator, Depends(emulator_of)]
Graph = Annotated[GraphApi, Depends(graph_of)]


class Strict(BaseModel):
    """A control API body: unknown fields are refused (422)."""

    model_config = ConfigDict(extra="forbid")


def problem(status: int, detail: str, code: str) -> JSONResponse:
    """The control API's error shape: `{"detail", "code"}`."""
    return JSONResponse({"detail": detail, "code": code}, status)


def base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")
