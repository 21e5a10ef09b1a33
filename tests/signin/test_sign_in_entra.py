"""Signing in with Entra ID, played by the Graph emulator's identity provider (its own
process, over TLS): a person is matched by object id (`oid` = the user's Teams user id)
even when the addresses differ, an app role makes an administrator, and Entra's
multi-tenant endpoint lets in only the tenants the configuration names."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin

import httpx
import pytest

from presencebridge.emulator.identity import DEFAULT_TENANT_ID
from tests.support.server import ADMIN_TOKEN, ServerProcess
from tests.support.teams import EmulatorProcess

CLIENT_ID = "console-" + uuid.uuid4().hex[:8]
SECRET = "entra-secret-" + uuid.uuid4().hex
ROLE = "PresenceBridge.Admin"


@dataclass
class Entra:
    emulator: EmulatorProcess
    tmp: Path

    def server(self, tenant: str, allowed: list[str] | None = None, *extra: str) -> ServerProcess:
        """A hub whose console signs in at the emulator under `tenant` (a GUID or `common`)."""
        server = ServerProcess(
            self.tmp / f"hub-{uuid.uuid4().hex[:6]}",
            PB_TEST_ENTRA_SECRET=SECRET,
            PRESENCEBRIDGE_CA_BUNDLE=str(self.emulator.ca_file),
        )
        with self.emulator.client() as control:
            app = {
                "client_id": CLIENT_ID,
                "client_secret": SECRET,
                "redirect_uris": [f"{server.url}/console/sso/callback"],
                "post_logout_redirect_uris": [f"{server.url}/console/login"],
            }
            # Registering again keeps the role assignments and takes the new hub's URIs.
            previous = control.get(f"/_emulator/apps/{CLIENT_ID}")
            if previous.status_code == 200:
                app["redirect_uris"] += previous.json()["redirect_uris"]
                app["post_logout_redirect_uris"] += previous.json()["post_logout_redirect_uris"]
            assert control.post("/_emulator/apps", json=app).status_code == 201
        config = server.data_dir.parent / f"{server.data_dir.name}.toml"
        lines = [
            "[sign_in]",
            f'issuer = "{self.emulator.base_url}/{tenant}/v2.0"',
            f'client_id = "{CLIENT_ID}"',
            'client_secret_env = "PB_TEST_ENTRA_SECRET"',
            f'admin_roles = ["{ROLE}"]',
        ]
        if allowed is not None:
            lines.append("allowed_tenants = [" + ", ".join(f'"{t}"' for t in allowed) + "]")
        lines.extend(extra)
        config.parent.mkdir(parents=True, exist_ok=True)
        config.write_text("\n".join(lines) + "\n")
        server.extra_args = ("--config", str(config))
        server.start()
        return server

    def person(self, upn: str, roles: list[str] | None = None) -> str:
        """An account in the emulator's tenant; its object id."""
        object_id = uuid.uuid4().hex
        with self.emulator.client() as control:
            made = control.post("/_emulator/users", json={"id": object_id, "upn": upn})
            assert made.status_code in (200, 201), made.text
            if roles:
                path = f"/_emulator/apps/{CLIENT_ID}/role-assignments/{object_id}"
                assert control.put(path, json={"roles": roles}).status_code == 200
        return object_id


@pytest.fixture(scope="module")
def entra(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Entra]:
    base = tmp_path_factory.mktemp("entra")
    emulator = EmulatorProcess(base / "tls")
    emulator.start()
    yield Entra(emulator, base)
    emulator.stop()


def sign_in(entra: Entra, server: ServerProcess, upn: str) -> tuple[httpx.Client, httpx.Response]:
    """The browser's part: the hub sends it to the emulator, it signs in as `upn`, comes
    back; the client (console cookies) and the hub's answer to the callback."""
    hub = httpx.Client(base_url=server.url, timeout=20)
    start = hub.get("/console/sso")
    assert start.status_code == 303, start.text
    with httpx.Client(verify=str(entra.emulator.ca_file), timeout=20) as browser:
        page = browser.get(start.headers["location"])
        assert page.status_code == 200, page.text
        action = re.search(r'<form method="post" action="([^"]+)"', page.text)
        ctx = re.search(r'name="ctx" value="([^"]+)"', page.text)
        assert action is not None and ctx is not None
        url = urljoin(str(page.url), action.group(1))
        back = browser.post(url, data={"ctx": ctx.group(1), "login": upn})
        assert back.status_code == 302, back.text
    return hub, hub.get(back.headers["location"])


