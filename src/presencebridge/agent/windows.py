"""Windows: WASAPI capture sessions first, the privacy consent store as fallback.

* **Capture sessions** (pycaw / Core Audio): every active capture endpoint's
  session manager lists sessions with their process id and state; an *active*
  session is a program recording now. pycaw and comtypes are imported only here,
  only on Windows, and only when the detector is made.
* **Consent store** (the data behind the privacy "microphone in use" icon):
  `Software\\Microsoft\\Windows\\CurrentVersion\\CapabilityAccessManager\\ConsentStore\\microphone`
  in HKCU and HKLM, one subkey per packaged app (package family name) and, under
  `NonPackaged`, one per program path with `#` for `\\`. A program records while
  `LastUsedTimeStop` is 0 and `LastUsedTimeStart` is not. The values are FILETIMEs,
  stored as REG_QWORD or as 8-byte little-endian REG_BINARY. Windows leaves an
  entry "in use" when a program crashes, so an entry whose program is not running
  is stale and ignored.

The registry, the process list and the session list are read through small
reader interfaces; the rules live in pure functions tested with recorded trees.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import sys
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

from presencebridge.agent.detector import Snapshot
from presencebridge.core.micsync import normalise

log = logging.getLogger(__name__)

HKCU, HKLM = "HKCU", "HKLM"
CONSENT_STORE = (
    "Software\\Microsoft\\Windows\\CurrentVersion"
    "\\CapabilityAccessManager\\ConsentStore\\microphone"
)
NON_PACKAGED = "NonPackaged"
REG_DWORD, REG_BINARY, REG_QWORD = 4, 3, 11
SESSION_ACTIVE = 1  # AudioSessionStateActive
POLL_SECONDS = 1.0


# -- readers ---------------------------------------------------------------------------------


class RegistryReader(Protocol):
    def subkeys(self, hive: str, path: str) -> list[str]:
        """Names of the subkeys; [] when the key does not exist."""
        ...

    def values(self, hive: str, path: str) -> dict[str, tuple[Any, int]]:
        """name -> (data, REG_* type); {} when the key does not exist."""
        ...


@dataclass(frozen=True)
class RunningProcess:
    pid: int
    path: str  # full image path where Windows tells it, else the image name


class ProcessLister(Protocol):
    def running(self) -> list[RunningProcess]: ...


@dataclass(frozen=True)
class CaptureSession:
    pid: int
    path: str | None  # the process image, None if it could not be read
    state: int  # 0 inactive, 1 active, 2 expired


class SessionReader(Protocol):
    def capture_sessions(self) -> list[CaptureSession]: ...


# -- the rules -------------------------------------------------------------------------------


def filetime(data: Any, kind: int) -> int | None:
    """A LastUsedTime* value as an integer: REG_QWORD, or 8 bytes of REG_BINARY."""
    if kind == REG_QWORD and isinstance(data, int):
        return data
    if kind == REG_BINARY and isinstance(data, bytes | bytearray) and len(data) == 8:
        return int.from_bytes(data, "little")
    if kind == REG_DWORD and isinstance(data, int):
        return data
    return None


@dataclass(frozen=True)
class ConsentEntry:
    hive: str
    packaged: bool
    program: str  # a path (NonPackaged) or a package family name
    in_use: bool


def _in_use(values: Mapping[str, tuple[Any, int]]) -> bool:
    start = filetime(*values["LastUsedTimeStart"]) if "LastUsedTimeStart" in values else None
    stop = filetime(*values["LastUsedTimeStop"]) if "LastUsedTimeStop" in values else None
    return bool(start) and stop == 0


def consent_entries(registry: RegistryReader) -> list[ConsentEntry]:
    entries: list[ConsentEntry] = []
    for hive in (HKCU, HKLM):
        for key in registry.subkeys(hive, CONSENT_STORE):
            if key == NON_PACKAGED:
                continue
            values = registry.values(hive, f"{CONSENT_STORE}\\{key}")
            entries.append(ConsentEntry(hive, True, key, _in_use(values)))
        folder = f"{CONSENT_STORE}\\{NON_PACKAGED}"
        for key in registry.subkeys(hive, folder):
            values = registry.values(hive, f"{folder}\\{key}")
            entries.append(ConsentEntry(hive, False, key.replace("#", "\\"), _in_use(values)))
    return entries


def _path_key(path: str) -> str:
    return path.replace("/", "\\").strip().lower()


def package_name(family: str) -> str:
    """`MSTeams_8wekyb3d8bbwe` -> `MSTeams` (the family name without the publisher id)."""
    return family.rsplit("_", 1)[0] if "_" in family else family


def consent_holders(
    entries: Iterable[ConsentEntry], running: Iterable[RunningProcess], own_pid: int | None
) -> frozenset[str]:
    """In-use entries whose program is running, by normalised name."""
    processes = [p for p in running if p.pid != own_pid]
    full_paths = {_path_key(p.path) for p in processes if "\\" in p.path or "/" in p.path}
    bare_images = {normalise(p.path) for p in processes if not ("\\" in p.path or "/" in p.path)}
    names: set[str] = set()
    for entry in entries:
        if not entry.in_use:
            continue
        if entry.packaged:
            package = package_name(entry.program)
            marker = f"\\windowsapps\\{package.lower()}_"
            if any(marker in path for path in full_paths):
                names.add(normalise(package))
        elif _path_key(entry.program) in full_paths or normalise(entry.program) in bare_images:
            # Full paths must match; a process listed by image name only matches by name.
            names.add(normalise(entry.program))
    return frozenset(names)


def session_holders(sessions: Iterable[CaptureSession], own_pid: int | None) -> frozenset[str]:
    """Programs with an active capture session (pid 0 is the system sounds session)."""
    return frozenset(
        normalise(s.path)
        for s in sessions
        if s.state == SESSION_ACTIVE and s.pid not in (0, own_pid) and s.path
    )


# -- the detector ----------------------------------------------------------------------------


class WindowsDetector:
    """Sessions when pycaw works, else the consent store; polled (a wake-up every second)."""

    name = "windows"

    def __init__(
        self,
        registry: RegistryReader,
        processes: ProcessLister,
        sessions: SessionReader | None,
        own_pid: int | None,
        poll_seconds: float = POLL_SECONDS,
        executor: ThreadPoolExecutor | None = None,
    ) -> None:
        self.registry = registry
        self.processes = processes
        self.sessions = sessions
        self.own_pid = own_pid
        self.poll_seconds = poll_seconds
        self._executor = executor
        self._sessions_failed = False

    def read(self) -> frozenset[str]:
        if self.sessions is not None:
            try:
                found = session_holders(self.sessions.capture_sessions(), self.own_pid)
                if self._sessions_failed:
                    log.info("WASAPI capture sessions readable again")
                    self._sessions_failed = False
                return found
            except Exception as error:  # COMError and friends: fall back, say so once
                if not self._sessions_failed:
                    log.warning(
                        "WASAPI capture sessions unreadable (%s): using the consent store", error
                    )
                    self._sessions_failed = True
        return consent_holders(
            consent_entries(self.registry), self.processes.running(), self.own_pid
        )

    async def snapshot(self) -> Snapshot:
        loop = asyncio.get_running_loop()
        return Snapshot(await loop.run_in_executor(self._executor, self.read))

    async def wait_for_change(self, within: float) -> None:
        await asyncio.sleep(max(0.0, min(within, self.poll_seconds)))

    async def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False)


# -- the real readers (Windows only) ---------------------------------------------------------


class WinRegistry:
    def __init__(self) -> None:
        self.winreg: Any = importlib.import_module("winreg")
        self.hives = {HKCU: self.winreg.HKEY_CURRENT_USER, HKLM: self.winreg.HKEY_LOCAL_MACHINE}

    def _open(self, hive: str, path: str) -> Any:
        try:
            return self.winreg.OpenKey(self.hives[hive], path)
        except OSError:
            return None

    def subkeys(self, hive: str, path: str) -> list[str]:
        key = self._open(hive, path)
        if key is None:
            return []
        names: list[str] = []
        with key:
            index = 0
            while True:
                try:
                    names.append(self.winreg.EnumKey(key, index))
                except OSError:
                    return names
                index += 1

    def values(self, hive: str, path: str) -> dict[str, tuple[Any, int]]:
        key = self._open(hive, path)
        if key is None:
            return {}
        found: dict[str, tuple[Any, int]] = {}
        with key:
            index = 0
            while True:
                try:
                    name, data, kind = self.winreg.EnumValue(key, index)
                except OSError:
                    return found
                found[name] = (data, kind)
                index += 1


def _image_path(kernel32: Any, pid: int) -> str | None:
    import ctypes

    process_query_limited_information = 0x1000
    handle = kernel32.OpenProcess(process_query_limited_information, False, pid)
    if not handle:
        return None
    try:
        size = ctypes.c_uint32(32768)
        buffer = ctypes.create_unicode_buffer(size.value)
        if kernel32.QueryFullProcessImageNameW(handle, 0, buffer, ctypes.byref(size)):
            return buffer.value
        return None
    finally:
        kernel32.CloseHandle(handle)


class Win32Processes:
    """Running processes and their image paths, through kernel32 (no psutil needed)."""

    def __init__(self) -> None:
        import ctypes

        module: Any = ctypes
        self.kernel32 = module.WinDLL("kernel32", use_last_error=True)

    def running(self) -> list[RunningProcess]:
        import ctypes

        count = 4096
        while True:
            pids = (ctypes.c_uint32 * count)()
            needed = ctypes.c_uint32()
            if not self.kernel32.K32EnumProcesses(pids, ctypes.sizeof(pids), ctypes.byref(needed)):
                return []
            if needed.value < ctypes.sizeof(pids):
                break
            count *= 2
        found = []
        for pid in pids[: needed.value // ctypes.sizeof(ctypes.c_uint32)]:
            path = _image_path(self.kernel32, pid) if pid else None
            if path:
                found.append(RunningProcess(pid, path))
        return found


class PycawSessions:
    """Capture sessions of every active capture endpoint, through pycaw's COM types.

    COM needs initialising per thread: the detector runs this on one dedicated thread.
    """

    def __init__(self, processes: Win32Processes) -> None:
        # pycaw's modern layout (2022 and later); older releases lack GetState.
        self.comtypes: Any = importlib.import_module("comtypes")
        policy: Any = importlib.import_module("pycaw.api.audiopolicy")
        devices: Any = importlib.import_module("pycaw.api.mmdeviceapi")
        constants: Any = importlib.import_module("pycaw.constants")
        self.manager2 = policy.IAudioSessionManager2
        self.control2 = policy.IAudioSessionControl2
        self.enumerator_type = devices.IMMDeviceEnumerator
        self.enumerator_clsid = constants.CLSID_MMDeviceEnumerator
        self.processes = processes

    def capture_sessions(self) -> list[CaptureSession]:
        e_capture, device_state_active = 1, 1
        enumerator = self.comtypes.CoCreateInstance(
            self.enumerator_clsid, self.enumerator_type, self.comtypes.CLSCTX_INPROC_SERVER
        )
        collection = enumerator.EnumAudioEndpoints(e_capture, device_state_active)
        found: list[CaptureSession] = []
        for index in range(collection.GetCount()):
            device = collection.Item(index)
            activated = device.Activate(self.manager2._iid_, self.comtypes.CLSCTX_ALL, None)
            manager = activated.QueryInterface(self.manager2)
            sessions = manager.GetSessionEnumerator()
            for number in range(sessions.GetCount()):
                control = sessions.GetSession(number)
                if control is None:
                    continue
                control2 = control.QueryInterface(self.control2)
                pid = int(control2.GetProcessId())
                state = int(control2.GetState())
                path = _image_path(self.processes.kernel32, pid) if pid else None
                found.append(CaptureSession(pid, path, state))
        return found


def create(own_pid: int | None) -> WindowsDetector:
    if not sys.platform.startswith("win"):
        raise RuntimeError("the Windows detector runs on Windows only")
    processes = Win32Processes()
    sessions: SessionReader | None = None
    executor: ThreadPoolExecutor | None = None
    try:
        comtypes: Any = importlib.import_module("comtypes")
        sessions = PycawSessions(processes)
        executor = ThreadPoolExecutor(1, "agent-wasapi", initializer=comtypes.CoInitialize)
    except ImportError as error:
        log.warning("pycaw is not usable (%s): using the consent store only", error)
    log.info("microphone detector: %s", "WASAPI sessions" if sessions else "consent store")
    return WindowsDetector(WinRegistry(), processes, sessions, own_pid, executor=executor)
