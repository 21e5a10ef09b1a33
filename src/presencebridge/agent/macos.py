"""macOS: CoreAudio process objects (14.2 and later), the device as a fallback.

Since macOS 14.2 the HAL lists the processes that use audio
(`kAudioHardwarePropertyProcessObjectList`) and says of each whether it records
(`kAudioProcessPropertyIsRunningInput`), with its PID and bundle id. That needs no
microphone permission. Whether the running system offers it is probed at run
time (`AudioObjectHasProperty`). Older systems only tell whether an input device
is running somewhere (`kAudioDevicePropertyDeviceIsRunningSomewhere`): then the
running programs are the candidates and the snapshot says "low" confidence.

CoreAudio is reached through ctypes behind `CoreAudioReader`; the naming rules
(helpers of Chrome, Teams' module host, zoom.us) are pure and tested with fakes.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from presencebridge.agent.detector import Snapshot
from presencebridge.core.micsync import ALIASES, FRIENDLY_NAMES, normalise

log = logging.getLogger(__name__)

POLL_SECONDS = 1.0
KNOWN = frozenset(FRIENDLY_NAMES) | frozenset(ALIASES.values())
_APP_BUNDLE = re.compile(r"([^/]+)\.app(?:/|$)", re.IGNORECASE)


def fourcc(code: str) -> int:
    return int.from_bytes(code.encode("ascii"), "big")


K_SYSTEM_OBJECT = 1
K_SCOPE_GLOBAL = fourcc("glob")
K_SCOPE_INPUT = fourcc("inpt")
K_ELEMENT_MAIN = 0
K_PROCESS_OBJECT_LIST = fourcc("prs#")
K_PROCESS_PID = fourcc("ppid")
K_PROCESS_BUNDLE_ID = fourcc("pbid")
K_PROCESS_IS_RUNNING_INPUT = fourcc("piri")
K_HARDWARE_DEVICES = fourcc("dev#")
K_DEVICE_STREAMS = fourcc("stm#")
K_DEVICE_IS_RUNNING_SOMEWHERE = fourcc("gone")
K_CF_STRING_ENCODING_UTF8 = 0x08000100


@dataclass(frozen=True)
class AudioProcess:
    pid: int
    bundle_id: str | None
    path: str | None  # executable path from proc_pidpath
    running_input: bool


class CoreAudioReader(Protocol):
    def supports_process_objects(self) -> bool: ...

    def processes(self) -> list[AudioProcess]: ...

    def input_running_somewhere(self) -> bool: ...

    def running_programs(self) -> list[tuple[int, str]]:
        """(pid, executable path) of every process, for the device-level fallback."""
        ...


def mac_name(bundle_id: str | None, path: str | None) -> str | None:
    """The program's name: a known name from its app bundle, bundle id or executable.

    Helpers live inside their app (`Google Chrome.app/…/Google Chrome Helper.app`), so
    the outermost `.app` names the program; bundle ids are tried with their dotted
    prefixes (`com.google.Chrome.helper` -> `com.google.chrome`).
    """
    candidates: list[str] = []
    if path:
        candidates.extend(_APP_BUNDLE.findall(path)[:1])
    if bundle_id:
        parts = bundle_id.split(".")
        candidates.extend(".".join(parts[:n]) for n in range(len(parts), 1, -1))
    if path:
        candidates.append(path.rstrip("/").rsplit("/", 1)[-1])
    for candidate in candidates:
        if normalise(candidate) in KNOWN:
            return normalise(candidate)
    for candidate in candidates:
        if candidate.strip():
            return normalise(candidate)
    return None


def process_holders(processes: Iterable[AudioProcess], own_pid: int | None) -> frozenset[str]:
    names = set()
    for process in processes:
        if process.running_input and process.pid != own_pid:
            name = mac_name(process.bundle_id, process.path)
            if name:
                names.add(name)
    return frozenset(names)


class MacDetector:
    name = "coreaudio"

    def __init__(
        self, reader: CoreAudioReader, own_pid: int | None, poll_seconds: float = POLL_SECONDS
    ) -> None:
        self.reader = reader
        self.own_pid = own_pid
        self.poll_seconds = poll_seconds
        self.per_process = reader.supports_process_objects()
        if not self.per_process:
            log.warning(
                "this macOS has no CoreAudio process objects (14.2+): Microphone Sync sees "
                "only that the microphone is in use and reports the running programs "
                "(low confidence)"
            )

    def read(self) -> Snapshot:
        if self.per_process:
            return Snapshot(process_holders(self.reader.processes(), self.own_pid))
        if not self.reader.input_running_somewhere():
            return Snapshot(confidence="low")
        names = {
            name
            for pid, path in self.reader.running_programs()
            if pid != self.own_pid and (name := mac_name(None, path))
        }
        return Snapshot(frozenset(names), "low")

    async def snapshot(self) -> Snapshot:
        return await asyncio.to_thread(self.read)

    async def wait_for_change(self, within: float) -> None:
        await asyncio.sleep(max(0.0, min(within, self.poll_seconds)))

    async def close(self) -> None:
        return None


# -- CoreAudio through ctypes (macOS only) ---------------------------------------------------


class _Address(ctypes.Structure):
    _fields_ = [
        ("mSelector", ctypes.c_uint32),
        ("mScope", ctypes.c_uint32),
        ("mElement", ctypes.c_uint32),
    ]


class CtypesCoreAudio:
    def __init__(self) -> None:
        self.ca: Any = ctypes.CDLL("/System/Library/Frameworks/CoreAudio.framework/CoreAudio")
        self.cf: Any = ctypes.CDLL(
            "/System/Library/Frameworks/CoreFoundation.framework/CoreFoundation"
        )
        self.libproc: Any = ctypes.CDLL("/usr/lib/libproc.dylib")
        address = ctypes.POINTER(_Address)
        self.ca.AudioObjectHasProperty.argtypes = [ctypes.c_uint32, address]
        self.ca.AudioObjectHasProperty.restype = ctypes.c_ubyte
        self.ca.AudioObjectGetPropertyDataSize.argtypes = [
            ctypes.c_uint32,
            address,
            ctypes.c_uint32,
            ctypes.c_void_p,
            ctypes.POINTER(ctypes.c_uint32),
        ]
        self.ca.AudioObjectGetPropertyDataSize.restype = ctypes.c_int32
        self.ca.AudioObjectGetPropertyData.argtypes = [
            ctypes.c_uint32,
            address,
            ctypes.c_uint32,
            ctypes.c_void_p,
            ctypes.POINTER(ctypes.c_uint32),
            ctypes.c_void_p,
        ]
        self.ca.AudioObjectGetPropertyData.restype = ctypes.c_int32
        self.cf.CFStringGetCString.argtypes = [
            ctypes.c_void_p,
            ctypes.c_char_p,
            ctypes.c_long,
            ctypes.c_uint32,
        ]
        self.cf.CFStringGetCString.restype = ctypes.c_ubyte
        self.cf.CFRelease.argtypes = [ctypes.c_void_p]
        self.libproc.proc_pidpath.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
        self.libproc.proc_listallpids.argtypes = [ctypes.c_void_p, ctypes.c_int]

    @staticmethod
    def _address(selector: int, scope: int = K_SCOPE_GLOBAL) -> _Address:
        return _Address(selector, scope, K_ELEMENT_MAIN)

    def _ids(self, obj: int, selector: int, scope: int = K_SCOPE_GLOBAL) -> list[int]:
        address = self._address(selector, scope)
        size = ctypes.c_uint32(0)
        if self.ca.AudioObjectGetPropertyDataSize(
            obj, ctypes.byref(address), 0, None, ctypes.byref(size)
        ):
            return []
        count = size.value // 4
        if count == 0:
            return []
        ids = (ctypes.c_uint32 * count)()
        if self.ca.AudioObjectGetPropertyData(
            obj, ctypes.byref(address), 0, None, ctypes.byref(size), ids
        ):
            return []
        return list(ids[: size.value // 4])

    def _scalar(self, obj: int, selector: int, kind: Any) -> Any:
        address = self._address(selector)
        value = kind()
        size = ctypes.c_uint32(ctypes.sizeof(value))
        status = self.ca.AudioObjectGetPropertyData(
            obj, ctypes.byref(address), 0, None, ctypes.byref(size), ctypes.byref(value)
        )
        return None if status else value.value

    def _string(self, obj: int, selector: int) -> str | None:
        ref = self._scalar(obj, selector, ctypes.c_void_p)
        if not ref:
            return None
        try:
            buffer = ctypes.create_string_buffer(1024)
            if self.cf.CFStringGetCString(ref, buffer, 1024, K_CF_STRING_ENCODING_UTF8):
                return buffer.value.decode("utf-8", errors="replace")
            return None
        finally:
            self.cf.CFRelease(ref)

    def _path(self, pid: int) -> str | None:
        buffer = ctypes.create_string_buffer(4096)
        length = self.libproc.proc_pidpath(pid, buffer, 4096)
        return buffer.value[:length].decode(errors="replace") if length > 0 else None

    def supports_process_objects(self) -> bool:
        address = self._address(K_PROCESS_OBJECT_LIST)
        return bool(self.ca.AudioObjectHasProperty(K_SYSTEM_OBJECT, ctypes.byref(address)))

    def processes(self) -> list[AudioProcess]:
        found = []
        for obj in self._ids(K_SYSTEM_OBJECT, K_PROCESS_OBJECT_LIST):
            pid = self._scalar(obj, K_PROCESS_PID, ctypes.c_int32)
            if pid is None:
                continue
            running = bool(self._scalar(obj, K_PROCESS_IS_RUNNING_INPUT, ctypes.c_uint32))
            found.append(
                AudioProcess(pid, self._string(obj, K_PROCESS_BUNDLE_ID), self._path(pid), running)
            )
        return found

    def input_running_somewhere(self) -> bool:
        for device in self._ids(K_SYSTEM_OBJECT, K_HARDWARE_DEVICES):
            if not self._ids(device, K_DEVICE_STREAMS, K_SCOPE_INPUT):
                continue  # no input streams: not a microphone
            if self._scalar(device, K_DEVICE_IS_RUNNING_SOMEWHERE, ctypes.c_uint32):
                return True
        return False

    def running_programs(self) -> list[tuple[int, str]]:
        count = self.libproc.proc_listallpids(None, 0)
        pids = (ctypes.c_int * max(count * 2, 64))()
        count = self.libproc.proc_listallpids(pids, ctypes.sizeof(pids))
        found = []
        for pid in pids[: max(0, count)]:
            path = self._path(pid) if pid > 0 else None
            if path:
                found.append((pid, path))
        return found


def create(own_pid: int | None) -> MacDetector:
    if sys.platform != "darwin":
        raise RuntimeError("the macOS detector runs on macOS only")
    return MacDetector(CtypesCoreAudio(), own_pid)
