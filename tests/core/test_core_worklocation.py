"""The agent's work location: office or remote from the computer's addresses (pure)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from presencebridge.core.settings import GroupSettings
from presencebridge.core.worklocation import decide, normalise_networks, parse_networks

OFFICE_V4 = ["10.20.0.0/16"]
OFFICE_BOTH = ["10.20.0.0/16", "2001:db8:5::/48"]


@pytest.mark.parametrize(
    ("addresses", "networks", "decided"),
    [
        # In an office network, or not.
        (["10.20.1.5"], OFFICE_V4, "office"),
        (["10.21.1.5"], OFFICE_V4, "remote"),
        (["192.168.178.20"], OFFICE_BOTH, "remote"),
        # The network's edges belong to it.
        (["10.20.0.0"], OFFICE_V4, "office"),
        (["10.20.255.255"], OFFICE_V4, "office"),
        (["10.19.255.255"], OFFICE_V4, "remote"),
        # IPv6, and both families at once: one address in an office network suffices.
        (["2001:db8:5:42::7"], OFFICE_BOTH, "office"),
        (["2001:db8:6::7"], OFFICE_BOTH, "remote"),
        (["192.168.178.20", "2001:db8:5::1"], OFFICE_BOTH, "office"),
        # An IPv4 address never matches an IPv6 network, nor the other way round.
        (["10.20.1.5"], ["::/0"], "remote"),
        (["2001:db8:5::1"], ["0.0.0.0/0"], "remote"),
        # What a dual-stack socket reports for an IPv4 peer is the IPv4 address.
        (["::ffff:10.20.1.5"], OFFICE_V4, "office"),
        # A link-local address with its zone.
        (["fe80::1%eth0"], ["fe80::/10"], "office"),
        # Host bits in a network, as pasted from an interface's configuration.
        (["10.20.9.9"], ["10.20.1.5/16"], "office"),
        # A bare address is a network of one.
        (["10.20.1.5"], ["10.20.1.5"], "office"),
        (["10.20.1.6"], ["10.20.1.5"], "remote"),
        # Loopback: what a computer talking to a Graph on itself routes from.
        (["127.0.0.1"], ["127.0.0.0/8"], "office"),
        # Nothing to say: no networks (off), no address (offline), nothing readable.
        (["10.20.1.5"], [], None),
        ([], OFFICE_V4, None),
        (["not-an-address"], OFFICE_V4, None),
        (["10.20.1.5"], ["bogus"], None),
        # Unreadable entries are skipped, the readable ones decide.
        (["not-an-address", "10.20.1.5"], ["bogus", *OFFICE_V4], "office"),
    ],
)
def test_office_or_remote(addresses: list[str], networks: list[str], decided: str | None) -> None:
    assert decide(addresses, networks) == decided


@pytest.mark.parametrize(
    ("written", "stored"),
    [
        ("", ""),
        ("  ", ""),
        ("10.20.0.0/16", "10.20.0.0/16"),
        ("10.20.0.0/16; 2001:db8:5::/48", "10.20.0.0/16, 2001:db8:5::/48"),
        (" 10.20.1.5/16 ,, 2001:DB8:5::1/48; ", "10.20.0.0/16, 2001:db8:5::/48"),
        ("192.168.1.7", "192.168.1.7/32"),
    ],
)
def test_the_setting_is_stored_in_canonical_form(written: str, stored: str) -> None:
    assert normalise_networks(written) == stored
    settings = GroupSettings.model_validate({"teams_work_location_office_networks": written})
    assert settings.public()["teams_work_location_office_networks"] == stored


@pytest.mark.parametrize(
    ("written", "named"),
    [
        ("10.20.0.0/16, office", "'office'"),
        ("10.20.0.0/33", "'10.20.0.0/33'"),
        ("10.20.0.0/16; 2001:db8::/129", "'2001:db8::/129'"),
        ("10.20.0", "'10.20.0'"),
    ],
)
def test_a_bad_entry_is_refused_by_name(written: str, named: str) -> None:
    with pytest.raises(ValueError, match=named):
        parse_networks(written)
    with pytest.raises(ValidationError) as refused:
        GroupSettings.model_validate({"teams_work_location_office_networks": written})
    (error,) = refused.value.errors()
    assert error["loc"] == ("teams_work_location_office_networks",)
    assert named in error["msg"]
