"""A throw-away nginx running deploy/nginx/presencebridge.conf on test ports.

The example is used as an administrator would install it, with only what a test
must change: the listening ports (unprivileged, IPv4 only), the certificate
paths (a certificate from tests/support/tls.py), the upstream port (the
ServerProcess) and the access log's path. Every replacement must hit, so the test fails when the
example drifts from what these substitutions expect.
"""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
import time
from pathlib import Path

from tests.support.ports import free_port
from tests.support.tls import Certificate

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "nginx" / "presencebridge.conf"
NGINX = shutil.which("nginx") or next(
    (p for p in ("/usr/sbin/nginx", "/sbin/nginx") if os.access(p, os.X_OK)), None
)
MISSING = (
    "nginx is not installed: the deployment tests run the example configuration in a real "
    "nginx. Install Debian's package (apt-get install nginx, or `make sysdeps` as root)."
)


def _replace(text: str, old: str, new: str) -> str:
    assert old in text, f"{EXAMPLE} no longer contains {old!r}; update tests/deploy/nginx.py"
    return text.replace(old, new)


class NginxProcess:
    """`nginx -g 'daemon off;'` with its own prefix, temp folders, logs and pid file."""

    def __init__(self, prefix: Path, upstream_port: int, cert: Certificate) -> None:
        self.prefix = prefix
        self.upstream_port = upstream_port
        self.cert = cert
        self.https_port = free_port()
        self.http_port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.https_port}"

    @property
    def access_log(self) -> Path:
        return self.prefix / "presencebridge.access.log"

    @property
    def error_log(self) -> Path:
        return self.prefix / "error.log"

    def site_config(self) -> str:
        """The example with the test's ports, certificate and log path."""
        text = EXAMPLE.read_text()
        text = _replace(text, "    listen [::]:80;\n", "")
        text = _replace(text, "    listen [::]:443 ssl http2;\n", "")
        text = _replace(text, "listen 80;", f"listen 127.0.0.1:{self.http_port};")
        text = _replace(
            text, "listen 443 ssl http2;", f"listen 127.0.0.1:{self.https_port} ssl http2;"
        )
        text = _replace(text, "server 127.0.0.1:8080;", f"server 127.0.0.1:{self.upstream_port};")
        text = _replace(text, "/etc/ssl/presencebridge/fullchain.pem", str(self.cert.chain_file))
        text = _replace(text, "/etc/ssl/presencebridge/privkey.pem", str(self.cert.key_file))
        return _replace(text, "/var/log/nginx/presencebridge.access.log", str(self.access_log))

    def main_config(self) -> str:
        temp = self.prefix / "temp"
        # Run as root (CI), nginx's workers would switch to "nobody", which cannot
        # enter pytest's private temp folders; a throw-away instance keeps root.
        user = "user root;\n" if os.geteuid() == 0 else ""
        paths = "\n".join(
            f"    {kind}_temp_path {temp / kind};"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        return (
            f"{user}worker_processes 1;\n"
            f"pid {self.prefix / 'nginx.pid'};\n"
            f"error_log {self.error_log} info;\n"
            "events { worker_connections 256; }\n"
            "http {\n"
            f"{paths}\n"
            f"    access_log {self.prefix / 'default.access.log'};\n"
            f"    include {self.prefix / 'presencebridge.conf'};\n"
            "}\n"
        )

    def _command(self, *extra: str) -> list[str]:
        assert NGINX is not None, MISSING
        conf = self.prefix / "nginx.conf"
        return [NGINX, "-e", str(self.error_log), "-p", str(self.prefix), "-c", str(conf), *extra]

    def start(self) -> None:
        assert NGINX is not None, MISSING
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (self.prefix / "temp" / kind).mkdir(parents=True, exist_ok=True)
        (self.prefix / "presencebridge.conf").write_text(self.site_config())
        (self.prefix / "nginx.conf").write_text(self.main_config())
        checked = subprocess.run(self._command("-t"), capture_output=True, text=True, timeout=30)
        assert checked.returncode == 0, f"nginx -t refused the configuration:\n{checked.stderr}"
        self.process = subprocess.Popen(
            self._command("-g", "daemon off;"),
            stdout=subprocess.DEVNULL,
            stderr=(self.prefix / "stderr.log").open("ab"),
        )
        context = ssl.create_default_context(cafile=str(self.cert.ca_file))
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"nginx exited early:\n{self.error_log.read_text()}")
            try:
                with (
                    socket.create_connection(("127.0.0.1", self.https_port), timeout=1) as raw,
                    context.wrap_socket(raw, server_hostname="127.0.0.1"),
                ):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"nginx did not come up:\n{self.error_log.read_text()}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
