"""A throw-away PostgreSQL server for tests.

`throwaway_postgres()` starts a private server from the machine's PostgreSQL binaries
(Debian's `postgresql` package) on a free port of 127.0.0.1, with trust authentication
and fsync off, and removes it afterwards. When PRESENCEBRIDGE_TEST_POSTGRES_URL names a
server, that server is used instead: the tests then work in databases of their own,
created with unique names and dropped at the end.

`fresh_database(admin_url)` makes one more empty database on the same server, so each
test (or module) can start from a clean schema; `scratch_database(admin_url)` is the
same as a context manager that drops it afterwards.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path

import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url

from tests.support.ports import free_port

URL_VARIABLE = "PRESENCEBRIDGE_TEST_POSTGRES_URL"
# Every database this module creates starts with this, so what it leaves can be found.
NAME_PREFIX = "pbtest_"
SYSTEM_USER = "postgres"
START_ATTEMPTS = 3

INSTALL_HINT = (
    "PostgreSQL server binaries (initdb, pg_ctl) were not found: install Debian's "
    "`postgresql` package (`apt-get install postgresql`), put `pg_config` of an "
    f"installed server on PATH, or set {URL_VARIABLE} to the URL of a server the "
    "tests may create databases on."
)


def find_bindir() -> Path | None:
    """The bin directory of the newest PostgreSQL server installed here, if any."""
    candidates: list[Path] = []
    debian = Path("/usr/lib/postgresql")
    if debian.is_dir():
        versioned = [p for p in debian.iterdir() if re.fullmatch(r"\d+(\.\d+)*", p.name)]
        versioned.sort(key=lambda p: tuple(int(part) for part in p.name.split(".")), reverse=True)
        candidates += [p / "bin" for p in versioned]
    pg_config = shutil.which("pg_config")
    if pg_config is not None:
        with suppress(OSError, subprocess.CalledProcessError):
            out = subprocess.run(
                [pg_config, "--bindir"], check=True, capture_output=True, text=True, timeout=30
            )
            candidates.append(Path(out.stdout.strip()))
    initdb = shutil.which("initdb")
    if initdb is not None:
        candidates.append(Path(initdb).parent)
    for bindir in candidates:
        if all(os.access(bindir / tool, os.X_OK) for tool in ("initdb", "pg_ctl", "postgres")):
            return bindir
    return None


def _libpq_url(url: str) -> str:
    """The URL as libpq reads it (SQLAlchemy spellings such as postgresql+psycopg:// too)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _with_database(url: str, database: str) -> str:
    return make_url(url).set(database=database).render_as_string(hide_password=False)


def _database_name(url: str) -> str:
    name = make_url(url).database
    if not name:
        raise ValueError(f"no database in {make_url(url)!r}")
    return name


def create_database(admin_url: str, name: str) -> str:
    """Create the empty database `name` on admin_url's server; its URL."""
    with psycopg.connect(_libpq_url(admin_url), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return _with_database(admin_url, name)


def fresh_database(admin_url: str) -> str:
    """A new, empty, uniquely named database on admin_url's server; its URL."""
    base = _database_name(admin_url)
    prefix = base if base.startswith(NAME_PREFIX) and len(base) <= 50 else NAME_PREFIX.rstrip("_")
    return create_database(admin_url, f"{prefix}_{uuid.uuid4().hex[:12]}")


@contextmanager
def scratch_database(admin_url: str) -> Iterator[str]:
    """A fresh database on admin_url's server (its URL) for the duration, dropped after."""
    url = fresh_database(admin_url)
    try:
        yield url
    finally:
        drop_database(admin_url, url)


def drop_database(admin_url: str, url: str) -> None:
    """Drop url's database, ending any session still connected to it."""
    name = _database_name(url)
    if name == _database_name(admin_url):
        raise ValueError("cannot drop the database the admin URL connects to")
    with psycopg.connect(_libpq_url(admin_url), autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        )
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))


def _drop_databases_named_like(connect_url: str, prefix: str) -> None:
    with psycopg.connect(_libpq_url(connect_url), autocommit=True) as conn:
        names = [
            row[0]
            for row in conn.execute(
                "SELECT datname FROM pg_database WHERE starts_with(datname, %s)", (prefix,)
            )
        ]
        for name in names:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = %s AND pid <> pg_backend_pid()",
                (name,),
            )
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))


