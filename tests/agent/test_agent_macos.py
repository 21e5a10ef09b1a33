"""The macOS detector with a fake CoreAudio (macOS cannot run here)."""

from __future__ import annotations

import pytest

from presencebridge.agent.macos import AudioProcess, MacDetector, fourcc, mac_name

pytestmark = pytest.mark.anyio

OWN_PID = 777
CHROME_HELPER = (
    "/Applications/Google Chrome.app/Contents/Frameworks/Google Chrome Framework.framework/"
    "Versions/126.0/Helpers/Google Chrome Helper.app/Contents/MacOS/Google Chrome Helper"
)
ZOOM = "/Applications/zoom.us.app/Contents/MacOS/zoom.us"
TEAMS_HOST = (
    "/Applications/Microsoft Teams.app/Contents/Helpers/"
    "Microsoft Teams ModuleHost.app/Contents/MacOS/Microsoft Teams ModuleHost"
)


class FakeCoreAudio:
    def __init__(
        self,
        processes: list[AudioProcess],
        per_process: bool = True,
        device_running: bool = False,
        programs: list[tuple[int, str]] | None = None,
    ) -> None:
        self.list = processes
        self.per_process = per_process
        self.device_running = device_running
        self.programs = programs or []

    def supports_process_objects(self) -> bool:
        return self.per_process

    def processes(self) -> list[AudioProcess]:
        if not self.per_process:
            raise AssertionError("process objects were used although the probe said no")
        return list(self.list)

    def input_running_somewhere(self) -> bool:
        return self.device_running

    def running_programs(self) -> list[tuple[int, str]]:
        return list(self.programs)


async def test_process_objects_name_the_programs_that_record() -> None:
    audio = FakeCoreAudio(
        [
            AudioProcess(10, "com.google.Chrome.helper", CHROME_HELPER, True),
            AudioProcess(11, "us.zoom.xos", ZOOM, True),
            AudioProcess(12, "com.microsoft.teams2.modulehost", TEAMS_HOST, True),
            AudioProcess(13, "com.apple.Music", "/System/Applications/Music.app/x", False),
            AudioProcess(OWN_PID, None, "/usr/local/bin/python3", True),
        ]
    )
    snapshot = await MacDetector(audio, OWN_PID).snapshot()
    assert snapshot.processes == {"chrome", "zoom", "ms-teams"}
    assert snapshot.confidence == "high"

    audio.list = [p for p in audio.list if p.pid != 11]
    assert (await MacDetector(audio, OWN_PID).snapshot()).processes == {"chrome", "ms-teams"}


async def test_before_14_2_the_device_says_only_that_someone_records() -> None:
    audio = FakeCoreAudio(
        [],
        per_process=False,
        device_running=False,
        programs=[(11, ZOOM), (20, "/usr/sbin/cfprefsd"), (OWN_PID, "/usr/local/bin/python3")],
    )
    detector = MacDetector(audio, OWN_PID)
    quiet = await detector.snapshot()
    assert quiet.processes == frozenset()
    assert quiet.confidence == "low"
    audio.device_running = True
    busy = await detector.snapshot()
    assert busy.confidence == "low"
    assert busy.processes == {"zoom", "cfprefsd"}  # candidates; the whitelist picks later


async def test_names_from_bundles_ids_and_paths() -> None:
    assert mac_name("com.google.Chrome.helper", None) == "chrome"
    assert mac_name(None, CHROME_HELPER) == "chrome"
    assert mac_name("us.zoom.xos", None) == "zoom"
    assert mac_name(None, ZOOM) == "zoom"
    assert mac_name("com.microsoft.teams2", TEAMS_HOST) == "ms-teams"
    assert mac_name("org.mozilla.firefox", "/Applications/Firefox.app/Contents/MacOS/firefox") == (
        "firefox"
    )
    assert mac_name("com.example.Recorder", None) == "com.example.recorder"
    assert mac_name(None, "/opt/tools/recorder") == "recorder"
    assert mac_name(None, None) is None


async def test_selectors_are_the_sdk_four_character_codes() -> None:
    assert fourcc("prs#") == 0x70727323
    assert fourcc("piri") == 0x70697269
    assert fourcc("gone") == 0x676F6E65
