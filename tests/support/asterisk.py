"""A real Asterisk 22 for the connector tests, and SIPp phones that call through it.

Asterisk runs from a Debian unstable chroot (Debian 12 has no asterisk package) made
once with mmdebstrap, the same one the interop recipe uses
(../shared/interop/asterisk-blf); `PRESENCEBRIDGE_ASTERISK_ROOT` names another place.
Each `AsteriskProcess` gets its own scratch directory inside the chroot and free
ports on 127.0.0.1 (AMI over TCP, SIP over UDP), so two test workers can run one each.

The dialplan: context `office`, extensions 2101..2103 are PJSIP phones (SIPp UASes
at fixed contacts) with hints that OR the phone with `Custom:<ext>-teams` and
FreePBX's `Custom:DND<ext>`; they honour `DND/<ext>` and `CF/<ext>` in AstDB with
exactly the dialplan docs/pbx-asterisk.md gives for a plain Asterisk (issue 17).
Endpoint 2199 is the caller, and also a phone at a fixed contact (extension 2199,
the forwarding target). Manager users: `reader` (read = call, write = reporting,
with an event filter) for the PBX connector, `writer` (write = call only) for the
outlet, `profile` (write = call,system: AstDB) for an outlet that applies the
profile, `admin` for the tests' own looks.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import random
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.support.ports import free_port
from tests.support.tls import make_certificate

ROOT = Path(os.environ.get("PRESENCEBRIDGE_ASTERISK_ROOT", "/tmp/interop-sid-asterisk"))
SIPP_DIR = Path(__file__).resolve().parent / "sipp"
PHONES = ("2101", "2102", "2103")
TARGET = "2199"  # the caller's endpoint, and a phone the forwarding tests call
CONTEXT = "office"
# Bounds, not expected durations: a busy two-core machine is slow to start processes.
START_TIMEOUT = 60.0
BUILD_TIMEOUT = 1800.0

# Only what the tests need (no other channel driver opens its default port).
# res_manager_devicestate gives AMI its DeviceStateList and DeviceStateChange.
MODULES = [
    "res_pjproject", "res_sorcery_config", "res_sorcery_memory", "res_sorcery_astdb",
    "res_pjsip", "res_pjsip_session", "res_pjsip_endpoint_identifier_user",
    "res_pjsip_authenticator_digest", "res_pjsip_sdp_rtp", "res_pjsip_pubsub",
    "res_pjsip_outbound_publish", "res_pjsip_exten_state", "res_pjsip_caller_id",
    "res_rtp_asterisk", "chan_pjsip", "codec_ulaw", "bridge_simple", "bridge_native_rtp",
    "app_dial", "pbx_config", "func_devstate", "res_manager_devicestate", "func_db",
]  # fmt: skip


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _built() -> bool:
    probe = subprocess.run(
        ["chroot", str(ROOT), "asterisk", "-V"], capture_output=True, check=False, timeout=60
    )
    return probe.returncode == 0


def ensure_chroot() -> None:
    """Skips the test without root; builds the chroot once (under a lock, since two
    workers may both find it missing)."""
    if os.geteuid() != 0:
        pytest.skip("Asterisk runs in a chroot, which needs root (make test runs as root in CI)")
    for tool in ("sipp", "mmdebstrap"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing: run `make sysdeps` (Debian: sip-tester, mmdebstrap)")
    with open("/tmp/presencebridge-asterisk-root.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _built():
            return
        shutil.rmtree(ROOT, ignore_errors=True)
        build = subprocess.run(
            [
                "mmdebstrap", "--variant=apt", "--mode=root",
                "--include=asterisk,asterisk-modules,asterisk-config",
                "--aptopt=APT::Install-Recommends \"false\"",
                # tolerate a mirror snapshot older than this machine's clock
                "--aptopt=Acquire::Check-Valid-Until \"false\"",
                "sid", str(ROOT), "http://deb.debian.org/debian",
            ],
            capture_output=True, text=True, check=False, timeout=BUILD_TIMEOUT,
        )  # fmt: skip
        if build.returncode != 0 or not _built():
            pytest.fail(f"building the Asterisk chroot failed:\n{build.stderr[-3000:]}")


# docs/pbx-asterisk.md "Call forwarding and DnD at the PBX", word for word: a plain
# Asterisk honouring FreePBX's AstDB keys. Busy() while DnD is on (FreePBX sends the
# caller to voicemail or busy), the forwarding target dialled in the same context.
PLAIN_ASTERISK_DIALPLAN = """\
exten => _21XX,1,GotoIf($["${DB(DND/${EXTEN})}" = "YES"]?dnd)
 same => n,GotoIf($["${DB(CF/${EXTEN})}" != ""]?forward)
 same => n,Dial(PJSIP/${EXTEN},60)
 same => n,Hangup()
 same => n(forward),Goto(${CONTEXT},${DB(CF/${EXTEN})},1)
 same => n(dnd),Busy(10)
