"""The agent's automatic Teams work location: office or remote, from the office networks.

Pure: the group's setting `teams_work_location_office_networks` (IPv4/IPv6 networks
in CIDR form) is parsed here for both the settings' validation and the agent, and
`decide` turns the computer's addresses into `office` / `remote`.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

OFFICE = "office"
REMOTE = "remote"

# Administrators paste lists from spreadsheets and firewall rules: both separators count.
_SEPARATORS = re.compile(r"[,;]")


def network_entries(text: str) -> list[str]:
    """The entries of the setting as written, blanks dropped."""
    return [entry.strip() for entry in _SEPARATORS.split(text) if entry.strip()]


def parse_networks(text: str) -> tuple[Network, ...]:
    """The networks of the setting; ValueError naming the first entry that is none.

    Host bits are allowed (`strict=False`): "10.20.1.5/16" means the office subnet it
    lies in, as an administrator copying an address with its prefix length means it.
    """
    networks: list[Network] = []
    for entry in network_entries(text):
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ValueError(f"not a network in CIDR form (e.g. 10.20.0.0/16): {entry!r}") from None
    return tuple(networks)


def normalise_networks(text: str) -> str:
    """The setting as stored: each network in its canonical form, ", "-separated."""
    return ", ".join(str(network) for network in parse_networks(text))


def _address(text: str) -> Address | None:
    # An IPv6 link-local address may carry its zone ("fe80::1%eth0"); an IPv4-mapped
    # one ("::ffff:10.20.1.5", what a dual-stack socket reports) is the IPv4 address.
    try:
        address = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def decide(addresses: Iterable[str], networks: Iterable[str]) -> str | None:
    """`office` when an address of the computer lies in an office network, else `remote`.

    None means "say nothing": no networks (the feature is off) or no address known
    (no network at all: the computer cannot reach Graph either, and a guess would be
    as likely wrong as right). Unreadable addresses or networks are ignored.
    """
    parsed: list[Network] = []
    for entry in networks:
        try:
            parsed.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            continue
    if not parsed:
        return None
    known = [a for a in (_address(text) for text in addresses) if a is not None]
    if not known:
        return None
    # Comparing across families is simply False (`in` checks the version first).
    if any(address in network for address in known for network in parsed):
        return OFFICE
    return REMOTE
