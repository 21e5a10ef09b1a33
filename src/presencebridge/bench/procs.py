"""The processes a benchmark runs: the Graph emulator and the server, each on its own.

They are joined only by configuration, as an administrator joins them (the same
environment variables the README documents). The load generator is the process
running the benchmark. CPU time and memory come from /proc (psutil is not a
dependency).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

# Fixed values for throw-away processes on 127.0.0.1; the emulator accepts any secret.
ADMIN_TOKEN = "bench-admin-token-0123456789abcdef"  # noqa: S105
TENANT = "contoso"
CLIENT_ID = "b3e1c0de-0000-4000-8000-00000000be4c"
CLIENT_SECRET = "bench-client-secret-value"  # noqa: S105
SECRET_KEY = "bench-secret-key-for-the-service-account-token-caches"  # noqa: S105
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PR_SET_PDEATHSIG = 1
BIN = Path(sys.executable).parent / "presencebridge"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_bytes(pid: int) -> int:
    """VmRSS of a process, from /proc/<pid>/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (all its threads)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def _die_with_parent() -> None:
    """In the child: SIGTERM when the benchmark process dies, so nothing is left behind."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class CpuMeter:
    """CPU use of some processes over a stretch of wall time (1.0 = one core busy)."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.started = time.monotonic()
        self.cpu = {name: cpu_seconds(pid) for name, pid in pids.items()}

    def read(self) -> dict[str, float]:
        elapsed = max(1e-9, time.monotonic() - self.started)
        return {
            name: round((cpu_seconds(pid) - self.cpu[name]) / elapsed, 3)
            for name, pid in self.pids.items()
        }


class Process:
    """A child process with its log in a file; stopped with SIGTERM, then SIGKILL."""

    name = "process"

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = folder / f"{self.name}.log"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def _spawn(self, argv: list[str], env: dict[str, str]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(  # noqa: S603
            argv, env=env, stdout=log, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent
        )
        log.close()

    def _wait_until(self, probe: Any, timeout: float) -> float:
        """Seconds until `probe()` is true; raises with the log if the child died."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited early:\n{self.log_tail()}")
            with contextlib.suppress(httpx.HTTPError, OSError):
                if probe():
                    return time.monotonic() - started
            time.sleep(0.05)
        raise RuntimeError(f"{self.name} did not come up within {timeout} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def rss(self) -> int:
        return rss_bytes(self.pid)

    def stop(self, kill: bool = False) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


class EmulatorProcess(Process):
    """The Graph emulator (with the benchmarks' request log), over HTTPS."""

    name = "emulator"

    def __init__(self, folder: Path, tls_dir: Path | None = None) -> None:
        super().__init__(folder)
        self.tls_dir = tls_dir or folder / "emulator-tls"

    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def ca_file(self) -> Path:
        return self.tls_dir / "ca.pem"

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))

    def start(self) -> float:
        argv = [sys.executable, "-m", "presencebridge.bench.emulator"]
        argv += ["--port", str(self.port), "--tls-dir", str(self.tls_dir)]
        self._spawn(argv, dict(os.environ))

        def up() -> bool:
            if not self.ca_file.exists():
                return False
            with self.control() as client:
                return client.get("/_emulator/health").is_success

        return self._wait_until(up, 60)

    def control(self) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, verify=self.ssl_context(), timeout=60)

    def get(self, path: str) -> Any:
        with self.control() as client:
            response = client.get(path)
            response.raise_for_status()
            return response.json()

    def post(self, path: str, body: Any) -> Any:
        with self.control() as client:
            response = client.post(path, json=body)
            if not response.is_success:
                raise RuntimeError(f"emulator {path}: {response.status_code} {response.text}")
            return response.json() if response.content else None

    def stats(self) -> Any:
        return self.get("/_bench/stats")

    def log_mark(self) -> int:
        """The index the next logged Graph request will have."""
        return int(self.stats()["log_length"])

    def request_log(self, since: int = 0) -> tuple[int, list[tuple[float, float, str, str, int]]]:
        """The Graph requests logged from index `since` on, and the next index."""
        entries: list[tuple[float, float, str, str, int]] = []
        with self.control() as client:
            while True:
                page = client.get("/_bench/log", params={"since": since}).json()
                entries += [(e[0], e[1], e[2], e[3], e[4]) for e in page["entries"]]
                if page["next"] == since:
                    return since, entries
                since = page["next"]


@dataclass
class ServerOptions:
    read_mode: str = "poll"
    database_url: str | None = None
    log_level: str = "info"
    extra_env: dict[str, str] | None = None
    config_file: Path | None = None  # `serve --config FILE` (e.g. a [[directory]] table)