"""


class AsteriskProcess:
    """One Asterisk with its own configuration, ports and secrets."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.ami_port = free_port()
        self.ami_tls_port = free_port()  # the same manager over TLS
        self.sip_port = free_udp_port()
        self.phone_ports = {ext: free_udp_port() for ext in (*PHONES, TARGET)}
        users = ("reader", "writer", "profile", "admin")
        self.secrets = {user: secrets.token_hex(12) for user in users}
        self.scratch = Path(tempfile.mkdtemp(prefix="pb-ast.", dir=ROOT / "tmp"))
        self.inside = "/" + str(self.scratch.relative_to(ROOT))  # the path in the chroot
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self._configure()

    @property
    def config(self) -> str:
        return f"{self.inside}/etc/asterisk.conf"

    def _configure(self) -> None:
        for sub in ("etc", "cache", "lib", "spool", "run", "log"):
            (self.scratch / sub).mkdir(parents=True, exist_ok=True)
        etc = self.scratch / "etc"
        self.certificate = make_certificate(self.scratch / "tls")
        for name, text in self._files().items():
            (etc / name).write_text(text)
        shutil.copy(ROOT / "etc/asterisk/indications.conf", etc / "indications.conf")

    @property
    def ca_file(self) -> Path:
        """What an AMI client over TLS trusts (the CA of the server certificate)."""
        return self.certificate.ca_file

    def _inside(self, path: Path) -> str:
        return "/" + str(path.relative_to(ROOT))

    def _files(self) -> dict[str, str]:
        a = self.inside
        rtp = random.randrange(30000, 59000, 2)  # Asterisk skips ports in use in its range
        directories = "\n".join(
            f"{key} => {value}"
            for key, value in {
                "astcachedir": f"{a}/cache", "astetcdir": f"{a}/etc",
                "astmoddir": "/usr/lib/x86_64-linux-gnu/asterisk/modules",
                "astvarlibdir": f"{a}/lib", "astdbdir": f"{a}/lib", "astkeydir": f"{a}/lib",
                "astdatadir": "/usr/share/asterisk", "astagidir": "/usr/share/asterisk/agi-bin",
                "astspooldir": f"{a}/spool", "astrundir": f"{a}/run", "astlogdir": f"{a}/log",
                "astsbindir": "/usr/sbin",
            }.items()
        )  # fmt: skip
        files = {
            "asterisk.conf": f"[directories]\n{directories}\n[options]\nnofork = yes\n",
            "modules.conf": "[modules]\nautoload = no\n"
            + "".join(f"load = {m}.so\n" for m in MODULES),
            "logger.conf": "[general]\n[logfiles]\nconsole => error,warning\n"
            "messages.log => notice,warning,error,verbose\n",
            "rtp.conf": f"[general]\nrtpstart = {rtp}\nrtpend = {rtp + 200}\n",
            "manager.conf": self._manager(),
            "pjsip.conf": self._pjsip(),
            "extensions.conf": self._dialplan(),
        }
        for empty in ("acl", "ccss", "cdr", "cel", "features", "pjproject", "udptl"):
            files[f"{empty}.conf"] = "; intentionally empty\n"
        return files

    def _manager(self) -> str:
        s = self.secrets
        return f"""[general]
enabled = yes
bindaddr = 127.0.0.1
port = {self.ami_port}
tlsenable = yes
tlsbindaddr = 127.0.0.1:{self.ami_tls_port}
tlscertfile = {self._inside(self.certificate.chain_file)}
tlsprivatekey = {self._inside(self.certificate.key_file)}

; the PBX connector: hint states in (docs/pbx-asterisk.md)
[reader]
secret = {s["reader"]}
deny = 0.0.0.0/0.0.0.0
permit = 127.0.0.1/255.255.255.255
read = call
write = reporting
eventfilter = Event: ExtensionStatus
eventfilter = Event: DeviceStateChange

; the outlet: Setvar DEVICE_STATE(Custom:...) only
[writer]
secret = {s["writer"]}
deny = 0.0.0.0/0.0.0.0
permit = 127.0.0.1/255.255.255.255
write = call

; an outlet with apply_profile: AstDB (DBGet/DBPut/DBDel need `system`)
[profile]
secret = {s["profile"]}
deny = 0.0.0.0/0.0.0.0
permit = 127.0.0.1/255.255.255.255
write = call,system

[admin]
secret = {s["admin"]}
deny = 0.0.0.0/0.0.0.0
permit = 127.0.0.1/255.255.255.255
read = all
write = all
"""

    def _pjsip(self) -> str:
        text = f"""[udp]
type = transport
protocol = udp
bind = 127.0.0.1:{self.sip_port}

[phone](!)
type = endpoint
context = {CONTEXT}
disallow = all
allow = ulaw
direct_media = no
rtp_timeout = 0
media_address = 127.0.0.1
bind_rtp_to_media_address = yes

"""
        for ext, port in self.phone_ports.items():
            text += f"\n[{ext}](phone)\naors = {ext}\n[{ext}]\ntype = aor\n"
            text += f"contact = sip:phone@127.0.0.1:{port}\n"
        return text

    def _dialplan(self) -> str:
        text = f"[{CONTEXT}]\n"
        for ext in PHONES:
            text += f"exten => {ext},hint,PJSIP/{ext}&Custom:{ext}-teams&Custom:DND{ext}\n"
        return text + PLAIN_ASTERISK_DIALPLAN

    # -- running ------------------------------------------------------------------------

    def start(self) -> None:
        self.starts += 1
        self.out_path = self.log_dir / f"asterisk-{self.ami_port}-{self.starts}.out"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        out = self.out_path.open("wb")
        self.process = subprocess.Popen(
            ["chroot", str(ROOT), "asterisk", "-f", "-n", "-C", self.config],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + START_TIMEOUT
        while b"Asterisk Ready" not in self.out_path.read_bytes():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"Asterisk did not start:\n{self.out_path.read_text()}")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.cli("core stop now")
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.scratch, ignore_errors=True)

    def cli(self, command: str) -> str:
        done = subprocess.run(
            ["chroot", str(ROOT), "asterisk", "-C", self.config, "-rx", command],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        return done.stdout

    def hint(self, extension: str) -> str:
        """The hint's state as `core show hint` gives it (Idle, InUse, Ringing, Busy…)."""
        for line in self.cli(f"core show hint {extension}").splitlines():
            if line.strip().startswith(f"{extension}@{CONTEXT}") and "State:" in line:
                return line.split("State:", 1)[1].split()[0]
        return "(no hint)"

    def extension_state(self, extension: str) -> str:
        """The hint's state as AMI `ExtensionState` gives it (`StatusText`), asked as
        the `admin` manager user over a plain socket (independent of the hub's client)."""
        login = f"Action: Login\r\nUsername: admin\r\nSecret: {self.secrets['admin']}\r\n"
        ask = f"Action: ExtensionState\r\nActionID: es\r\nExten: {extension}\r\n"
        ask += f"Context: {CONTEXT}\r\n"
        with socket.create_connection(("127.0.0.1", self.ami_port), timeout=10) as link:
            link.sendall(f"{login}Events: off\r\n\r\n{ask}\r\n".encode())
            data = b""
            while b"ActionID: es" not in data or not data.endswith(b"\r\n\r\n"):
                chunk = link.recv(65536)
                if not chunk:
                    break
                data += chunk
        answer = data.decode().split("ActionID: es", 1)[-1]
        for line in answer.splitlines():
            if line.startswith("StatusText:"):
                return line.split(":", 1)[1].strip()
        return f"(no answer: {answer!r})"

    def db(self, family: str, key: str) -> str | None:
        """An AstDB value as `database get` gives it; None when there is none."""
        out = self.cli(f"database get {family} {key}")
        for line in out.splitlines():
            if line.startswith("Value:"):
                return line.split(":", 1)[1].strip()
        return None

    def device_state(self, device: str) -> str:
        """A custom device's state as `devstate list` shows it (BUSY, NOT_INUSE...)."""
        for line in self.cli("devstate list").splitlines():
            if f"Name: '{device}'" in line and "State:" in line:
                return line.split("State:", 1)[1].strip().strip("'")
        return "(none)"

    def dialled(self) -> list[str]:
        """The outgoing channels Dial() made now that are answered (`PJSIP/2199-…`)."""
        found = []
        for line in self.cli("core show channels concise").splitlines():
            fields = line.split("!")
            if len(fields) > 5 and fields[4] == "Up" and fields[5] == "AppDial":
                found.append(fields[0])
        return found

    def hang_up_all(self) -> None:
        self.cli("channel request hangup all")

    def channels(self) -> int:
        out = self.cli("core show channels count")
        for line in out.splitlines():
            if "active channel" in line:
                return int(line.split()[0])
        return -1


class Sipp:
    """A SIPp process playing one phone or the caller; stopped when the test ends."""

    def __init__(self, log_path: Path) -> None:
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def run(self, *args: str) -> Sipp:
        out = self.log_path.open("wb")
        self.process = subprocess.Popen(
            ["sipp", *args, "-nostdin", "-m", "1", "-i", "127.0.0.1", "-mi", "127.0.0.1",
             "-mp", str(free_udp_port()), "-timeout", "600s", "-timeout_error",
             "-trace_err", "-error_file", str(self.log_path.with_suffix(".errors"))],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def phone(asterisk: AsteriskProcess, extension: str, log_dir: Path) -> Sipp:
    """The phone of `extension` (2199 too): answers one call and stays in it until
    Asterisk hangs up."""
    return Sipp(log_dir / f"sipp-phone-{extension}.log").run(
        "-sf", str(SIPP_DIR / "uas_answer.xml"), "-p", str(asterisk.phone_ports[extension])
    )  # fmt: skip


def dial(asterisk: AsteriskProcess, extension: str, log_dir: Path) -> Sipp:
    """The caller (endpoint 2199) dialling `extension`."""
    return Sipp(log_dir / f"sipp-caller-{extension}.log").run(
        f"127.0.0.1:{asterisk.sip_port}", "-sf", str(SIPP_DIR / "uac_call.xml"),
        "-s", extension, "-p", str(free_udp_port()),
    )  # fmt: skip


def call(asterisk: AsteriskProcess, extension: str, log_dir: Path) -> tuple[Sipp, Sipp]:
    """A call from 2199 to `extension`: its phone rings, answers, and both stay in the
    call until `asterisk.hang_up_all()`. The two SIPp processes (phone, caller)."""
    return phone(asterisk, extension, log_dir), dial(asterisk, extension, log_dir)
