"""baresip, a real SIP soft phone, watching one user's presence at the presence server
(RFC 3856 SUBSCRIBE, `presence=p2p` contact), driven over its ctrl_tcp socket: what
it shows for the contact is what a person would see (Online, Busy, Offline, …)."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
from pathlib import Path

from presencebridge.bench.kamailio import free_sip_port
from tests.support.kamailio import HERE, Kamailio, need
from tests.support.ports import free_port
from tests.support.waiting import eventually

MODULES = Path("/usr/lib/baresip/modules")


class _PortTaken(Exception):
    pass


def _free_sip_port_pair() -> int:
    """A SIP port whose next port is free for TCP too: baresip listens for SIP over
    TLS on the port after its UDP/TCP one and gives up when that is taken."""
    for _ in range(50):
        port = free_sip_port()
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tls:
            try:
                tls.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
            return port
    raise RuntimeError("no pair of free ports for baresip")


class Baresip:
    def __init__(self, folder: Path, kamailio: Kamailio, watched: str) -> None:
        self.binary = need("baresip")
        self.folder = folder
        self.sip_port = _free_sip_port_pair()
        self.ctrl_port = free_port()
        self.kamailio = kamailio
        self.watched = watched
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        # The port is free when chosen but another test's server may take it before
        # baresip binds; then it exits at once, and a fresh port is the remedy.
        for _ in range(5):
            try:
                self._start()
                return
            except _PortTaken:
                self.sip_port, self.ctrl_port = _free_sip_port_pair(), free_port()
        self._start()

    def _start(self) -> None:
        home = self.folder / "baresip"
        home.mkdir(parents=True, exist_ok=True)
        for name in ("config", "accounts", "contacts"):
            text = (HERE / "baresip" / name).read_text()
            for key, value in {
                "__SIP__": str(self.sip_port),
                "__CTRL__": str(self.ctrl_port),
                "__MODDIR__": str(MODULES),
                "__PORT__": str(self.kamailio.port),
                "__WATCHED__": self.watched,
            }.items():
                text = text.replace(key, value)
            (home / name).write_text(text)
        log = (self.folder / "baresip.log").open("ab")
        self.process = subprocess.Popen(
            [self.binary, "-f", str(home)], stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
        eventually(self._answers, bool, timeout=60, step=0.1)

    def _answers(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            if "Address already in use" in (self.folder / "baresip.log").read_text(
                errors="replace"
            ):
                (self.folder / "baresip.log").unlink()
                raise _PortTaken
            raise RuntimeError((self.folder / "baresip.log").read_text(errors="replace"))
        try:
            self.command("contacts")
        except OSError:
            return False
        return True

    def command(self, command: str) -> str:
        """One ctrl_tcp command (netstring-framed JSON); its text answer."""
        message = json.dumps({"command": command, "params": "", "token": "t"}).encode()
        with socket.create_connection(("127.0.0.1", self.ctrl_port), timeout=5) as sock:
            sock.sendall(b"%d:%s," % (len(message), message))
            buffer = b""
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    raise ConnectionError("ctrl_tcp closed")
                buffer += chunk
                while b":" in buffer:
                    size, _, rest = buffer.partition(b":")
                    if len(rest) < int(size) + 1:
                        break
                    document, buffer = json.loads(rest[: int(size)]), rest[int(size) + 1 :]
                    if document.get("response"):
                        return str(document.get("data", ""))

    def shows(self) -> str:
        """What baresip shows for the watched contact: Online, Busy, Offline, Unknown."""
        line = next(
            row for row in self.command("contacts").splitlines() if f"{self.watched}@" in row
        )
        # "...>   \x1b[31mBusy\x1b[;m Watched <sip:…>"
        if "\x1b[" in line:
            return line.split("\x1b[")[1].split("m", 1)[1]
        return line.split()[1]

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
