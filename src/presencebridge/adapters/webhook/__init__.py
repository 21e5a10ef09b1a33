"""Signed outgoing webhooks (issue 17 part 4, docs/webhooks.md): the `[[publish]] kind =
"webhook"` table (`settings`), the signature (`signing`) and one POST to the receiver
(`sender`). The outbox they deliver from is the hub's (`service/webhooks.py`, rows in
`adapters/store/webhooks.py`), so nothing here keeps state across a restart.
"""

from __future__ import annotations

from presencebridge.adapters.webhook.sender import Outcome, Result, WebhookSender
from presencebridge.adapters.webhook.settings import KIND, WebhookSettings, parse
from presencebridge.adapters.webhook.signing import (
    EVENT_HEADER,
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    sign,
)

__all__ = [
    "EVENT_HEADER",
    "IDEMPOTENCY_HEADER",
    "KIND",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "Outcome",
    "Result",
    "WebhookSender",
    "WebhookSettings",
    "parse",
    "sign",
]
