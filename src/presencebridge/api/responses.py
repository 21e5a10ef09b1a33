"""The error answers of the API, as the OpenAPI document describes them.

Every refusal the server sends (`Rejected`, validation errors, `HTTPException`, the
body-size limit, the webhook's checks) has one shape: `{"detail": str, "code": str}`.
FastAPI would otherwise document 422 as its own `HTTPValidationError` (a list of
errors) and leave the other codes out, so a client generated from `/openapi.json`
could not read a single error the server actually sends.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class ErrorOut(BaseModel):
    detail: str = Field(description="what is wrong, in words a person can act on")
    code: str = Field(description="a stable machine-readable kind, e.g. not_found, invalid")


def _error(description: str) -> dict[str, Any]:
    return {"model": ErrorOut, "description": description}


# The refusals any `/api/v1` route can answer with.
API_ERRORS: dict[int | str, dict[str, Any]] = {
    400: _error("malformed JSON"),
    401: _error("missing, malformed or unknown bearer token"),
    403: _error("the token may not do this (admin only, another user, a group setting)"),
    404: _error("unknown group, user, profile or appointment"),
    409: _error("conflicts with the current state (exists already, not configured)"),
    413: _error("request body larger than the server's limit"),
    422: _error("the request is well-formed JSON but not valid"),
}

# The refusals of `POST /graph/notifications` (api/webhook.py).
WEBHOOK_ERRORS: dict[int | str, dict[str, Any]] = {
    400: _error("not a Graph notification"),
    401: _error("validationTokens missing or refused"),
    403: _error("unknown subscription, wrong clientState or a bad dataSignature"),
    409: _error("a notification that was delivered and accepted before (a replay)"),
    413: _error("request body larger than the server's limit"),
}
