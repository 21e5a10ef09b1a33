"""`asterisk-ami` under faults (issue 13), each with its own Asterisk and server:

* the AMI link cut mid-call (a relay between hub and Asterisk drops it) while the
  call ends: the hub reconnects, reads everything again and shows idle;
* Asterisk restarted mid-call: the same, after the restart;
* a wrong secret: the connector is down on /healthz with a detail that says so, and
  neither the secret given nor the right one is in the server's log or /healthz.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.connectors.asterisk_server import add_user, asterisk_server, connector, telephony
from tests.support.asterisk import AsteriskProcess, Sipp, call, ensure_chroot
from tests.support.server import ServerProcess
from tests.support.tcpproxy import TcpProxy
from tests.support.waiting import eventually

WAIT = 60.0  # a bound only


@pytest.fixture
def asterisk(tmp_path: Path) -> Iterator[AsteriskProcess]:
    ensure_chroot()
    process = AsteriskProcess(tmp_path / "asterisk")
    process.start()
    yield process
    process.close()


@pytest.fixture
def phones() -> Iterator[list[Sipp]]:
    started: list[Sipp] = []
    yield started
    for sipp in started:
        sipp.stop()


def on_the_phone(server: ServerProcess, asterisk: AsteriskProcess, log_dir: Path) -> list[Sipp]:
    """A call to 2101 (anna), up in Asterisk and in the hub."""
    sipps = list(call(asterisk, "2101", log_dir))
    eventually(lambda: telephony(server, "anna"), lambda t: t == "on_the_phone", WAIT)
    return sipps


def test_a_call_ending_while_the_ami_link_is_down_ends_in_the_hub_after_reconnecting(
    asterisk: AsteriskProcess, phones: list[Sipp], tmp_path: Path
) -> None:
    proxy = TcpProxy(asterisk.ami_port)
    server = asterisk_server(tmp_path / "hub", asterisk, ami_port=proxy.port, publish=False)
    try:
        with server.client() as api:
            add_user(api, "anna", "2101")
        eventually(lambda: connector(server, "asterisk"), lambda c: c["up"], WAIT)
        phones += on_the_phone(server, asterisk, tmp_path)

        proxy.cut()
        down = eventually(lambda: connector(server, "asterisk"), lambda c: not c["up"], WAIT)
        assert "127.0.0.1" in down["detail"], down
        asterisk.hang_up_all()
        eventually(lambda: asterisk.hint("2101"), lambda s: s == "Idle", WAIT)
        # Nothing can have told the hub yet: the link is down.
        assert telephony(server, "anna") == "on_the_phone"

        proxy.restore()
        eventually(lambda: telephony(server, "anna"), lambda t: t == "idle", WAIT)
        health = eventually(lambda: connector(server, "asterisk"), lambda c: c["up"], WAIT)
        assert health["counts"]["logins"] >= 2, health
        assert health["counts"]["reads"] >= 2, health
    finally:
        server.stop()
        proxy.close()


def test_asterisk_restarted_mid_call_leaves_no_one_on_the_phone(
    asterisk: AsteriskProcess, phones: list[Sipp], tmp_path: Path
) -> None:
    server = asterisk_server(tmp_path / "hub", asterisk, publish=False)
    try:
        with server.client() as api:
            add_user(api, "anna", "2101")
        eventually(lambda: connector(server, "asterisk"), lambda c: c["up"], WAIT)
        phones += on_the_phone(server, asterisk, tmp_path)

        asterisk.stop()  # the call dies with it
        eventually(lambda: connector(server, "asterisk"), lambda c: not c["up"], WAIT)
        asterisk.start()
        eventually(lambda: telephony(server, "anna"), lambda t: t == "idle", WAIT)
        health = eventually(lambda: connector(server, "asterisk"), lambda c: c["up"], WAIT)
        assert health["counts"]["logins"] >= 2, health
    finally:
        server.stop()


def test_a_wrong_secret_is_reported_on_healthz_and_never_logged(
    asterisk: AsteriskProcess, tmp_path: Path
) -> None:
    wrong = "not-the-secret-7f3a9c1e2b"
    server = asterisk_server(tmp_path / "hub", asterisk, reader_secret=wrong)
    try:
        down = eventually(
            lambda: connector(server, "asterisk"),
            lambda c: c["counts"]["connection_failures"] > 0,
            WAIT,
        )
        assert not down["up"]
        assert down["detail"].startswith(f"login refused at 127.0.0.1:{asterisk.ami_port}"), down
        assert "Authentication failed" in down["detail"], down
        # The outlet, with its right secret, is unaffected.
        eventually(lambda: connector(server, "asterisk-blf"), lambda c: c["up"], WAIT)
        with server.client() as client:
            healthz = json.dumps(client.get("/healthz").json())
            metrics = client.get("/metrics").text
    finally:
        server.stop()
    log = server.log_path.read_text()
    assert "login refused" in log  # said once, clearly
    for secret in (wrong, asterisk.secrets["reader"], asterisk.secrets["writer"]):
        assert secret not in log
        assert secret not in healthz
        assert secret not in metrics
    assert 'presencebridge_connector_up{kind="asterisk-ami",name="asterisk"} 0.0' in metrics