@contextmanager
def _external_server(url: str) -> Iterator[str]:
    """A session database of our own on a server someone else runs."""
    session = f"{NAME_PREFIX}{uuid.uuid4().hex[:12]}"
    admin_url = create_database(url, session)
    try:
        yield admin_url
    finally:
        # The session database and every fresh_database() made from it share its name.
        _drop_databases_named_like(url, session)


class _Runner:
    """Runs the server's tools, as the `postgres` system user when we are root."""

    def __init__(self, bindir: Path, cwd: Path) -> None:
        self.bindir = bindir
        self.cwd = cwd
        self.as_root = os.geteuid() == 0
        if self.as_root:
            if shutil.which("runuser") is None:
                raise RuntimeError("running as root, but `runuser` is missing to drop to postgres")
            try:
                entry = pwd.getpwnam(SYSTEM_USER)
            except KeyError:
                raise RuntimeError(
                    "PostgreSQL refuses to run as root and there is no `postgres` system user: "
                    "install Debian's `postgresql` package, which creates it"
                ) from None
            self.uid, self.gid = entry.pw_uid, entry.pw_gid

    def give(self, path: Path) -> None:
        if self.as_root:
            os.chown(path, self.uid, self.gid)

    def run(self, tool: str, args: Sequence[str], log: Path) -> None:
        command = [str(self.bindir / tool), *args]
        if self.as_root:
            command = ["runuser", "-u", SYSTEM_USER, "--", *command]
        # Output goes to a file, not a pipe: the server pg_ctl starts may keep a pipe open.
        with log.open("ab") as out:
            result = subprocess.run(
                command,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=120,
                check=False,
            )
        if result.returncode != 0:
            raise RuntimeError(
                f"{tool} failed with exit code {result.returncode}:\n"
                + log.read_text(errors="replace")[-4000:]
            )


def _scratch_parent() -> str | None:
    """Where to create the server's directory: somewhere `postgres` can reach when root."""
    if os.geteuid() != 0:
        return None
    base = Path(tempfile.gettempdir()).resolve()
    # The postgres user needs search (x) permission on every directory above its own.
    reachable = all(os.stat(p).st_mode & 0o001 for p in [base, *base.parents])
    return None if reachable else "/tmp"


@contextmanager
def _local_server(bindir: Path) -> Iterator[str]:
    top = Path(tempfile.mkdtemp(prefix="presencebridge-pg-", dir=_scratch_parent()))
    top.chmod(0o755)
    runner = _Runner(bindir, top)
    runner.give(top)
    data, sockets, log = top / "data", top / "sockets", top / "log"
    sockets.mkdir(mode=0o755)
    runner.give(sockets)
    log.touch()
    runner.give(log)
    started = False
    try:
        runner.run(
            "initdb",
            [
                "-D",
                str(data),
                "--auth=trust",
                "-U",
                SYSTEM_USER,
                "--no-sync",
                "--encoding=UTF8",
                "--locale=C",
            ],
            log,
        )
        error: RuntimeError | None = None
        for _ in range(START_ATTEMPTS):
            port = free_port()
            options = (
                f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off"
                " -c synchronous_commit=off -c full_page_writes=off"
            )
            try:
                runner.run(
                    "pg_ctl",
                    ["-w", "-t", "60", "-D", str(data), "-l", str(log), "-o", options, "start"],
                    log,
                )
            except RuntimeError as exc:  # most likely someone took the port meanwhile
                error = exc
                continue
            started = True
            break
        if not started:
            assert error is not None
            raise error
        server_url = f"postgresql://{SYSTEM_USER}@127.0.0.1:{port}/postgres"
        _wait_until_ready(server_url)
        yield create_database(server_url, f"{NAME_PREFIX}{uuid.uuid4().hex[:12]}")
    finally:
        try:
            if started:
                runner.run("pg_ctl", ["-w", "-D", str(data), "-m", "immediate", "stop"], log)
        finally:
            shutil.rmtree(top, ignore_errors=True)


def _wait_until_ready(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with psycopg.connect(url, connect_timeout=5):
                return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@contextmanager
def throwaway_postgres() -> Iterator[str]:
    """A PostgreSQL database of our own for the duration; yields its (admin) URL.

    Its server is PRESENCEBRIDGE_TEST_POSTGRES_URL's when that is set, else a private one
    started here. Pass the URL to fresh_database() for more databases on the same server.
    """
    url = os.environ.get(URL_VARIABLE, "").strip()
    if url:
        with _external_server(url) as admin_url:
            yield admin_url
        return
    bindir = find_bindir()
    if bindir is None:
        raise RuntimeError(INSTALL_HINT)
    with _local_server(bindir) as admin_url:
        yield admin_url
