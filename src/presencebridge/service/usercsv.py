"""The CSV import's writes (issue 12 part 7): a checked plan, one user at a time.

Everything was checked before the first write (`core.usercsv.plan`); what can still go
wrong is a change made meanwhile by someone else (another request took an extension).
The first write the hub refuses ends the import, and the answer names what was written
before it. New users go through `Hub.create_user`, changes through `Hub.update_user`
with the history's source `csv` (a new Teams id takes the usual release path there).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from presencebridge.core.errors import Rejected
from presencebridge.core.model import User
from presencebridge.core.usercsv import Step
from presencebridge.service.hub import Hub

log = logging.getLogger(__name__)
SOURCE = "csv"  # the history's source of every change an import makes


@dataclass
class Applied:
    written: list[Step] = field(default_factory=list)
    failed: Step | None = None
    problem: str | None = None


def existing_users(hub: Hub) -> dict[str, User]:
    return {user_id: hub.user(user_id).state.user for user_id in hub.user_ids()}


async def apply(hub: Hub, steps: list[Step]) -> Applied:
    applied = Applied()
    for step in steps:
        try:
            if step.action == "create":
                await hub.create_user(step.user)
            else:
                await hub.update_user(step.user_id, dict(step.fields), SOURCE)
        except Rejected as error:
            applied.failed, applied.problem = step, error.message
            return applied
        except Exception as error:  # said to the caller, with what was written before it
            log.exception("CSV import: line %s (%s) failed", step.line, step.user_id)
            applied.failed, applied.problem = step, f"{type(error).__name__}: {error}"
            return applied
        applied.written.append(step)
    return applied
