"""Free TCP ports on 127.0.0.1 for the processes the tests start."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A port nobody listens on right now (the OS's choice; it may be taken later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
