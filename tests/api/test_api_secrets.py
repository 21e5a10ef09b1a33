"""Tokens never reach the log or the database in readable form."""

from __future__ import annotations

import httpx

from tests.support.server import ADMIN_TOKEN, ServerProcess, make_user


def test_tokens_are_redacted_in_logs_and_hashed_at_rest(server: ServerProcess) -> None:
    with server.client() as api:
        make_user(api)
        agent_token = api.post("/api/v1/users/alice/agent-tokens").json()["token"]
    # Query-string tokens end up in access logs unless redacted.
    stream = server.stream
    with stream(ADMIN_TOKEN, f"?token={ADMIN_TOKEN}") as ws:
        ws.recv(timeout=5)
    with stream(agent_token, f"?lang=de&token={agent_token}") as ws:
        ws.recv(timeout=5)
    httpx.get(f"{server.url}/api/v1/users?token={ADMIN_TOKEN}")
    with server.client(agent_token) as agent:
        assert agent.get("/api/v1/users/alice/presence").status_code == 200
    server.stop()

    log = server.log_path.read_text()
    assert "/api/v1/presence/stream?token=***" in log  # the request was logged, redacted
    assert ADMIN_TOKEN not in log
    assert agent_token not in log
    for path in server.data_dir.iterdir():
        if path.name.startswith("presencebridge.db"):
            content = path.read_bytes()
            assert agent_token.encode() not in content
            assert ADMIN_TOKEN.encode() not in content
