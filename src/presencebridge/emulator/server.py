"""Serving the emulator over HTTPS: alone (the CLI) or inside another asyncio program."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import uvicorn

from presencebridge.config import default_data_dir
from presencebridge.emulator.app import create_app
from presencebridge.emulator.identity import TokenSigner
from presencebridge.emulator.state import Emulator
from presencebridge.emulator.tls import TlsFiles, ensure_tls, load_signing_key, server_names

DEFAULT_PORT = 8443


def default_tls_dir() -> Path:
    """`emulator-tls` in the data folder (PRESENCEBRIDGE_DATA_DIR, else the XDG default)."""
    data = os.environ.get("PRESENCEBRIDGE_DATA_DIR")
    return (Path(data) if data else default_data_dir()) / "emulator-tls"


def _config(app: object, host: str, port: int, tls: TlsFiles) -> uvicorn.Config:
    return uvicorn.Config(
        app,  # type: ignore[arg-type]
        host=host,
        port=port,
        ssl_certfile=str(tls.cert_file),
        ssl_keyfile=str(tls.key_file),
        log_config=None,
        proxy_headers=False,
        timeout_graceful_shutdown=3,
    )


def _url_host(host: str) -> str:
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def build(
    tls_dir: Path, host: str = "127.0.0.1", strict: bool = False
) -> tuple[TlsFiles, Emulator]:
    tls = ensure_tls(tls_dir, server_names(host))
    return tls, Emulator(TokenSigner(load_signing_key(tls)), strict=strict)


def run(host: str, port: int, tls_dir: Path, strict: bool = False) -> None:
    """Serve until interrupted (the `graph-emulator` command)."""
    tls, emulator = build(tls_dir, host, strict)
    uvicorn.Server(_config(create_app(emulator=emulator), host, port, tls)).run()


class _QuietServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to the program embedding it."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class EmbeddedEmulator:
    """The emulator on a port of 127.0.0.1, running in the caller's event loop.

    `serve --graph emulator` starts one and points GRAPH_URL, AUTHORITY and
    CA_BUNDLE at `graph_url`, `authority` and `ca_file`; `emulator` gives
    in-process access to its state (the same things the control API changes).
    """

    def __init__(
        self,
        tls_dir: Path | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        strict: bool = False,
    ) -> None:
        self.tls, self.emulator = build(tls_dir or default_tls_dir(), host, strict)
        self._host = host
        self._requested_port = port
        self._port: int | None = None
        self._server: _QuietServer | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Returns once the emulator accepts connections."""
        if self._task is not None:
            raise RuntimeError("the emulator is running already")
        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Binding here (port 0 = any free one) lets us know the port before uvicorn runs.
        sock.bind((self._host, self._requested_port))
        sock.listen(128)
        sock.setblocking(False)
        self._port = int(sock.getsockname()[1])
        config = _config(create_app(emulator=self.emulator), self._host, self._port, self.tls)
        self._server = _QuietServer(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        while not self._server.started:
            if self._task.done():
                sock.close()
                self._task.result()  # raises what stopped it
                raise RuntimeError("the Graph emulator stopped while starting")
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        if self._server is None or self._task is None:
            return
        self._server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._server = None
        self._task = None

    async def __aenter__(self) -> EmbeddedEmulator:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the emulator is not started")
        return self._port

    @property
    def base_url(self) -> str:
        return f"https://{_url_host(self._host)}:{self.port}"

    @property
    def graph_url(self) -> str:
        return self.base_url + "/v1.0"

    @property
    def authority(self) -> str:
        """msal's authority is this plus "/<tenant>" (any tenant is accepted)."""
        return self.base_url

    @property
    def ca_file(self) -> Path:
        return self.tls.ca_file
