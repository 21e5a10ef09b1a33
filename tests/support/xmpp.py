"""Real XMPP servers for the tests, and a real client watching presence.

`ProsodyServer` and `EjabberdServer` run the Debian packages on 127.0.0.1 with free
ports (c2s, XEP-0114 component, ejabberd's admin HTTP API and Erlang distribution), a
scratch folder each, and can be restarted on the same ports and data. Both follow the
recipes in shared/interop (prosody-xmpp, ejabberd-xmpp). A `Watcher` is a slixmpp
client in a thread of its own, the way a colleague's chat client sees presence.

When a server binary is missing, the tests install it (as root, like `make sysdeps`)
or skip saying which package to install.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import slixmpp

from tests.support.ports import free_port
from tests.support.waiting import eventually

DOMAIN = "localhost"
COMPONENT = "presence.localhost"
# Bounds, not waits: the servers come up in about a second idle, much slower when two
# test workers share two cores with everything else.
START_TIMEOUT = 90.0


def need(binary: str, package: str) -> str:
    """The binary's path; installed from Debian as root, else the test is skipped."""
    found = shutil.which(binary, path=f"{os.environ.get('PATH', '')}:/usr/sbin")
    if found is None and os.geteuid() == 0:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", package]
        for command in (install, ["apt-get", "update", "-qq"], install):  # lists may be old
            subprocess.run(command, env=env, capture_output=True, check=False, timeout=600)
            found = shutil.which(binary, path=f"{os.environ.get('PATH', '')}:/usr/sbin")
            if found is not None:
                break
    if found is None:
        pytest.skip(f"{binary} is not installed (apt-get install {package}, or run as root)")
    return found


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class Account:
    user: str
    password: str

    @property
    def jid(self) -> str:
        return f"{self.user}@{DOMAIN}"


