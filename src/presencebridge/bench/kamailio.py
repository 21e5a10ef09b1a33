"""A throw-away Kamailio presence server on loopback, for the tests and the sip-dialog
benchmark (issue 13).

Kamailio 5.6 from Debian (`kamailio`, `kamailio-presence-modules`,
`kamailio-sqlite-modules`) with `kamailio.cfg` beside this file, a copy of the
interop recipe: proxy and registrar for calls, presence server for PUBLISH and
SUBSCRIBE (Event presence and dialog), pua_dialoginfo publishing the state of every
call relayed through it (what a BLF key at a real PBX shows). One process group on a
free loopback port (UDP and TCP), its scratch files in the given folder.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sqlite3
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

CONFIG = Path(__file__).parent / "kamailio.cfg"
MODULES = Path("/usr/lib/x86_64-linux-gnu/kamailio/modules")
SQL = Path("/usr/share/kamailio/db_sqlite")


def eventually(probe: Callable[[], bool], timeout: float, step: float = 0.1) -> None:
    """Wait until `probe()` holds; `TimeoutError` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() > deadline:
            raise TimeoutError(f"not reached within {timeout} s")
        time.sleep(step)


def free_sip_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1 (Kamailio listens on both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = int(tcp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no port free for both UDP and TCP")


def options_answered(port: int, timeout: float = 0.5) -> bool:
    """Whether a SIP server answers an OPTIONS on 127.0.0.1:port (UDP)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        local = sock.getsockname()[1]
        branch = f"z9hG4bK{time.monotonic_ns()}"
        sock.sendto(
            (
                f"OPTIONS sip:127.0.0.1:{port} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP 127.0.0.1:{local};branch={branch}\r\n"
                "Max-Forwards: 70\r\nFrom: <sip:probe@127.0.0.1>;tag=p\r\n"
                f"To: <sip:127.0.0.1:{port}>\r\nCall-ID: {branch}\r\nCSeq: 1 OPTIONS\r\n"
                "Content-Length: 0\r\n\r\n"
            ).encode(),
            ("127.0.0.1", port),
        )
        sock.settimeout(timeout)
        try:
            return sock.recv(65536).startswith(b"SIP/2.0 ")
        except OSError:
            return False


class Kamailio:
    """One Kamailio on `port`; `secret` turns digest authentication on."""

    def __init__(
        self,
        folder: Path,
        secret: str | None = None,
        sha256: bool = False,
        binary: str = "kamailio",
        memory_mb: int = 64,
        clean_period: int = 100,
    ) -> None:
        self.binary = binary
        self.clean_period = clean_period
        self.memory_mb = memory_mb
        self.folder = folder
        self.port = free_sip_port()
        self.secret = secret
        self.sha256 = sha256
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def domain(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log(self) -> str:
        path = self.folder / "kamailio.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def _write(self) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        database = self.folder / "kamailio.sqlite"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{database}{suffix}").unlink(missing_ok=True)
        with sqlite3.connect(database) as db:
            # WAL from the start: Kamailio's workers each set it when they connect, and
            # on a fresh file they race for the lock doing so ("database is locked").
            db.execute("PRAGMA journal_mode=WAL")
            for name in ("standard-create.sql", "presence-create.sql"):
                db.executescript((SQL / name).read_text())
        text = CONFIG.read_text()
        for key, value in {
            "__PORT__": str(self.port),
            "__DBURL__": f"sqlite:///{database}",
            "__DBFILE__": str(database),
            "__RUNDIR__": str(self.folder),
            "__MODDIR__": str(MODULES),
            "__SECRET__": self.secret or "-",
            "__CLEAN__": str(self.clean_period),
        }.items():
            text = text.replace(key, value)
        config = self.folder / "kamailio.cfg"
        config.write_text(text)
        return config

    def start(self) -> None:
        for attempt in range(3):
            try:
                self._start()
                return
            except RuntimeError:
                # A worker that lost the race for the SQLite file takes Kamailio down
                # at start; a second start finds the file settled.
                if attempt == 2 or "database is locked" not in self.log:
                    raise

    def _start(self) -> None:
        config = self._write()
        defines = []
        if self.secret is not None:
            defines += ["-A", "WITH_AUTH"] + (["-A", "WITH_SHA256"] if self.sha256 else [])
        log = (self.folder / "kamailio.log").open("ab")
        folder = str(self.folder)
        self.process = subprocess.Popen(  # noqa: S603 - our own binary and arguments
            [self.binary, "-f", str(config), *defines, "-P", f"{folder}/kamailio.pid",
             "-Y", folder, "-w", folder, "-DD", "-E", "-m", str(self.memory_mb), "-M", "8"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: a kill takes the workers too
        )  # fmt: skip
        self.starts += 1

        def up() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"kamailio exited:\n{self.log[-3000:]}")
            return options_answered(self.port)

        eventually(up, timeout=60)

    def stop(self, kill: bool = False) -> None:
        if self.process is None:
            return
        if kill:
            # Like a crash or a power cut: every process at once, no goodbye.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
        elif self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
        # Its workers follow the main process; wait until none answers any more.
        try:
            eventually(lambda: not options_answered(self.port, 0.2), timeout=20)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            eventually(lambda: not options_answered(self.port, 0.2), timeout=10)

    def pause(self) -> None:
        """Silent but alive, as an overloaded server is: every process stopped, every
        subscription kept."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGCONT)

    def restart(self) -> None:
        """Stop and start on the same port: every subscription and call is forgotten."""
        self.stop()
        self.start()

    def register(self, user: str, contact_port: int) -> None:
        """REGISTER `user`'s phone at 127.0.0.1:contact_port (a SIPp UAS)."""
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("127.0.0.1", 0))
            local = sock.getsockname()[1]
            message = (
                f"REGISTER sip:{self.domain} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP 127.0.0.1:{local};branch=z9hG4bKreg{time.monotonic_ns()}\r\n"
                f"Max-Forwards: 70\r\nFrom: <sip:{user}@{self.domain}>;tag=r{local}\r\n"
                f"To: <sip:{user}@{self.domain}>\r\nCall-ID: reg-{user}-{local}\r\n"
                f"CSeq: 1 REGISTER\r\nContact: <sip:{user}@127.0.0.1:{contact_port}>\r\n"
                "Expires: 600\r\nContent-Length: 0\r\n\r\n"
            ).encode()
            sock.settimeout(2)
            for _ in range(10):
                sock.sendto(message, ("127.0.0.1", self.port))
                try:
                    answer = sock.recv(65536)
                except TimeoutError:
                    continue
                assert answer.startswith(b"SIP/2.0 200"), answer[:200]
                return
        raise AssertionError("REGISTER not answered")
