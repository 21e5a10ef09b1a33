"""The Windows detector with recorded registry trees and session lists.

Windows cannot run here, so the registry, the process list and the WASAPI session
list are fakes with the shapes the real readers return (winreg's (data, type)
pairs, full image paths, session states); the rules under test are the product's.
"""

from __future__ import annotations

import struct
from typing import Any

import pytest

from presencebridge.agent.windows import (
    CONSENT_STORE,
    HKCU,
    HKLM,
    REG_BINARY,
    REG_DWORD,
    REG_QWORD,
    CaptureSession,
    RunningProcess,
    WindowsDetector,
    consent_entries,
    consent_holders,
    filetime,
    session_holders,
)

pytestmark = pytest.mark.anyio

OWN_PID = 4000
FILETIME = 133_512_345_678_901_234  # a moment in 2024 as a FILETIME


def qword(value: int) -> tuple[Any, int]:
    return value, REG_QWORD


def binary(value: int) -> tuple[Any, int]:
    return struct.pack("<Q", value), REG_BINARY


class FakeRegistry:
    """Keys as (hive, path) -> values; subkeys follow from the paths."""

    def __init__(self, keys: dict[tuple[str, str], dict[str, tuple[Any, int]]]) -> None:
        self.keys = keys

    def subkeys(self, hive: str, path: str) -> list[str]:
        prefix = path + "\\"
        names = {
            key[len(prefix) :].split("\\")[0]
            for h, key in self.keys
            if h == hive and key.startswith(prefix)
        }
        return sorted(names)

    def values(self, hive: str, path: str) -> dict[str, tuple[Any, int]]:
        return dict(self.keys.get((hive, path), {}))


class FakeProcesses:
    def __init__(self, *running: RunningProcess) -> None:
        self.list = list(running)

    def running(self) -> list[RunningProcess]:
        return list(self.list)


class FakeSessions:
    def __init__(self, *sessions: CaptureSession, broken: bool = False) -> None:
        self.sessions = list(sessions)
        self.broken = broken

    def capture_sessions(self) -> list[CaptureSession]:
        if self.broken:
            raise OSError("COMError -2147023174: the RPC server is unavailable")
        return list(self.sessions)


NP = f"{CONSENT_STORE}\\NonPackaged"
ZOOM = "C:\\Program Files\\Zoom\\bin\\Zoom.exe"
CHROME = "C:\\Program Files\\Google\\Chrome\\Application\\chrome.exe"
WEBEX = "C:\\Program Files (x86)\\Webex\\CiscoCollabHost.exe"
TEAMS = (
    "C:\\Program Files\\WindowsApps\\MSTeams_24004.1307.2669.7070_x64__8wekyb3d8bbwe\\ms-teams.exe"
)
RECORDED = FakeRegistry(
    {
        (HKCU, CONSENT_STORE): {"Value": ("Allow", 1)},
        # Packaged: the new Teams records now.
        (HKCU, f"{CONSENT_STORE}\\MSTeams_8wekyb3d8bbwe"): {
            "LastUsedTimeStart": qword(FILETIME),
            "LastUsedTimeStop": qword(0),
        },
        # Packaged, used earlier and released.
        (HKCU, f"{CONSENT_STORE}\\Microsoft.WindowsSoundRecorder_8wekyb3d8bbwe"): {
            "LastUsedTimeStart": qword(FILETIME - 10),
            "LastUsedTimeStop": qword(FILETIME - 5),
        },
        # NonPackaged with 8-byte REG_BINARY values: Zoom records now.
        (HKCU, f"{NP}\\C:#Program Files#Zoom#bin#Zoom.exe"): {
            "LastUsedTimeStart": binary(FILETIME),
            "LastUsedTimeStop": binary(0),
        },
        # Stale: "in use" but Chrome crashed and is not running.
        (HKCU, f"{NP}\\C:#Program Files#Google#Chrome#Application#chrome.exe"): {
            "LastUsedTimeStart": qword(FILETIME),
            "LastUsedTimeStop": qword(0),
        },
        # Never used: both zero.
        (HKCU, f"{NP}\\C:#Tools#slack.exe"): {
            "LastUsedTimeStart": qword(0),
            "LastUsedTimeStop": qword(0),
        },
        # A malformed value (4 bytes) is not a time: not in use.
        (HKCU, f"{NP}\\C:#Tools#discord.exe"): {
            "LastUsedTimeStart": (b"\x01\x02\x03\x04", REG_BINARY),
            "LastUsedTimeStop": qword(0),
        },
        # HKLM counts too.
        (HKLM, f"{NP}\\C:#Program Files (x86)#Webex#CiscoCollabHost.exe"): {
            "LastUsedTimeStart": qword(FILETIME),
            "LastUsedTimeStop": (0, REG_DWORD),
        },
    }
)
RUNNING = FakeProcesses(
    RunningProcess(100, ZOOM),
    RunningProcess(101, TEAMS),
    RunningProcess(102, WEBEX),
    RunningProcess(103, "C:\\Tools\\slack.exe"),
    RunningProcess(104, "C:\\Tools\\discord.exe"),
    RunningProcess(OWN_PID, "C:\\Python311\\python.exe"),
)