class ProsodyServer:
    """Prosody 0.12 with c2s, the component `presence.localhost` and a shared roster
    group (mod_groups) holding `members`: every member sees every other."""

    kind = "prosody"

    def __init__(self, folder: Path, secret: str, members: dict[str, str]) -> None:
        need("prosody", "prosody")
        self.folder = folder
        self.secret = secret
        self.members = members  # JID -> name in the rosters
        self.c2s = free_port()
        self.component = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "data").mkdir(exist_ok=True)
        self.config = folder / "prosody.cfg.lua"
        self._write_config()

    def _write_config(self) -> None:
        root = "true" if os.geteuid() == 0 else "false"
        groups = "[Company]\n" + "".join(f"{j}={n}\n" for j, n in self.members.items())
        (self.folder / "groups.txt").write_text(groups)
        self.config.write_text(f"""
run_as_root = {root}
pidfile = "{self.folder}/prosody.pid"
data_path = "{self.folder}/data"
log = {{ {{ levels = {{ min = "info" }}, to = "file", filename = "{self.folder}/prosody.log" }} }}
interfaces = {{ "127.0.0.1" }}
c2s_ports = {{ {self.c2s} }}
c2s_interfaces = {{ "127.0.0.1" }}
component_ports = {{ {self.component} }}
component_interface = "127.0.0.1"
modules_disabled = {{ "s2s", "http", "bosh", "websocket" }}
modules_enabled = {{ "roster", "saslauth", "disco", "ping", "groups" }}
c2s_require_encryption = false
authentication = "internal_hashed"
storage = "internal"
groups_file = "{self.folder}/groups.txt"
VirtualHost "{DOMAIN}"
Component "{COMPONENT}"
    component_secret = "{self.secret}"
""")

    def register(self, account: Account) -> None:
        result = subprocess.run(
            ["prosodyctl", "--config", str(self.config), "register", account.user, DOMAIN,
             account.password],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr

    def start(self) -> None:
        log = (self.folder / "stdout.log").open("ab")
        self.process = subprocess.Popen(
            ["prosody", "--config", str(self.config), "-F"], stdout=log, stderr=subprocess.STDOUT
        )
        process = self.process

        def up() -> bool:
            if process.poll() is not None:
                raise RuntimeError(f"prosody exited:\n{self.log()}")
            return _listening(self.c2s) and _listening(self.component)

        eventually(up, bool, START_TIMEOUT, step=0.1)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        self.stop()

    def log(self) -> str:
        path = self.folder / "prosody.log"
        return path.read_text(errors="replace") if path.exists() else ""


class EjabberdServer:
    """ejabberd 23 with c2s, the component `presence.localhost` and the admin HTTP API
    (mod_http_api) on loopback; users, shared roster groups and roster items are made
    through the API, as the hub's optional roster provisioning does."""

    kind = "ejabberd"

    def __init__(self, folder: Path, secret: str) -> None:
        need("ejabberdctl", "ejabberd")
        if os.geteuid() != 0 and pwd.getpwuid(os.geteuid()).pw_name != "ejabberd":
            pytest.skip("Debian's ejabberdctl runs only as root or as ejabberd (make test: root)")
        # As root the node runs as the `ejabberd` user, who cannot enter pytest's private
        # temporary folders: a scratch folder of its own in /tmp, its logs copied to
        # `folder` by `close`.
        self.keep = folder
        self.folder = Path(tempfile.mkdtemp(prefix="ejabberd-test-", dir="/tmp"))
        self.secret = secret
        self.c2s, self.component, self.http, self.dist = (free_port() for _ in range(4))
        self.node = f"ejtest{os.getpid()}x{self.c2s}"
        self.folder.chmod(0o755)
        for sub in ("spool", "logs"):
            (self.folder / sub).mkdir(exist_ok=True)
        self._write_config()
        if os.geteuid() == 0 and shutil.which("chown"):
            # ejabberdctl runs the node as the `ejabberd` system user when started as root
            subprocess.run(["chown", "-R", "ejabberd:", str(self.folder)], check=False, timeout=30)
        self.process: subprocess.Popen[bytes] | None = None

    def _write_config(self) -> None:
        (self.folder / "ejabberd.yml").write_text(f"""
hosts: ["{DOMAIN}"]
loglevel: info
log_rotate_count: 0
hide_sensitive_log_data: true
auth_method: internal
auth_password_format: scram
listen:
  - port: {self.c2s}
    ip: "127.0.0.1"
    module: ejabberd_c2s
    starttls: false
  - port: {self.http}
    ip: "127.0.0.1"
    module: ejabberd_http
    request_handlers:
      /api: mod_http_api
  - port: {self.component}
    ip: "127.0.0.1"
    module: ejabberd_service
    hosts:
      "{COMPONENT}":
        password: "{self.secret}"
acl:
  local_net:
    ip: ["127.0.0.0/8"]
api_permissions:
  "hub on loopback":
    from: [mod_http_api]
    who:
      acl: local_net
    what: "*"
  "console commands":
    from: [ejabberd_ctl]
    who: all
    what: "*"
s2s_access: none
modules:
  mod_adhoc: {{}}
  mod_admin_extra: {{}}
  mod_disco: {{}}
  mod_ping: {{}}
  mod_roster: {{versioning: true}}
  mod_shared_roster: {{}}
""")
        (self.folder / "ejabberdctl.cfg").write_text(
            f"ERLANG_NODE={self.node}@localhost\nINET_DIST_INTERFACE=127.0.0.1\n"
            f"ERL_DIST_PORT={self.dist}\nERL_EPMD_ADDRESS=127.0.0.1\n"
        )
        inetrc = Path("/etc/ejabberd/inetrc")
        if inetrc.exists():
            shutil.copy(inetrc, self.folder / "inetrc")

    def _ctl(self, *args: str) -> list[str]:
        f = self.folder
        return ["ejabberdctl", "--config-dir", str(f), "--config", str(f / "ejabberd.yml"),
                "--ctl-config", str(f / "ejabberdctl.cfg"), "--logs", str(f / "logs"),
                "--spool", str(f / "spool"), *args]  # fmt: skip

    def _env(self) -> dict[str, str]:
        return {**os.environ, "EJABBERD_PID_PATH": str(self.folder / "ejabberd.pid")}

    def start(self) -> None:
        log = (self.folder / "foreground.log").open("ab")
        self.process = subprocess.Popen(
            self._ctl("foreground"), stdout=log, stderr=subprocess.STDOUT, env=self._env()
        )
        process = self.process

        def up() -> bool:
            if process.poll() is not None:
                raise RuntimeError(f"ejabberd exited:\n{self.log()}")
            ports = (self.c2s, self.component, self.http)
            return all(_listening(p) for p in ports) and self._api_answers()

        eventually(up, bool, START_TIMEOUT, step=0.2)

    def _api_answers(self) -> bool:
        try:
            status, _ = self.api("status", {})
        except OSError:
            return False
        return status == 200

    def stop(self) -> None:
        if self.process is None:
            return
        subprocess.run(self._ctl("stop"), env=self._env(), capture_output=True, timeout=60,
                       check=False)  # fmt: skip
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
        eventually(lambda: any(_listening(p) for p in (self.c2s, self.component)), lambda b: not b,
                   60, step=0.2)  # fmt: skip
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        self.stop()
        self.keep.mkdir(parents=True, exist_ok=True)
        shutil.copytree(self.folder / "logs", self.keep / "logs", dirs_exist_ok=True)
        shutil.rmtree(self.folder, ignore_errors=True)

    def api(self, command: str, args: dict[str, Any]) -> tuple[int, Any]:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.http}/api/{command}",
            data=json.dumps(args).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")

    def register(self, account: Account) -> None:
        body = {"user": account.user, "host": DOMAIN, "password": account.password}
        status, result = self.api("register", body)
        assert status == 200, (status, result)

    def shared_group(self) -> None:
        """Every local user sees every other (`@all@`)."""
        body = {"group": "company", "host": DOMAIN, "label": "Company", "description": "",
                "display": "company"}  # fmt: skip
        assert self.api("srg_create", body)[0] == 200
        body = {"user": "@all@", "host": DOMAIN, "group": "company", "grouphost": DOMAIN}
        assert self.api("srg_user_add", body)[0] == 200

    def contact(self, owner: str, jid: str, nick: str) -> None:
        """`jid` in `owner`'s roster with subscription both (a telephony contact)."""
        user, _, host = jid.partition("@")
        body = {"localuser": owner, "localhost": DOMAIN, "user": user, "host": host,
                "nick": nick, "group": "Telefonie", "subs": "both"}  # fmt: skip
        status, result = self.api("add_rosteritem", body)
        assert status == 200 and result == 0, (status, result)

    def log(self) -> str:
        path = self.folder / "logs" / "ejabberd.log"
        return path.read_text(errors="replace") if path.exists() else ""