class ServerProcess(Process):
    """`presencebridge serve`, configured by environment to use the emulator."""

    name = "server"

    def __init__(self, folder: Path, emulator: EmulatorProcess | None, options: ServerOptions):
        super().__init__(folder)
        self.emulator = emulator
        self.options = options
        self.started_at = 0.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        env = {
            **os.environ,
            "PRESENCEBRIDGE_ADMIN_TOKEN": ADMIN_TOKEN,
            "PRESENCEBRIDGE_DATA_DIR": str(self.folder / "data"),
            "PRESENCEBRIDGE_LOG_LEVEL": self.options.log_level,
        }
        if self.options.database_url:
            env["PRESENCEBRIDGE_DATABASE_URL"] = self.options.database_url
        if self.emulator is not None:
            env |= {
                "PRESENCEBRIDGE_GRAPH_URL": f"{self.emulator.base_url}/v1.0",
                "PRESENCEBRIDGE_AUTHORITY": self.emulator.base_url,
                "PRESENCEBRIDGE_CA_BUNDLE": str(self.emulator.ca_file),
                "PRESENCEBRIDGE_TENANT_ID": TENANT,
                "PRESENCEBRIDGE_CLIENT_ID": CLIENT_ID,
                "PRESENCEBRIDGE_CLIENT_SECRET": CLIENT_SECRET,
                "PRESENCEBRIDGE_READ_MODE": self.options.read_mode,
            }
            if self.options.read_mode == "notify":
                env["PRESENCEBRIDGE_PUBLIC_URL"] = self.url
                env["PRESENCEBRIDGE_SECRET_KEY"] = SECRET_KEY
        env |= self.options.extra_env or {}
        return env

    def start(self, timeout: float = 600) -> float:
        """Start and wait for /healthz; returns the seconds that took."""
        self.started_at = time.monotonic()
        argv = [str(BIN), "serve", "--port", str(self.port)]
        if self.options.config_file is not None:
            argv += ["--config", str(self.options.config_file)]
        self._spawn(argv, self.env())
        return self._wait_until(
            lambda: httpx.get(self.url + "/healthz", timeout=2).status_code == 200, timeout
        )

    def restart(self, kill: bool = False, timeout: float = 600) -> float:
        self.stop(kill=kill)
        return self.start(timeout)

    def client(self, timeout: float = 60) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=timeout
        )

    def get(self, path: str) -> Any:
        with self.client() as client:
            response = client.get(path)
            response.raise_for_status()
            return response.json()

    def teams_sync(self) -> dict[str, Any]:
        result: dict[str, Any] = self.get("/api/v1/admin/teams-sync")
        return result

    def histogram(self, name: str) -> dict[str, Any]:
        """A Prometheus histogram's cumulative buckets, sum and count (all label sets)."""
        buckets: dict[float, float] = {}
        total = count = 0.0
        with self.client() as client:
            for line in client.get("/metrics").text.splitlines():
                if line.startswith(name + "_bucket"):
                    le = line.split('le="', 1)[1].split('"', 1)[0]
                    bound = float("inf") if le == "+Inf" else float(le)
                    buckets[bound] = buckets.get(bound, 0.0) + float(line.rsplit(" ", 1)[1])
                elif line.startswith(name + "_sum"):
                    total += float(line.rsplit(" ", 1)[1])
                elif line.startswith(name + "_count"):
                    count += float(line.rsplit(" ", 1)[1])
        return {"buckets": buckets, "sum": total, "count": count}

    def metric(self, name: str) -> float:
        """Sum of a Prometheus metric's samples (all label sets)."""
        total = 0.0
        with self.client() as client:
            for line in client.get("/metrics").text.splitlines():
                if line.startswith(name + " ") or line.startswith(name + "{"):
                    total += float(line.rsplit(" ", 1)[1])
        return total


@contextlib.contextmanager
def running(*processes: Process) -> Iterator[None]:
    """Stop the given processes on the way out, whatever happened."""
    try:
        yield
    finally:
        for process in reversed(processes):
            process.stop()


def repo_root() -> Path | None:
    """The source checkout this package runs from (editable install), if any."""
    root = Path(__file__).absolute().parents[3]
    return root if (root / "pyproject.toml").exists() else None


@contextlib.contextmanager
def throwaway_postgres() -> Iterator[str]:
    """A PostgreSQL database: PRESENCEBRIDGE_BENCH_POSTGRES_URL's, else a throw-away one.

    The throw-away server is the test suite's (tests/support/postgres.py). It runs
    with fsync=off and synchronous_commit=off on its command line; the benchmark's
    database turns synchronous_commit back on (a commit waits for its WAL write),
    but fsync cannot be changed without a restart: such a commit survives a crash
    of the server process, not of the machine. The result records both settings;
    point PRESENCEBRIDGE_BENCH_POSTGRES_URL at a server with fsync on for the
    strict figure.
    """
    given = os.environ.get("PRESENCEBRIDGE_BENCH_POSTGRES_URL")
    if given:
        yield given
        return
    root = repo_root()
    if root is None or not (root / "tests" / "support" / "postgres.py").exists():
        raise RuntimeError(
            "no PostgreSQL: set PRESENCEBRIDGE_BENCH_POSTGRES_URL or run from a source checkout"
        )
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    from tests.support.postgres import fresh_database
    from tests.support.postgres import throwaway_postgres as start

    with start() as admin_url:
        url = fresh_database(admin_url)
        name = url.rsplit("/", 1)[1]
        with _connect(admin_url) as connection:
            connection.execute(f'ALTER DATABASE "{name}" SET synchronous_commit = on')
        yield url


def _connect(url: str) -> Any:
    import psycopg

    from presencebridge.adapters.store import normalise_url

    libpq = normalise_url(url).replace("postgresql+psycopg://", "postgresql://")
    return psycopg.connect(libpq, autocommit=True)


def postgres_settings(url: str) -> dict[str, str]:
    """Settings that decide how durable a commit is, as a session of `url` sees them."""
    result = {}
    with _connect(url) as connection:
        for name in ("server_version", "fsync", "synchronous_commit", "full_page_writes"):
            row = connection.execute(f"SHOW {name}").fetchone()
            result[name] = str(row[0]) if row else "?"
    return result
