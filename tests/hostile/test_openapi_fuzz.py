"""Schemathesis against the OpenAPI document of a real server process, over HTTP.

Every operation of `/openapi.json` gets schema-valid and schema-violating requests
with the admin token; each answer must be documented (status, content type, body
schema), never a 5xx, and schema-violating requests must be refused.

Not fuzzed: the two WebSockets (`/api/v1/presence/stream`, `/api/v1/agent/stream`)
and the console's pages. OpenAPI cannot describe a WebSocket, so they are not in the
document; the console is HTML behind a session cookie and CSRF tokens, outside the
document too. Their refusals are in test_authorization.py and tests/browser.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hypothesis.strategies as st
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from presencebridge.api.app import create_app
from presencebridge.config import Settings
from tests.hostile.tally import TALLY
from tests.support.server import ADMIN_TOKEN, ServerProcess, free_port, make_user

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
# Examples per operation: ~35 operations x 24 keep this file near 15 s on 2 cores. A deeper
# run by hand: HOSTILE_FUZZ_EXAMPLES=200 .venv/bin/pytest tests/hostile/test_openapi_fuzz.py
EXAMPLES = int(os.environ.get("HOSTILE_FUZZ_EXAMPLES", "16"))
# Existing ids, so that generated requests also get past the 404 into the handlers.
KNOWN = {"user_id": "alice", "group": "hq", "name": "fuzz"}

CONFIG = schemathesis.Config.from_dict(
    {
        "checks": {
            # A schema-valid body can still break a rule JSON Schema cannot say (an
            # appointment ending before it starts, an order naming a profile twice):
            # the server answers 422 with the reason (SPEC §8), which is correct.
            "positive_data_acceptance": {
                "expected-statuses": ["2xx", "401", "403", "404", "409", "422"]
            },
            # A schema-violating body larger than the limit (a batch of very many
            # events) is refused with 413 before any handler runs: a rejection too.
            "negative_data_rejection": {
                "expected-statuses": ["400", "401", "403", "404", "406", "413", "422", "428"]
            },
        }
    }
)


def documented_operations() -> list[tuple[str, str]]:
    """The operations of the app's OpenAPI document, for test ids at collection time."""
    app = create_app(Settings(admin_token=ADMIN_TOKEN, data_dir=Path("/nonexistent")))
    document: dict[str, Any] = app.openapi()
    return [(method.upper(), path) for path, ops in document["paths"].items() for method in ops]


@pytest.fixture(scope="module")
def fuzzed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    folder = tmp_path_factory.mktemp("fuzz")
    # A webhook, so that its admin routes reach a real outbox (its receiver is nowhere:
    # every change waits in the outbox, as behind a receiver that is down).
    config = folder / "presencebridge.toml"
    config.write_text(
        '[[publish]]\nkind = "webhook"\nname = "fuzz"\n'
        f'url = "http://127.0.0.1:{free_port()}/hook"\nsecret_env = "FUZZ_HOOK_SECRET"\n'
    )
    process = ServerProcess(
        folder, ("--allow-clock-control", "--config", str(config)), FUZZ_HOOK_SECRET="fuzz-secret"
    )
    process.start()
    with process.client() as api:
        make_user(api, "alice")
        make_user(api, "bob")
    yield process
    process.stop()


@pytest.fixture(scope="module")
def api_schema(fuzzed_server: ServerProcess) -> Any:
    """The document exactly as the running server serves it."""
    return schemathesis.openapi.from_url(
        fuzzed_server.url + "/openapi.json", headers=AUTH, config=CONFIG
    )


def test_document_lists_the_same_operations_as_collected(api_schema: Any) -> None:
    served = [(op.method.upper(), op.path) for op in _operations(api_schema)]
    assert sorted(served) == sorted(documented_operations())


def _operations(api_schema: Any) -> list[Any]:
    return [result.ok() for result in api_schema.get_all_operations()]


def _excluded_checks(path: str) -> list[Any]:
    if path == "/graph/notifications":
        # Graph's handshake (`?validationToken=`) is answered by echoing the token,
        # whatever body comes with it: a schema-violating body there gets a 200 by design.
        return [schemathesis.checks.negative_data_rejection]
    return []


@pytest.mark.parametrize(("method", "path"), documented_operations(), ids=str)
def test_operation_answers_as_documented(api_schema: Any, method: str, path: str) -> None:
    operation = api_schema[path][method]
    known = {k: v for k, v in KNOWN.items() if "{" + k + "}" in path}
    strategies = []
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
        strategies.append(operation.as_strategy(mode))
        if known:
            strategies.append(operation.as_strategy(mode, path_parameters=known))
    excluded = _excluded_checks(path)

    @given(case=st.one_of(strategies))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def request(case: Any) -> None:  # a schemathesis.Case
        response = case.call(headers=AUTH)
        TALLY.record("openapi fuzzing", response.status_code)
        case.validate_response(response, excluded_checks=excluded)

    request()
