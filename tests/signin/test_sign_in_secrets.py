"""Nothing of the sign-in's secrets in the server's log or its database in plain text:
the client secret, the console session ids, personal tokens."""

from __future__ import annotations

import base64
import json

from tests.signin.conftest import CLIENT_SECRET, SignInWorld


def session_id(cookie: str) -> str:
    """The random session id inside the console's signed cookie (base64 JSON, signed)."""
    payload = cookie.split(".", 1)[0]
    data = json.loads(base64.b64decode(payload + "=" * (-len(payload) % 4)))
    return str(data["sid"])


def test_no_sign_in_secret_is_logged_or_stored_in_plain_text(signin_world: SignInWorld) -> None:
    world = signin_world
    client, answer = world.sign_in("alice")
    assert answer.status_code == 303
    [cookie] = [c.value for c in client.cookies.jar if c.name == "pb_console" and c.value]
    sid = session_id(cookie)
    assert len(sid) >= 40
    made = world.server.client().post(
        f"/api/v1/users/{world.bob}/personal-tokens", json={"name": "backup"}
    )
    token = made.json()["token"]
    assert token.startswith("pbp_")
    # Use them, so a careless log line would have them.
    assert client.get("/").status_code == 200
    script = {"Authorization": f"Bearer {token}"}
    assert client.get(f"{world.server.url}/api/v1/me", headers=script).status_code == 200

    data_dir = world.server.data_dir
    stored = b"".join(p.read_bytes() for p in data_dir.glob("presencebridge.db*"))
    logged = world.server.log_path.read_bytes()
    assert stored, "the database is where the test looks"
    for secret in (CLIENT_SECRET, sid, token, cookie):
        assert secret.encode() not in stored, secret[:8]
        assert secret.encode() not in logged, secret[:8]
