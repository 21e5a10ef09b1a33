"""Counts of the hostile requests this suite sends, for the summary at the end of the run.

Every request a hostile test sends goes through `TALLY`: the httpx clients made by
`counting_client` record each response in an event hook, schemathesis's and the
WebSocket attempts are recorded by the tests themselves. "Refused" is any 4xx answer
(or a WebSocket closed before it was accepted); "server errors" are 5xx answers.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import httpx


@dataclass
class Tally:
    sent: Counter[str] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)
    server_errors: Counter[str] = field(default_factory=Counter)

    def record(self, kind: str, status: int) -> None:
        self.sent[kind] += 1
        if 400 <= status < 500:
            self.refused[kind] += 1
        elif status >= 500:
            self.server_errors[kind] += 1

    def lines(self) -> list[str]:
        total = sum(self.sent.values())
        refused = sum(self.refused.values())
        errors = sum(self.server_errors.values())
        lines = [f"hostile input: {total} requests, {refused} refused, {errors} server errors"]
        for kind in sorted(self.sent):
            lines.append(
                f"  {kind}: {self.sent[kind]} requests, {self.refused[kind]} refused, "
                f"{self.server_errors[kind]} server errors"
            )
        return lines


TALLY = Tally()


def counting_client(
    base_url: str, kind: str, token: str | None = None, **headers: str
) -> httpx.Client:
    """An httpx client whose every response is counted under `kind`."""
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"

    def count(response: httpx.Response) -> None:
        TALLY.record(kind, response.status_code)

    return httpx.Client(
        base_url=base_url, headers=headers, timeout=10, event_hooks={"response": [count]}
    )
