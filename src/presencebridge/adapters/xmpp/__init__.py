"""XMPP presence outlets (issue 13, docs/xmpp.md): `xmpp-component`, the hub as an
XEP-0114 component speaking for every user at its own domain (the default), and
`xmpp-account`, the hub logged in as each user with a resource of its own."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from presencebridge.adapters.xmpp.settings import (
    AccountSettings,
    ComponentSettings,
    account_settings,
    component_settings,
)

if TYPE_CHECKING:
    from presencebridge.adapters.xmpp.account import XmppAccountOutlet
    from presencebridge.adapters.xmpp.component import XmppComponentOutlet

__all__ = [
    "AccountSettings",
    "ComponentSettings",
    "account_settings",
    "component_settings",
    "make_account",
    "make_component",
]


# The outlets are imported when one is made: a server without XMPP does not carry
# slixmpp (about 20 MiB).
def make_component(settings: Any) -> XmppComponentOutlet:
    from presencebridge.adapters.xmpp.component import XmppComponentOutlet

    assert isinstance(settings, ComponentSettings)
    return XmppComponentOutlet(settings)


def make_account(settings: Any) -> XmppAccountOutlet:
    from presencebridge.adapters.xmpp.account import XmppAccountOutlet

    assert isinstance(settings, AccountSettings)
    return XmppAccountOutlet(settings)
