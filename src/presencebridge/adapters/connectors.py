"""The kinds a `[[pbx]]` or `[[publish]]` table of the configuration file may name
(issue 13). Each adapter folder adds its kind here: how its table is read (a settings
object; `ValueError` naming the field, never echoing a secret) and how the connector
is made from it. `config.py` checks tables against this when the file is read;
`bootstrap.py` makes the connectors from it at start.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from presencebridge.adapters import asterisk, sip, webhook, xmpp
from presencebridge.core.ports import PbxConnector, PresenceOutlet, TelephonyLines, UserNotes

# The key a connector's secret arrives under (read from `secret_env` / `secret_file`);
# the configuration file itself never holds it.
SECRET = "secret"  # noqa: S105 - the name of a key, not a secret


@dataclass(frozen=True)
class PbxKind:
    parse: Callable[[Mapping[str, Any]], Any]
    make: Callable[[Any, TelephonyLines], PbxConnector]


@dataclass(frozen=True)
class OutletKind:
    """`make_noting`, when a kind has it, is used instead of `make`: it also gets where
    the outlet may write into a user's history (an outlet that applies the profile at
    the PBX says there when it kept the user's own change)."""

    parse: Callable[[Mapping[str, Any]], Any]
    make: Callable[[Any], PresenceOutlet]
    make_noting: Callable[[Any, UserNotes], PresenceOutlet] | None = None


@dataclass(frozen=True)
class DeliveryKind:
    """A `[[publish]]` kind that must get every change, in order and durably (a signed
    webhook, issue 17): not a `PresenceOutlet` behind the coalescing feed but a worker
    on the hub's outbox (`service/webhooks.py`). Only its table's parser is here."""

    parse: Callable[[Mapping[str, Any]], Any]


PBX_KINDS: dict[str, PbxKind] = {}
OUTLET_KINDS: dict[str, OutletKind] = {}

# The kinds each adapter folder brings (listed here rather than registered from there,
# so that no adapter imports this module and the import graph has no cycle).
PBX_KINDS[asterisk.KIND] = PbxKind(asterisk.parse_source, asterisk.make_source)
OUTLET_KINDS[asterisk.KIND] = OutletKind(
    asterisk.parse_outlet, asterisk.make_outlet, asterisk.make_outlet
)
OUTLET_KINDS["xmpp-component"] = OutletKind(xmpp.component_settings, xmpp.make_component)
OUTLET_KINDS["xmpp-account"] = OutletKind(xmpp.account_settings, xmpp.make_account)
PBX_KINDS[sip.DIALOG_KIND] = PbxKind(sip.parse_dialog, sip.DialogWatcher)
OUTLET_KINDS[sip.PRESENCE_KIND] = OutletKind(sip.parse_presence, sip.PresencePublisher)

DELIVERY_KINDS: dict[str, DeliveryKind] = {}


def publish_kinds() -> dict[str, Any]:
    """Every kind a `[[publish]]` table may name."""
    return {**OUTLET_KINDS, **DELIVERY_KINDS}


DELIVERY_KINDS[webhook.KIND] = DeliveryKind(webhook.parse)
