"""`presencebridge demo` as a newcomer sees it: a story in the terminal, a clean stop."""

from __future__ import annotations

import os
import re
import signal
import string
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import pytest

from presencebridge.bench.kamailio import options_answered
from presencebridge.core.texts import LANGUAGES
from presencebridge.demo import SAYINGS, Say
from tests.support.kamailio import need
from tests.support.server import BIN, free_port
from tests.support.sipwatch import ThreadedWatcher
from tests.support.waiting import eventually

STEP = re.compile(r"^\d\d:\d\d:\d\d  \S")  # a line of the story: the time, then what happens
EFFECT = re.compile(r"^\d\d:\d\d:\d\d +→ ")  # what the other side then shows
ACCESS_LOG = re.compile(r'"(GET|POST|PUT|PATCH|DELETE) /\S* HTTP/\d')


class Demo:
    """A running `presencebridge demo`; its output is read as it comes."""

    def __init__(self, data_dir: Path, language: str, *extra: str) -> None:
        env = {k: v for k, v in os.environ.items() if k != "PRESENCEBRIDGE_LOG_LEVEL"}
        env["PRESENCEBRIDGE_LANGUAGE"] = language
        self.port = free_port()
        command = [
            BIN, "demo", "--port", str(self.port), "--data-dir", data_dir, "--pace", "0.2", *extra
        ]  # fmt: skip
        self.process = subprocess.Popen(
            [str(part) for part in command],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self.changed = threading.Condition()
        assert self.process.stdout is not None and self.process.stderr is not None
        self.readers = [
            threading.Thread(target=self._read, args=(self.process.stdout, self.stdout)),
            threading.Thread(target=self._read, args=(self.process.stderr, self.stderr)),
        ]
        for reader in self.readers:
            reader.start()

    def _read(self, stream: IO[str], lines: list[str]) -> None:
        for line in stream:
            with self.changed:
                lines.append(line.rstrip("\n"))
                self.changed.notify_all()
        with self.changed:
            self.changed.notify_all()

    def wait_for(self, condition: Callable[[list[str]], bool], timeout: float) -> None:
        with self.changed:
            met = self.changed.wait_for(
                lambda: condition(self.stdout) or self.process.poll() is not None, timeout
            )
            assert met and condition(self.stdout), self.output()

    def stop(self, sig: int, timeout: float = 15) -> int:
        self.process.send_signal(sig)
        code = self.process.wait(timeout)
        for reader in self.readers:
            reader.join(5)
        return code

    def output(self) -> str:
        return "\n".join(["--- stdout", *self.stdout, "--- stderr", *self.stderr])


@pytest.fixture
def demos() -> Iterator[list[Demo]]:
    started: list[Demo] = []
    yield started
    for demo in started:
        if demo.process.poll() is None:
            demo.process.kill()
            demo.process.wait(10)


@pytest.mark.parametrize(
    ("sig", "language"), [(signal.SIGINT, "en"), (signal.SIGTERM, "de")], ids=["sigint", "sigterm"]
)
def test_the_demo_tells_its_day_and_stops_cleanly(
    tmp_path: Path, demos: list[Demo], sig: int, language: str
) -> None:
    demo = Demo(tmp_path, language)
    demos.append(demo)
    # A scene under way whose effect on the other side was told: HTTP clients busy.
    demo.wait_for(lambda lines: any(EFFECT.match(line) for line in lines), 30)

    code = demo.stop(sig)

    output = demo.output()
    assert code == 0, output  # stopping is the demo's normal end (documented in `demo --help`)
    assert "Traceback" not in output and "Cannot send a request" not in output, output
    assert not [line for line in output.splitlines() if ACCESS_LOG.search(line)], output
    assert f"http://127.0.0.1:{demo.port}/#token=" in "\n".join(demo.stdout[:5]), output
    assert demo.stdout[-1] == SAYINGS[Say.STOPPED][language], output
    header, day = {
        "en": ("  Ctrl+C stops the demo.", "The office day begins"),
        "de": ("  Strg+C beendet die Demo.", "Der Bürotag beginnt"),
    }[language]
    assert header in demo.stdout[:8], output
    assert any(STEP.match(line) and day in line for line in demo.stdout), output


def test_every_line_of_the_demo_exists_in_every_language_with_the_same_fields() -> None:
    formatter = string.Formatter()
    for key in Say:
        entry = SAYINGS[key]
        assert set(entry) == set(LANGUAGES), key
        fields = {
            lang: {f for _, f, _, _ in formatter.parse(text) if f} for lang, text in entry.items()
        }
        assert len({frozenset(f) for f in fields.values()}) == 1, (key, fields)


SIP_LINE = re.compile(r"Kamailio (?:on|auf) 127\.0\.0\.1:(\d+):")


def test_the_demo_with_sip_publishes_the_sample_users_presence_at_its_kamailio(
    tmp_path: Path, demos: list[Demo]
) -> None:
    """`make demo DEMO_ARGS=--with-sip`: a SIP phone watching extension 2101 at the
    demo's Kamailio sees its presence; stopping the demo stops Kamailio too."""
    need("kamailio")
    demo = Demo(tmp_path, "de", "--with-sip")
    demos.append(demo)
    demo.wait_for(lambda lines: any(SIP_LINE.search(line) for line in lines), 90)
    found = next(m for line in demo.stdout if (m := SIP_LINE.search(line)))
    port = int(found[1])
    domain = f"127.0.0.1:{port}"
    watcher = ThreadedWatcher(("127.0.0.1", port), domain)
    try:
        key = watcher.subscribe(f"sip:2101@{domain}", "presence")
        eventually(
            lambda: watcher.read(lambda w: w.last(key)),
            lambda body: b"<basic>open</basic>" in body,
            timeout=60,
        )
    finally:
        watcher.close()
    assert demo.stop(signal.SIGTERM) == 0, demo.output()
    assert not options_answered(port), "Kamailio outlived the demo"
