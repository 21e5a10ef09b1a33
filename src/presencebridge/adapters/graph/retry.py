"""The one retry policy for Graph presence calls, the server's and the agent's.

Per request (`GraphClient._request`): 429, 5xx and network errors are retried after
`Retry-After` or `backoff(attempt)`. Per user, once a write gave up: the newest state
is written again after `rewrite_delay(failures)` (the server's `TeamsWriter`, the
agent's write loop).
"""

from __future__ import annotations

import random

RETRYABLE = frozenset({429, 500, 502, 503, 504})


def backoff(attempt: int) -> float:
    """Exponential, jittered, at most 30 s: between attempts of one request."""
    return float(min(30.0, 0.5 * 2**attempt) * random.uniform(0.5, 1.0))  # noqa: S311


def rewrite_delay(failures: int) -> float:
    """After a write gave up: when to try the user's newest state again. Doubling, at
    most 5 min."""
    return min(300.0, 2.0**failures)
