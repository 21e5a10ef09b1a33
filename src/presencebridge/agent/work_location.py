"""The computer's addresses that the office networks are matched against.

Not every address of every interface: the source address the operating system
picks for a route to Graph. A laptop at home with a VPN, a docker bridge or a
stale link-local address has many addresses, some of them in office-looking
ranges; the one that carries its traffic to Microsoft says where it is. A UDP
socket "connected" to Graph's host yields exactly that address with `getsockname`
and sends no packet (UDP's connect only picks the route). No extra dependency
(psutil) is needed, and it works alike on Windows, macOS and Linux.
"""

from __future__ import annotations

import contextlib
import socket
from urllib.parse import urlsplit


def route_addresses(graph_url: str) -> list[str]:
    """The local source addresses towards Graph's host, one per address family that
    routes there; empty when none does (offline, or the name does not resolve).

    Blocking (name resolution): call it on a worker thread.
    """
    parts = urlsplit(graph_url)
    host = parts.hostname
    if not host:
        return []
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        targets = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except (OSError, UnicodeError):  # UnicodeError: a name IDNA cannot encode
        return []
    found: list[str] = []
    tried: set[int] = set()
    for family, kind, proto, _name, target in targets:
        if family in tried or family not in (socket.AF_INET, socket.AF_INET6):
            continue
        tried.add(family)  # the first target per family is the one a connection would use
        with contextlib.suppress(OSError), socket.socket(family, kind, proto) as probe:
            probe.connect(target)
            address = str(probe.getsockname()[0])
            if address not in found:
                found.append(address)
    return found
