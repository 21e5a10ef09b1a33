"""Issue 13 end to end, every part its own process: the server started with a config
file holding `[[pbx]] kind = "sip-dialog"` and `[[publish]] kind = "sip-presence"`,
both at a real Kamailio; the Graph emulator as Teams; SIPp as the phones of a call;
our own watcher as a BLF key and baresip as a soft phone watching presence.

* A SIPp call through Kamailio reaches the hub: the callee rings, is on the phone,
  is idle again.
* A Teams call lights the callee's BLF key (a confirmed dialog) and baresip shows
  Busy; after the call the key is dark and baresip shows Online. The hub does not read
  its own published dialog back as a PBX call.
* Kamailio restarted mid-call: no one stays on the phone once it is back.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.baresip import Baresip
from tests.support.kamailio import Kamailio, Sipp
from tests.support.server import ServerProcess, receive_until
from tests.support.sipwatch import ThreadedWatcher, dialog_states
from tests.support.teams import EmulatorProcess, new_teams_id, sync_server
from tests.support.waiting import eventually

CONFIG = """\
[[pbx]]
kind = "sip-dialog"
server = "127.0.0.1:{port}"
keepalive_seconds = 1
timeout_seconds = 4

[[publish]]
kind = "sip-presence"
server = "127.0.0.1:{port}"
language = "de"
"""


@pytest.fixture(scope="module")
def kamailio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kamailio]:
    server = Kamailio(tmp_path_factory.mktemp("kamailio"))
    server.start()
    yield server
    server.stop(kill=True)


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, emulator: EmulatorProcess, kamailio: Kamailio
) -> Iterator[ServerProcess]:
    folder = tmp_path_factory.mktemp("hub")
    config = folder / "presencebridge.toml"
    config.write_text(CONFIG.format(port=kamailio.port))
    process = sync_server(folder / "server", emulator)
    process.extra_args = (*process.extra_args, "--config", str(config))
    process.start()
    with process.client() as client:
        body = {"id": "hq", "name": "HQ", "settings": {"teams_sync_mode": "telephony_and_presence"}}
        assert client.post("/api/v1/groups", json=body).status_code == 201
    yield process
    process.stop()


@pytest.fixture
def sipp(kamailio: Kamailio, tmp_path: Path) -> Iterator[Sipp]:
    phones = Sipp(kamailio, tmp_path / "sipp")
    yield phones
    phones.kill()


def new_user(server: ServerProcess, emulator: EmulatorProcess | None = None) -> tuple[str, str]:
    """A user with a fresh extension (and a Teams account when an emulator is given)."""
    user_id = f"u-{uuid.uuid4().hex[:8]}"
    extension = str(random.randint(100_000, 999_999))
    body: dict[str, Any] = {"id": user_id, "display_name": user_id, "group": "hq",
                            "extensions": [extension]}  # fmt: skip
    if emulator is not None:
        body["teams_user_id"] = new_teams_id()
        emulator.add_user(body["teams_user_id"])
    with server.client() as client:
        response = client.post("/api/v1/users", json=body)
        assert response.status_code == 201, response.text
    return user_id, extension


def connectors(server: ServerProcess) -> dict[str, dict[str, Any]]:
    found = httpx.get(server.url + "/healthz", timeout=10).json()["connectors"]
    return {c["kind"]: c for c in found}


def all_lines_up(server: ServerProcess) -> bool:
    return bool(connectors(server)["sip-dialog"]["up"])


def telephony(server: ServerProcess, user: str) -> str:
    with server.client() as client:
        return str(client.get(f"/api/v1/users/{user}").json()["presence"]["telephony"])


def test_a_sipp_call_through_kamailio_rings_and_ends_at_the_hub(
    server: ServerProcess, sipp: Sipp
) -> None:
    caller, caller_ext = new_user(server)
    callee, callee_ext = new_user(server)
    eventually(lambda: all_lines_up(server), bool, timeout=60)
    with server.stream() as ws:
        sipp.call(caller_ext, callee_ext, talk_ms=2000)
        for want in ("ringing", "on_the_phone", "idle"):
            receive_until(ws, callee, lambda m, w=want: m["telephony"] == w, timeout=60)  # type: ignore[misc]
    assert sipp.wait() == [0, 0]
    eventually(lambda: telephony(server, caller), lambda t: t == "idle", timeout=30)
    health = connectors(server)
    assert health["sip-dialog"]["up"] and health["sip-presence"]["up"], health


def test_a_teams_call_lights_the_blf_key_and_shows_busy_in_baresip(
    server: ServerProcess, emulator: EmulatorProcess, kamailio: Kamailio, tmp_path: Path
) -> None:
    user, extension = new_user(server, emulator)
    with server.client() as client:
        teams_id = client.get(f"/api/v1/users/{user}").json()["teams_user_id"]
    uri = f"sip:{extension}@{kamailio.domain}"
    phone = Baresip(tmp_path / "baresip", kamailio, extension)
    phone.start()
    blf = ThreadedWatcher(("127.0.0.1", kamailio.port), kamailio.domain)
    try:
        key = blf.subscribe(uri, "dialog")
        eventually(phone.shows, lambda s: s == "Online", timeout=60)  # published at start

        emulator.client_presence(teams_id, "Busy", "InACall")
        eventually(lambda: telephony(server, user), lambda t: t == "on_the_phone", timeout=60)
        eventually(lambda: blf.read(lambda w: dialog_states(w.last(key))),
                   lambda s: s == ["confirmed"], timeout=30)  # fmt: skip
        eventually(phone.shows, lambda s: s == "Busy", timeout=30)
        # Its own published dialog is not read back as a PBX call.
        with server.client() as client:
            presence = client.get(f"/api/v1/users/{user}").json()["presence"]
        assert presence["telephony_source"] != "pbx", presence

        emulator.client_presence(teams_id, "Available", "Available")
        eventually(lambda: telephony(server, user), lambda t: t == "idle", timeout=60)
        eventually(lambda: blf.read(lambda w: dialog_states(w.last(key))),
                   lambda s: s == ["terminated"], timeout=30)  # fmt: skip
        eventually(phone.shows, lambda s: s == "Online", timeout=30)
    finally:
        blf.close()
        phone.stop()


def test_kamailio_restarted_mid_call_leaves_no_one_on_the_phone(
    server: ServerProcess, kamailio: Kamailio, sipp: Sipp
) -> None:
    caller, caller_ext = new_user(server)
    callee, callee_ext = new_user(server)
    eventually(lambda: all_lines_up(server), bool, timeout=60)
    sipp.call(caller_ext, callee_ext, talk_ms=120_000)
    eventually(lambda: telephony(server, callee), lambda t: t == "on_the_phone", timeout=60)
    kamailio.stop(kill=True)  # a crash: every call and subscription gone with it
    sipp.kill()
    eventually(lambda: all_lines_up(server), lambda up: not up, timeout=30)
    kamailio.start()
    eventually(lambda: all_lines_up(server), bool, timeout=60)
    # The PBX knows no call now, and neither does the hub.
    eventually(lambda: telephony(server, callee), lambda t: t == "idle", timeout=30)
    eventually(lambda: telephony(server, caller), lambda t: t == "idle", timeout=30)