async def test_consent_store_reports_running_programs_in_use_from_hkcu_and_hklm() -> None:
    entries = consent_entries(RECORDED)
    assert {e.program for e in entries if e.in_use} == {
        "MSTeams_8wekyb3d8bbwe",
        ZOOM,
        CHROME,
        WEBEX,
    }
    assert consent_holders(entries, RUNNING.running(), OWN_PID) == {
        "ms-teams",
        "zoom",
        "ciscocollabhost",
    }


async def test_a_stale_entry_counts_again_once_its_program_runs() -> None:
    running = FakeProcesses(*RUNNING.list, RunningProcess(105, CHROME.upper()))
    assert "chrome" in consent_holders(consent_entries(RECORDED), running.running(), OWN_PID)


async def test_a_program_of_the_same_name_elsewhere_does_not_revive_a_stale_entry() -> None:
    running = FakeProcesses(RunningProcess(106, "C:\\Users\\x\\Downloads\\chrome.exe"))
    assert "chrome" not in consent_holders(consent_entries(RECORDED), running.running(), OWN_PID)


async def test_filetime_values() -> None:
    assert filetime(FILETIME, REG_QWORD) == FILETIME
    assert filetime(struct.pack("<Q", FILETIME), REG_BINARY) == FILETIME
    assert filetime(b"\x00" * 8, REG_BINARY) == 0
    assert filetime(b"\x00" * 4, REG_BINARY) is None
    assert filetime("133512345678901234", 1) is None


async def test_sessions_count_only_active_capture_sessions_of_other_processes() -> None:
    sessions = [
        CaptureSession(0, None, 1),  # system sounds
        CaptureSession(100, ZOOM, 1),
        CaptureSession(107, CHROME, 0),  # inactive: opened, not recording
        CaptureSession(108, "C:\\Tools\\slack.exe", 2),  # expired
        CaptureSession(OWN_PID, "C:\\Python311\\python.exe", 1),
        CaptureSession(109, None, 1),  # the process went away meanwhile
    ]
    assert session_holders(sessions, OWN_PID) == {"zoom"}


async def test_detector_prefers_sessions_and_falls_back_to_the_consent_store() -> None:
    sessions = FakeSessions(CaptureSession(100, ZOOM, 1))
    detector = WindowsDetector(RECORDED, RUNNING, sessions, OWN_PID)
    assert (await detector.snapshot()).processes == {"zoom"}
    sessions.broken = True  # e.g. the audio service restarts
    assert (await detector.snapshot()).processes == {"ms-teams", "zoom", "ciscocollabhost"}
    sessions.broken = False
    assert (await detector.snapshot()).processes == {"zoom"}

    without_pycaw = WindowsDetector(RECORDED, RUNNING, None, OWN_PID)
    snapshot = await without_pycaw.snapshot()
    assert snapshot.processes == {"ms-teams", "zoom", "ciscocollabhost"}
    assert snapshot.confidence == "high"


async def test_an_empty_registry_means_nobody() -> None:
    detector = WindowsDetector(FakeRegistry({}), FakeProcesses(), None, OWN_PID)
    assert (await detector.snapshot()).processes == frozenset()


class FakeWinreg:
    """winreg's calls as the real registry answers them (OSError at the end of a list)."""

    HKEY_CURRENT_USER, HKEY_LOCAL_MACHINE = "HKCU-handle", "HKLM-handle"

    def __init__(self, registry: FakeRegistry) -> None:
        self.registry = registry
        self.opened: list[str] = []

    class Key:
        def __init__(self, hive: str, path: str) -> None:
            self.hive, self.path = hive, path

        def __enter__(self) -> FakeWinreg.Key:
            return self

        def __exit__(self, *args: object) -> None:
            return None

    def OpenKey(self, handle: str, path: str) -> FakeWinreg.Key:
        hive = {self.HKEY_CURRENT_USER: HKCU, self.HKEY_LOCAL_MACHINE: HKLM}[handle]
        known = {p for h, p in self.registry.keys if h == hive}
        if path not in known and not any(p.startswith(path + "\\") for p in known):
            raise FileNotFoundError(2, "The system cannot find the file specified")
        self.opened.append(path)
        return FakeWinreg.Key(hive, path)

    def EnumKey(self, key: FakeWinreg.Key, index: int) -> str:
        names = self.registry.subkeys(key.hive, key.path)
        if index >= len(names):
            raise OSError(259, "No more data is available")
        return names[index]

    def EnumValue(self, key: FakeWinreg.Key, index: int) -> tuple[str, Any, int]:
        values = list(self.registry.values(key.hive, key.path).items())
        if index >= len(values):
            raise OSError(259, "No more data is available")
        name, (data, kind) = values[index]
        return name, data, kind


