"""The webhook signature: HMAC-SHA256 with the webhook's secret over
`<timestamp>.<body>`, sent as `sha256=<hex>` (docs/webhooks.md has the receiver's side).

The timestamp is in the signed text so a receiver can refuse old requests (a replay of
a captured request); the body is signed as the exact bytes sent, never re-serialised.
"""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "X-Presencebridge-Signature"
TIMESTAMP_HEADER = "X-Presencebridge-Timestamp"
EVENT_HEADER = "X-Presencebridge-Event"
IDEMPOTENCY_HEADER = "Idempotency-Key"
PREFIX = "sha256="


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The `X-Presencebridge-Signature` value for `body` sent at `timestamp`."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return PREFIX + digest.hexdigest()