@pytest.fixture(scope="module")
def single_tenant(entra: Entra) -> Iterator[ServerProcess]:
    server = entra.server(str(uuid.uuid4()))
    admin = server.client()
    assert admin.post("/api/v1/groups", json={"id": "g", "name": "G"}).is_success
    yield server
    server.stop()


def test_a_person_is_their_hub_user_by_object_id(
    entra: Entra, single_tenant: ServerProcess
) -> None:
    upn = f"mia.{uuid.uuid4().hex[:6]}@contoso.example"
    object_id = entra.person(upn)
    user_id = f"mia-{uuid.uuid4().hex[:6]}"
    # Her hub user carries an old address: the object id decides.
    user = {
        "id": user_id, "display_name": "Mia", "group": "g", "teams_user_id": object_id,
        "email": "mia@old.example",
    }  # fmt: skip
    assert single_tenant.client().post("/api/v1/users", json=user).status_code == 201
    hub, answer = sign_in(entra, single_tenant, upn)
    assert answer.status_code == 303, answer.text
    me = hub.get("/console/me")
    assert me.headers["location"] == f"/console/users/{user_id}"
    assert hub.get("/console/groups").status_code == 403


def test_an_app_role_makes_an_administrator(entra: Entra, single_tenant: ServerProcess) -> None:
    upn = f"ops.{uuid.uuid4().hex[:6]}@contoso.example"
    entra.person(upn, roles=[ROLE])
    hub, answer = sign_in(entra, single_tenant, upn)
    assert answer.status_code == 303, answer.text
    assert hub.get("/console/groups").status_code == 200
    # The same kind of account without the role, and without a hub user: told so.
    other = f"guest.{uuid.uuid4().hex[:6]}@contoso.example"
    entra.person(other)
    _, refused = sign_in(entra, single_tenant, other)
    assert refused.status_code == 403 and other in refused.text


def test_the_multi_tenant_endpoint_lets_in_only_the_named_tenants(entra: Entra) -> None:
    upn = f"noah.{uuid.uuid4().hex[:6]}@contoso.example"
    closed = entra.server("common")  # registers the app the role is assigned in
    entra.person(upn, roles=[ROLE])
    try:
        _, answer = sign_in(entra, closed, upn)
        assert answer.status_code == 400
        assert "tenant" in answer.text and DEFAULT_TENANT_ID in answer.text
        metrics = httpx.get(closed.url + "/metrics").text
        assert 'presencebridge_sign_ins_refused_total{reason="tenant"} 1.0' in metrics
    finally:
        closed.stop()
    opened = entra.server("common", allowed=[DEFAULT_TENANT_ID])
    try:
        hub, answer = sign_in(entra, opened, upn)
        assert answer.status_code == 303, answer.text
        assert hub.get("/console/groups").status_code == 200
    finally:
        opened.stop()


def test_the_admin_token_can_be_kept_out_of_the_console(entra: Entra) -> None:
    server = entra.server(str(uuid.uuid4()), None, "admin_token_console = false")
    try:
        with httpx.Client(base_url=server.url, timeout=20) as browser:
            page = browser.get("/console/login")
            assert 'name="token"' not in page.text and "/console/sso" in page.text
            csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
            assert csrf is not None
            form = {"csrf_token": csrf.group(1), "token": ADMIN_TOKEN}
            refused = browser.post("/console/login", data=form)
            assert refused.status_code == 403 and "switched off" in refused.text
            assert browser.get("/").status_code == 303  # not signed in
        # The API still takes it.
        assert server.client().get("/api/v1/groups").status_code == 200
    finally:
        server.stop()


def test_an_address_does_not_make_someone_a_user_whose_object_id_is_another(
    entra: Entra, single_tenant: ServerProcess
) -> None:
    """Another account with the same UPN (another tenant's guest, say) is not Lena."""
    upn = f"lena.{uuid.uuid4().hex[:6]}@contoso.example"
    impostor = entra.person(upn)
    user_id = f"lena-{uuid.uuid4().hex[:6]}"
    user = {
        "id": user_id, "display_name": "Lena", "group": "g",
        "teams_user_id": f"not-{impostor}", "email": upn,
    }  # fmt: skip
    assert single_tenant.client().post("/api/v1/users", json=user).status_code == 201
    hub, answer = sign_in(entra, single_tenant, upn)
    assert answer.status_code == 403 and "no user for you" in answer.text
    assert hub.get(f"/console/users/{user_id}").status_code == 303  # not signed in
