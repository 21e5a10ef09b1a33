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

    def copy(self) -> Tally:
        return Tally(Counter(self.sent), Counter(self.refused), Counter(self.server_errors))

    def since(self, before: Tally) -> dict[str, dict[str, int]]:
        """What was counted after `before`, as plain data a test report can carry (the
        tests may run in several worker processes; the summary adds their shares)."""
        return {
            "sent": dict(self.sent - before.sent),
            "refused": dict(self.refused - before.refused),
            "server_errors": dict(self.server_errors - before.server_errors),
        }

    def add(self, share: dict[str, dict[str, int]]) -> None:
        self.sent.update(share["sent"])
        self.refused.update(share["refused"])
        self.server_errors.update(share["server_errors"])

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
