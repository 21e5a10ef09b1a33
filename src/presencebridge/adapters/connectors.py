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

from presencebridge.core.ports import PbxConnector, PresenceOutlet, TelephonyLines

# The key a connector's secret arrives under (read from `secret_env` / `secret_file`);
# the configuration file itself never holds it.
SECRET = "secret"  # noqa: S105 - the name of a key, not a secret


@dataclass(frozen=True)
class PbxKind:
    parse: Callable[[Mapping[str, Any]], Any]
    make: Callable[[Any, TelephonyLines], PbxConnector]


@dataclass(frozen=True)
class OutletKind:
    parse: Callable[[Mapping[str, Any]], Any]
    make: Callable[[Any], PresenceOutlet]


PBX_KINDS: dict[str, PbxKind] = {}
OUTLET_KINDS: dict[str, OutletKind] = {}


def _register() -> None:
    # Imported here, not at the top: the adapters import `core` only, and this module
    # is imported by config.py before any adapter is needed.
    from presencebridge.adapters.sip.publisher import KIND as SIP_PRESENCE
    from presencebridge.adapters.sip.publisher import PresencePublisher
    from presencebridge.adapters.sip.settings import parse_dialog, parse_presence
    from presencebridge.adapters.sip.watcher import KIND as SIP_DIALOG
    from presencebridge.adapters.sip.watcher import DialogWatcher

    PBX_KINDS[SIP_DIALOG] = PbxKind(parse_dialog, DialogWatcher)
    OUTLET_KINDS[SIP_PRESENCE] = OutletKind(parse_presence, PresencePublisher)


_register()