@dataclass(frozen=True)
class Seen:
    """One presence a watcher received."""

    sender: str  # full JID
    type: str
    show: str
    status: str
    priority: int = 0


class Watcher:
    """A colleague's chat client: slixmpp in a thread of its own, online with an empty
    status, remembering the last presence of every contact resource."""

    def __init__(self, account: Account, port: int, resource: str = "desk") -> None:
        self.account = account
        self.port = port
        self.resource = resource
        self.last: dict[str, Seen] = {}
        self.roster: list[str] = []
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="xmpp-watcher")
        self._client: slixmpp.ClientXMPP | None = None

    def __enter__(self) -> Watcher:
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT):
            raise RuntimeError(f"{self.account.jid} did not get online")
        return self

    def __exit__(self, *_: object) -> None:
        client = self._client
        if client is not None:
            future = asyncio.run_coroutine_threadsafe(self._leave(client), self._loop)
            future.result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(30)
        self._loop.close()

    async def _leave(self, client: slixmpp.ClientXMPP) -> None:
        await client.disconnect(wait=2.0)
        sender = client._run_out_filters  # slixmpp leaves its send loop running
        if sender is not None:
            sender.cancel()
            with contextlib.suppress(BaseException):
                await sender

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        client = slixmpp.ClientXMPP(f"{self.account.jid}/{self.resource}", self.account.password)
        client.enable_starttls = client.enable_direct_tls = False
        client.enable_plaintext = True
        client.plugin["feature_mechanisms"].unencrypted_scram = True
        client.add_event_handler("session_start", self._started)
        client.add_event_handler("presence", self._presence)
        self._client = client
        client.connect(host="127.0.0.1", port=self.port)
        self._loop.run_forever()

    async def _started(self, _: Any) -> None:
        assert self._client is not None
        await self._client.get_roster()
        self.roster = sorted(str(j) for j in self._client.client_roster)
        self._client.send_presence()
        self._ready.set()

    def _presence(self, pres: Any) -> None:
        seen = Seen(
            str(pres["from"]),
            str(pres["type"]),
            str(pres["show"]),
            str(pres["status"]),
            int(pres["priority"] or 0),
        )
        with self._lock:
            self.last[seen.sender] = seen

    def send(self, jid: str, kind: str) -> None:
        """Sends a presence of `kind` ("subscribe", "unsubscribe") to `jid`."""
        client = self._client
        assert client is not None
        self._loop.call_soon_threadsafe(
            lambda: client.send_presence(pto=jid, ptype=kind)  # type: ignore[arg-type]
        )

    def of(self, jid: str) -> Seen | None:
        """The last presence from `jid` (a full JID, or a bare one: any of its resources)."""
        with self._lock:
            if jid in self.last:
                return self.last[jid]
            for sender, seen in self.last.items():
                if sender.partition("/")[0] == jid:
                    return seen
        return None

    def wait(self, jid: str, accept: Callable[[Seen | None], bool], timeout: float = 60) -> Seen:
        found = eventually(lambda: self.of(jid), accept, timeout, step=0.05)
        assert found is not None
        return found


def showing(show: str, status: str | None = None) -> Callable[[Seen | None], bool]:
    """Accepts an available presence with this `<show/>` (and status, when given)."""

    def accept(seen: Seen | None) -> bool:
        return (
            seen is not None
            and seen.type != "unavailable"
            and seen.show == show
            and (status is None or seen.status == status)
        )

    return accept


def offline(seen: Seen | None) -> bool:
    return seen is not None and seen.type == "unavailable"
