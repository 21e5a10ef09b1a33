"""A capture stream opened through libpulse itself, for what parecord cannot do.

parecord has no way to cork (pause) its stream or to open a peak-detect stream
the way volume meters do; this helper does both, under any binary name:

    python -m tests.agent.corked_stream --binary zoom [--corked] [--peak] [--name NAME]
                                        [--app-id ID] [--pid PID] [--source SOURCE]

It prints "ready" once the stream is connected, then obeys "cork" / "uncork"
lines on stdin (answering "done") until stdin closes.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import sys
import time
from typing import Any

PA_CONTEXT_READY, PA_CONTEXT_FAILED, PA_CONTEXT_TERMINATED = 4, 5, 6
PA_STREAM_READY, PA_STREAM_FAILED, PA_STREAM_TERMINATED = 2, 3, 4
PA_OPERATION_DONE = 1
PA_STREAM_START_CORKED = 0x0001
PA_STREAM_PEAK_DETECT = 0x0800
PA_SAMPLE_S16LE = 3
PA_SAMPLE_FLOAT32LE = 5


class SampleSpec(ctypes.Structure):
    _fields_ = [("format", ctypes.c_int), ("rate", ctypes.c_uint32), ("channels", ctypes.c_uint8)]


def _lib() -> Any:
    lib = ctypes.CDLL(ctypes.util.find_library("pulse") or "libpulse.so.0")
    p = ctypes.c_void_p
    lib.pa_threaded_mainloop_new.restype = p
    lib.pa_threaded_mainloop_get_api.restype = p
    lib.pa_threaded_mainloop_get_api.argtypes = [p]
    for name in ("start", "lock", "unlock"):
        getattr(lib, f"pa_threaded_mainloop_{name}").argtypes = [p]
    lib.pa_proplist_new.restype = p
    lib.pa_proplist_sets.argtypes = [p, ctypes.c_char_p, ctypes.c_char_p]
    lib.pa_context_new_with_proplist.restype = p
    lib.pa_context_new_with_proplist.argtypes = [p, ctypes.c_char_p, p]
    lib.pa_context_connect.argtypes = [p, ctypes.c_char_p, ctypes.c_int, p]
    lib.pa_context_get_state.argtypes = [p]
    lib.pa_stream_new_with_proplist.restype = p
    lib.pa_stream_new_with_proplist.argtypes = [
        p,
        ctypes.c_char_p,
        ctypes.POINTER(SampleSpec),
        p,
        p,
    ]
    lib.pa_stream_connect_record.argtypes = [p, ctypes.c_char_p, p, ctypes.c_int]
    lib.pa_stream_get_state.argtypes = [p]
    lib.pa_stream_cork.restype = p
    lib.pa_stream_cork.argtypes = [p, ctypes.c_int, p, p]
    lib.pa_operation_unref.argtypes = [p]
    lib.pa_operation_get_state.argtypes = [p]
    return lib


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", required=True)
    parser.add_argument("--source", default="fakemic")
    parser.add_argument("--name", default="capture")
    parser.add_argument("--app-id", default=None)
    parser.add_argument("--pid", default=None, help="claim to be this process id")
    parser.add_argument("--corked", action="store_true")
    parser.add_argument("--peak", action="store_true")
    args = parser.parse_args()

    pa = _lib()
    loop = pa.pa_threaded_mainloop_new()
    api = pa.pa_threaded_mainloop_get_api(loop)
    props = pa.pa_proplist_new()
    pa.pa_proplist_sets(props, b"application.process.binary", args.binary.encode())
    pa.pa_proplist_sets(props, b"application.name", args.binary.encode())
    if args.pid:
        pa.pa_proplist_sets(props, b"application.process.id", args.pid.encode())
    if args.app_id:
        pa.pa_proplist_sets(props, b"application.id", args.app_id.encode())
    pa.pa_threaded_mainloop_start(loop)

    def wait_for(get_state: Any, obj: int, ready: int, failed: tuple[int, ...]) -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            pa.pa_threaded_mainloop_lock(loop)
            state = get_state(obj)
            pa.pa_threaded_mainloop_unlock(loop)
            if state == ready:
                return
            if state in failed:
                raise SystemExit(f"libpulse state {state}")
            time.sleep(0.02)
        raise SystemExit("libpulse timed out")

    pa.pa_threaded_mainloop_lock(loop)
    context = pa.pa_context_new_with_proplist(api, args.binary.encode(), props)
    pa.pa_context_connect(context, None, 0, None)
    pa.pa_threaded_mainloop_unlock(loop)
    wait_for(
        pa.pa_context_get_state,
        context,
        PA_CONTEXT_READY,
        (PA_CONTEXT_FAILED, PA_CONTEXT_TERMINATED),
    )

    flags = (PA_STREAM_START_CORKED if args.corked else 0) | (
        PA_STREAM_PEAK_DETECT if args.peak else 0
    )
    spec = SampleSpec(PA_SAMPLE_FLOAT32LE if args.peak else PA_SAMPLE_S16LE, 44100, 1)
    pa.pa_threaded_mainloop_lock(loop)
    stream = pa.pa_stream_new_with_proplist(
        context, args.name.encode(), ctypes.byref(spec), None, None
    )
    pa.pa_stream_connect_record(stream, args.source.encode(), None, flags)
    pa.pa_threaded_mainloop_unlock(loop)
    wait_for(
        pa.pa_stream_get_state, stream, PA_STREAM_READY, (PA_STREAM_FAILED, PA_STREAM_TERMINATED)
    )
    print("ready", flush=True)

    for line in sys.stdin:
        word = line.strip()
        if word in ("cork", "uncork"):
            pa.pa_threaded_mainloop_lock(loop)
            operation = pa.pa_stream_cork(stream, 1 if word == "cork" else 0, None, None)
            pa.pa_threaded_mainloop_unlock(loop)
            wait_for(pa.pa_operation_get_state, operation, PA_OPERATION_DONE, (2,))
            pa.pa_operation_unref(operation)
            print("done", flush=True)


if __name__ == "__main__":
    main()
