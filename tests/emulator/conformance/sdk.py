"""Microsoft's Graph SDK (`msgraph-sdk`) and `azure-identity` pointed at the emulator.

Everything a test does to Graph goes through the SDK's typed calls, as an administrator's
script would; the emulator's control API only plays what Graph has no API for (users,
app registrations, the Teams client, the clock, a device-code approval).
"""

from __future__ import annotations

import ssl
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any

import httpx
from azure.identity import ClientSecretCredential, DeviceCodeCredential
from kiota_authentication_azure.azure_identity_authentication_provider import (
    AzureIdentityAuthenticationProvider,
)
from msgraph import GraphServiceClient
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.graph_request_adapter import GraphRequestAdapter
from msgraph.graph_request_adapter import options as sdk_options
from msgraph_core import GraphClientFactory

from tests.emulator.support import EmulatorProcess, ok

TENANT = "contoso.onmicrosoft.com"
GRAPH_SCOPE = "https://graph.microsoft.com/.default"


@dataclass(frozen=True)
class App:
    client_id: str
    secret: str


class Tenant:
    """Fresh apps and users on the shared emulator, and SDK clients for them."""

    def __init__(self, emulator: EmulatorProcess) -> None:
        self.emulator = emulator
        self.control = emulator.client()
        self.host = emulator.base_url.removeprefix("https://")

    def __enter__(self) -> Tenant:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.control.close()

    # -- what Graph has no API for: the control API ---------------------------------------

    def new_app(self) -> App:
        app = App(str(uuid.uuid4()), "secret-" + uuid.uuid4().hex)
        ok(
            self.control.post(
                "/_emulator/apps", json={"client_id": app.client_id, "client_secret": app.secret}
            ),
            201,
        )
        return app

    def new_user(self) -> str:
        user_id = str(uuid.uuid4())
        ok(self.control.post("/_emulator/users", json={"id": user_id}), 201)
        return user_id

    def post(self, path: str, body: dict[str, Any]) -> Any:
        return ok(self.control.post(path, json=body))

    def put(self, path: str, body: dict[str, Any]) -> Any:
        return ok(self.control.put(path, json=body))

    def advance(self, seconds: float) -> None:
        self.post("/_emulator/clock", {"advance_seconds": seconds})

    def now(self) -> datetime:
        text = ok(self.control.get("/_emulator/clock"))["now"]
        return datetime.fromisoformat(text[:26] + "+00:00")

    # -- SDK clients ---------------------------------------------------------------------

    def _client(self, credential: Any, scopes: list[str]) -> GraphServiceClient:
        auth = AzureIdentityAuthenticationProvider(credential, scopes=scopes)
        context = ssl.create_default_context(cafile=str(self.emulator.ca_file))
        # The SDK's own middleware options: `/users/me-token-to-replace` (how the SDK
        # spells /me in its URL templates) becomes `/me` on the way out.
        http = GraphClientFactory.create_with_default_middleware(
            client=httpx.AsyncClient(verify=context, timeout=20), options=sdk_options
        )
        adapter = GraphRequestAdapter(auth, http)
        adapter.base_url = f"{self.emulator.base_url}/v1.0"
        return GraphServiceClient(request_adapter=adapter)

    def app_client(self, app: App | None = None) -> GraphServiceClient:
        """App-only, as a daemon script signs in: client id and secret."""
        app = app or self.new_app()
        credential = ClientSecretCredential(
            TENANT,
            app.client_id,
            app.secret,
            authority=self.host,
            disable_instance_discovery=True,
            connection_verify=str(self.emulator.ca_file),
        )
        return self._client(credential, [GRAPH_SCOPE])

    def user_client(self, user_id: str, scopes: str = "Presence.ReadWrite") -> GraphServiceClient:
        """Delegated, signed in by the device-code flow, approved as `user_id` would."""
        control = self.control

        def approve(verification_uri: str, user_code: str, expires_on: datetime) -> None:
            ok(
                control.post(
                    "/_emulator/device/approve", json={"user_code": user_code, "user": user_id}
                )
            )

        credential = DeviceCodeCredential(
            client_id=str(uuid.uuid4()),
            tenant_id=TENANT,
            authority=self.host,
            disable_instance_discovery=True,
            connection_verify=str(self.emulator.ca_file),
            prompt_callback=approve,
        )
        return self._client(credential, scopes.split())


async def refused(call: Awaitable[object]) -> tuple[int, ODataError]:
    """Awaits a call Graph must refuse; its status and Graph's error as the SDK parsed it."""
    try:
        await call
    except ODataError as error:
        assert error.error is not None, "Graph's error body: {error: {code, message, ...}}"
        return int(error.response_status_code or 0), error
    raise AssertionError("Graph accepted a call it refuses")


def in_minutes(tenant: Tenant, minutes: float) -> tuple[str, datetime]:
    """A dateTime `minutes` ahead on the emulator's clock, as dateTimeTimeZone wants it
    (no offset in the text), in UTC."""
    moment = tenant.now() + timedelta(minutes=minutes)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f"), moment
