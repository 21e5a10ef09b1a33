"""The AMI link against the real Asterisk, in-process (the hub's lines played by a
recorder):

* over TLS (`tlsenable` in manager.conf) the server certificate is checked against
  `ca_file`, and one it cannot check keeps the connector down, saying why;
* the manager.conf classes docs/pbx-asterisk.md gives are enough: the reader
  (`read = call`, `write = reporting`) may list but not `Setvar`; the writer
  (`write = call`) may `Setvar` (and list: an action needs any one of its classes).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from presencebridge.adapters.asterisk.client import AmiClient
from presencebridge.adapters.asterisk.settings import parse_source
from presencebridge.adapters.asterisk.source import AmiPbxSource
from presencebridge.core.model import CallState
from tests.support.asterisk import CONTEXT, AsteriskProcess, ensure_chroot

BOUND = 60.0  # seconds, a bound only


class Lines:
    def __init__(self) -> None:
        self.settled: list[str] = []

    def lines(self) -> Sequence[str]:
        return ["2101"]

    def add_lines_listener(self, listener: Callable[[], None]) -> None:
        pass

    async def report(self, extension: str, call_id: str, state: CallState) -> None:
        pass

    async def settle(self, extension: str, active: Collection[str]) -> None:
        self.settled.append(extension)


@pytest.fixture
def asterisk(tmp_path: Path) -> Iterator[AsteriskProcess]:
    ensure_chroot()
    process = AsteriskProcess(tmp_path / "asterisk")
    process.start()
    yield process
    process.close()


def connect(asterisk: AsteriskProcess, accept: Callable[[AmiPbxSource], bool], **extra: Any) -> str:
    """Runs a source over TLS until `accept` holds; its health detail then."""
    table = {"host": "127.0.0.1", "port": asterisk.ami_tls_port, "username": "reader",
             "secret": asterisk.secrets["reader"], "context": CONTEXT, "tls": True,
             "reconnect_max_seconds": 1, **extra}  # fmt: skip

    async def main() -> str:
        source = AmiPbxSource(parse_source(table), Lines())
        await source.start()
        try:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + BOUND
            while not accept(source):
                assert loop.time() < deadline, source.health()
                await asyncio.sleep(0.05)
            return source.health().detail
        finally:
            await source.stop()

    return asyncio.run(main())


def test_ami_over_tls_with_the_servers_ca(asterisk: AsteriskProcess) -> None:
    detail = connect(asterisk, lambda s: s.health().up, ca_file=str(asterisk.ca_file))
    assert detail.startswith(f"logged in at 127.0.0.1:{asterisk.ami_tls_port} as reader")


def test_a_certificate_that_cannot_be_checked_keeps_the_connector_down(
    asterisk: AsteriskProcess,
) -> None:
    detail = connect(asterisk, lambda s: s.client.counts.connection_failures > 0)
    assert "CERTIFICATE_VERIFY_FAILED" in detail, detail


def test_the_documented_manager_classes_allow_each_user_its_actions_only(
    asterisk: AsteriskProcess,
) -> None:
    setvar = {"Variable": "DEVICE_STATE(Custom:2101-teams)", "Value": "NOT_INUSE"}

    async def answers(user: str) -> dict[str, str | None]:
        table = {"host": "127.0.0.1", "port": asterisk.ami_port, "username": user,
                 "secret": asterisk.secrets[user]}  # fmt: skip
        client = AmiClient(parse_source(table), events="off")
        client.start()
        try:
            assert await client.wait_logged_in(BOUND), client.last_error
            found: dict[str, str | None] = {}
            for action, fields in (("ExtensionStateList", {}), ("DeviceStateList", {}),
                                   ("Setvar", setvar)):  # fmt: skip
                answer = await client.action(action, fields)
                found[action] = answer.response if answer.succeeded else answer.get("Message")
            return found
        finally:
            await client.stop()

    assert asyncio.run(answers("reader")) == {
        "ExtensionStateList": "Success",
        "DeviceStateList": "Success",
        "Setvar": "Permission denied",
    }
    assert asyncio.run(answers("writer")) == {
        "ExtensionStateList": "Success",
        "DeviceStateList": "Success",
        "Setvar": "Success",
    }
