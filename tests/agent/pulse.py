"""A real PulseAudio daemon for the tests, and programs that record from it.

The daemon runs without D-Bus and without autospawn on its own runtime folder,
with a null source `fakemic` (the microphone) and a null sink `fakespk` (whose
monitor source `fakespk.monitor` records what is played, not the user).
`parecord` copied to a file named like a meeting app records under that name
(`application.process.binary` is the executable's name); `corked_stream` opens a
stream through libpulse directly when a test needs one corked or a peak meter.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

PARECORD = shutil.which("parecord") or "/usr/bin/parecord"
PULSEAUDIO = shutil.which("pulseaudio") or "/usr/bin/pulseaudio"


class PulseDaemon:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.runtime = folder / "runtime"
        self.bin = folder / "bin"
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = folder / "pulseaudio.log"
        self.children: list[subprocess.Popen[Any]] = []

    @property
    def env(self) -> dict[str, str]:
        """What a client of this daemon (the agent, parecord, pactl) needs."""
        return {
            **os.environ,
            "XDG_RUNTIME_DIR": str(self.runtime),
            "PULSE_SERVER": f"unix:{self.runtime / 'pulse' / 'native'}",
            "PULSE_RUNTIME_PATH": str(self.runtime / "pulse"),
            "HOME": str(self.folder),  # no cookie of the real user is looked for or made
        }

    def start(self) -> None:
        self.runtime.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.bin.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        env = {k: v for k, v in self.env.items() if k != "PULSE_SERVER"}
        self.process = subprocess.Popen(
            [
                PULSEAUDIO,
                "-n",
                "--daemonize=no",
                "--exit-idle-time=-1",
                "--disable-shm=yes",
                "-L",
                "module-native-protocol-unix",
                "-L",
                "module-null-source source_name=fakemic",
                "-L",
                "module-null-sink sink_name=fakespk",
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"pulseaudio exited:\n{self.log_path.read_text()}")
            probe = subprocess.run(
                ["pactl", "list", "short", "sources"], env=self.env, capture_output=True
            )
            if probe.returncode == 0 and b"fakemic" in probe.stdout:
                return
            time.sleep(0.1)
        raise RuntimeError(f"pulseaudio did not come up:\n{self.log_path.read_text()}")

    def stop(self) -> None:
        for child in self.children:
            stop_process(child)
        if self.process is not None:
            stop_process(self.process)

    def program(self, name: str) -> Path:
        """parecord under another name: it records as `name`."""
        path = self.bin / name
        if not path.exists():
            shutil.copy(PARECORD, path)
        return path

    def record(self, name: str, device: str = "fakemic", *extra: str) -> subprocess.Popen[bytes]:
        """A program named `name` records from `device` until stopped."""
        process = subprocess.Popen(
            [str(self.program(name)), "-r", "-d", device, *extra],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.children.append(process)
        return process

    def stream(self, binary: str, *args: str) -> subprocess.Popen[str]:
        """A libpulse record stream of our own (see tests/agent/corked_stream.py)."""
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.agent.corked_stream", "--binary", binary, *args],
            env={**self.env, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert process.stdout is not None
        line = process.stdout.readline()
        if line.strip() != "ready":
            assert process.stderr is not None
            raise RuntimeError(f"stream helper failed: {line}{process.stderr.read()}")
        self.children.append(process)
        return process

    def source_outputs(self) -> str:
        return subprocess.run(
            ["pactl", "-f", "json", "list", "source-outputs"],
            env={**self.env, "LC_ALL": "C"},
            capture_output=True,
            text=True,
            check=True,
        ).stdout


def command(process: subprocess.Popen[str], line: str) -> None:
    """Tell a stream helper to `cork` or `uncork`; returns once it is done."""
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write(line + "\n")
    process.stdin.flush()
    assert process.stdout.readline().strip() == "done"


def stop_process(process: subprocess.Popen[Any]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


@contextmanager
def pulse_daemon(folder: Path) -> Iterator[PulseDaemon]:
    daemon = PulseDaemon(folder)
    daemon.start()
    try:
        yield daemon
    finally:
        daemon.stop()