async def test_the_winreg_reader_walks_the_consent_store(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from presencebridge.agent.windows import WinRegistry

    fake = FakeWinreg(RECORDED)
    monkeypatch.setitem(sys.modules, "winreg", fake)
    reader = WinRegistry()
    assert consent_holders(consent_entries(reader), RUNNING.running(), OWN_PID) == {
        "ms-teams",
        "zoom",
        "ciscocollabhost",
    }
    assert reader.subkeys(HKLM, "Software\\Nowhere") == []
    assert reader.values(HKCU, "Software\\Nowhere") == {}


class FakeCom:
    """Core Audio's COM objects as pycaw exposes them: capture endpoints and their sessions."""

    CLSCTX_INPROC_SERVER, CLSCTX_ALL = 1, 23

    class Interface:
        def __init__(self, iid: str) -> None:
            self._iid_ = iid

    def __init__(self, endpoints: list[list[tuple[int, int]]]) -> None:
        self.endpoints = endpoints  # per capture endpoint: (pid, state) of each session
        self.flows: list[tuple[int, int]] = []
        self.manager2 = FakeCom.Interface("IAudioSessionManager2")
        self.control2 = FakeCom.Interface("IAudioSessionControl2")
        self.enumerator = FakeCom.Interface("IMMDeviceEnumerator")

    def CoCreateInstance(self, clsid: str, interface: object, context: int) -> Any:
        assert (clsid, interface) == ("MMDeviceEnumerator", self.enumerator)
        com = self

        class Session:
            def __init__(self, pid: int, state: int) -> None:
                self.pid, self.state = pid, state

            def QueryInterface(self, interface: object) -> Session:
                assert interface is com.control2
                return self

            def GetProcessId(self) -> int:
                return self.pid

            def GetState(self) -> int:
                return self.state

        class Endpoint:
            def __init__(self, sessions: list[tuple[int, int]]) -> None:
                self.sessions = [Session(*s) for s in sessions]

            def Activate(self, iid: str, context: int, params: None) -> Endpoint:
                assert iid == "IAudioSessionManager2"
                return self

            def QueryInterface(self, interface: object) -> Endpoint:
                assert interface is com.manager2
                return self

            def GetSessionEnumerator(self) -> Endpoint:
                return self

            def GetCount(self) -> int:
                return len(self.sessions)

            def GetSession(self, index: int) -> Session:
                return self.sessions[index]

        class Collection:
            def __init__(self) -> None:
                self.items = [Endpoint(e) for e in com.endpoints]

            def GetCount(self) -> int:
                return len(self.items)

            def Item(self, index: int) -> Endpoint:
                return self.items[index]

        class Enumerator:
            def EnumAudioEndpoints(self, flow: int, state: int) -> Collection:
                com.flows.append((flow, state))
                return Collection()

        return Enumerator()


class FakeKernel32:
    def __init__(self, paths: dict[int, str]) -> None:
        self.paths = paths

    def OpenProcess(self, access: int, inherit: bool, pid: int) -> int:
        return pid if pid in self.paths else 0

    def QueryFullProcessImageNameW(self, handle: int, flags: int, buffer: Any, size: Any) -> int:
        buffer.value = self.paths[handle]
        return 1

    def CloseHandle(self, handle: int) -> int:
        return 1


async def test_the_pycaw_reader_lists_sessions_of_every_capture_endpoint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sys
    import types

    from presencebridge.agent.windows import PycawSessions

    com = FakeCom([[(100, 1), (0, 1)], [(107, 0), (4242, 1)]])
    modules = {
        "comtypes": com,
        "pycaw.api.audiopolicy": types.SimpleNamespace(
            IAudioSessionManager2=com.manager2, IAudioSessionControl2=com.control2
        ),
        "pycaw.api.mmdeviceapi": types.SimpleNamespace(IMMDeviceEnumerator=com.enumerator),
        "pycaw.constants": types.SimpleNamespace(CLSID_MMDeviceEnumerator="MMDeviceEnumerator"),
    }
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    processes = types.SimpleNamespace(kernel32=FakeKernel32({100: ZOOM, 107: CHROME}))
    reader = PycawSessions(processes)  # type: ignore[arg-type]
    sessions = reader.capture_sessions()
    assert com.flows == [(1, 1)], "active capture endpoints (eCapture, DEVICE_STATE_ACTIVE)"
    assert sessions == [
        CaptureSession(100, ZOOM, 1),
        CaptureSession(0, None, 1),
        CaptureSession(107, CHROME, 0),
        CaptureSession(4242, None, 1),  # gone before its image could be read
    ]
    assert session_holders(sessions, OWN_PID) == {"zoom"}
