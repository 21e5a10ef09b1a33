"""SIP connectors (issue 13, docs/pbx.md): `sip-dialog` reads call states from a PBX
through dialog-event subscriptions (`watcher`), `sip-presence` PUBLISHes presence to a
SIP presence server (`publisher`). Both use one small user agent (`ua`, `transport`,
`message`, `digest`); message and header parsing is the `sipmessage` package's.
"""

from presencebridge.adapters.sip.publisher import KIND as PRESENCE_KIND
from presencebridge.adapters.sip.publisher import PresencePublisher
from presencebridge.adapters.sip.settings import parse_dialog, parse_presence
from presencebridge.adapters.sip.watcher import KIND as DIALOG_KIND
from presencebridge.adapters.sip.watcher import DialogWatcher

__all__ = [
    "DIALOG_KIND",
    "PRESENCE_KIND",
    "DialogWatcher",
    "PresencePublisher",
    "parse_dialog",
    "parse_presence",
]
