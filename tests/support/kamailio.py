"""A throw-away Kamailio presence server (`presencebridge.bench.kamailio`, shared
with the sip-dialog benchmark) and SIPp calls through it (issue 13).

When a binary is missing: as root it is installed from Debian (what `make sysdeps`
does), otherwise the test is skipped and says which package to install.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from presencebridge.bench import kamailio
from presencebridge.bench.kamailio import SQL, free_sip_port

HERE = Path(__file__).parent / "sip"
PACKAGES = {
    "kamailio": "kamailio kamailio-presence-modules kamailio-sqlite-modules",
    "sipp": "sip-tester",
    "baresip": "baresip-core",
}


def need(binary: str) -> str:
    """The binary's path; installs its Debian package as root, skips otherwise."""
    found = shutil.which(binary)
    ready = found is not None and (binary != "kamailio" or (SQL / "presence-create.sql").exists())
    if ready and found is not None:
        return found
    packages = PACKAGES[binary]
    if os.geteuid() != 0:
        pytest.skip(f"{binary} is not installed: install Debian's {packages} (or run as root)")
    subprocess.run(
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", *packages.split()],
        check=True,
        capture_output=True,
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
    )
    found = shutil.which(binary)
    assert found is not None, f"{binary} still missing after installing {packages}"
    return found


class Kamailio(kamailio.Kamailio):
    """`presencebridge.bench.kamailio.Kamailio`, installed or skipped as `need` says."""

    def __init__(self, folder: Path, secret: str | None = None, sha256: bool = False) -> None:
        super().__init__(folder, secret, sha256, binary=need("kamailio"))


class Sipp:
    """SIPp processes for one call through Kamailio: `callee`'s phone (UAS, registered
    with Kamailio) answers after ringing; `caller` talks for `talk_ms` then hangs up."""

    def __init__(self, kamailio: Kamailio, folder: Path) -> None:
        self.binary = need("sipp")
        self.kamailio = kamailio
        self.folder = folder
        self.processes: list[subprocess.Popen[bytes]] = []

    def _run(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        self.folder.mkdir(parents=True, exist_ok=True)
        log = (self.folder / f"sipp-{name}.log").open("ab")
        process = subprocess.Popen(
            [self.binary, *args, "-i", "127.0.0.1", "-m", "1", "-nostdin",
             "-timeout", "120s", "-timeout_error", "-mi", "127.0.0.1", "-mp", str(free_sip_port())],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        self.processes.append(process)
        return process

    def call(self, caller: str, callee: str, talk_ms: int) -> None:
        """The callee's phone rings for 1.5 s, then answers."""
        uas_port = free_sip_port()
        self._run("uas", ["-sf", str(HERE / "uas_answer.xml"), "-p", str(uas_port)])
        self.kamailio.register(callee, uas_port)
        self._run(
            "uac",
            [self.kamailio.domain, "-sf", str(HERE / "uac_call.xml"), "-p", str(free_sip_port()),
             "-s", callee, "-key", "caller", caller, "-d", str(talk_ms)],
        )  # fmt: skip

    def wait(self, timeout: float = 120) -> list[int | None]:
        codes: list[int | None] = []
        for process in self.processes:
            try:
                codes.append(process.wait(timeout))
            except subprocess.TimeoutExpired:
                codes.append(None)
        return codes

    def kill(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
                process.wait(10)
