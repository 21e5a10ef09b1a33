"""The CSV import's write (issue 12 part 7): a checked plan, in one transaction.

Everything was checked before (`core.usercsv.plan`); the hub checks it again as it
writes (`Hub.change_users` with `whole`): new users and changes in one transaction, the
Teams ids, extensions and numbers of the whole file at once, all or nothing. What can
still go wrong is a change made meanwhile by someone else (another request took an
extension, deleted a user): then nothing is written and the problems name the lines.
New users and changes have the history's source `csv` (a new Teams id takes the usual
release path).

On a cluster the file is refused before anything is written when it would write users
another node handles (`elsewhere`): one transaction, written by one node, is what makes
the import all or nothing, and only the node that handles a user may write it (README,
"The user lifecycle").
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from presencebridge.core import claims, usercsv
from presencebridge.core.errors import Reason, Rejected
from presencebridge.core.model import User
from presencebridge.core.usercsv import Problem, Step
from presencebridge.service.hub import Hub, NewUser, NotOwner, StoreRefused

log = logging.getLogger(__name__)
SOURCE = "csv"  # the history's source of every change an import makes
SHOWN_USERS = 5  # users named in the refusal of a file other nodes' users are in


@dataclass
class Applied:
    """What was written (everything), or why nothing was."""

    written: list[Step] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def existing_users(hub: Hub) -> dict[str, User]:
    return {user_id: hub.user(user_id).state.user for user_id in hub.user_ids()}


def elsewhere(hub: Hub, steps: list[Step]) -> Problem | None:
    """A cluster: the file would write users other nodes handle (None: it does not)."""
    others = [s.user_id for s in steps if s.action != "unchanged" and not hub.owns(s.user_id)]
    if not others:
        return None
    shown = ", ".join(others[:SHOWN_USERS]) + (", …" if len(others) > SHOWN_USERS else "")
    return Problem(0, "other_nodes", {"count": len(others), "users": shown})


async def apply(hub: Hub, steps: list[Step]) -> Applied:
    """Every create and update of the plan in one write, or nothing."""
    creates = [s for s in steps if s.action == "create"]
    updates = [s for s in steps if s.action == "update"]
    try:
        refusals = await hub.change_users(
            [NewUser(s.user) for s in creates],
            [(s.user_id, dict(s.fields)) for s in updates],
            SOURCE,
            whole=True,
        )
    except NotOwner:  # a partition moved since the check
        return Applied(problems=[elsewhere(hub, steps) or Problem(0, "other_nodes")])
    except StoreRefused as error:
        return Applied(problems=[Problem(0, "database", {"reason": error.said})])
    except Exception as error:  # said to the caller: nothing was written
        log.exception("CSV import failed")
        return Applied(
            problems=[Problem(0, "failed", {"reason": f"{type(error).__name__}: {error}"})]
        )
    problems = [p for i, e in refusals.creates for p in _problems(hub, creates[i], e)]
    problems += [p for i, e in refusals.updates for p in _problems(hub, updates[i], e)]
    if problems:
        return Applied(problems=sorted(problems, key=lambda p: p.line))
    if creates or updates:  # one row for the file; its users are in the details
        shown = {
            "created": len(creates), "updated": len(updates),
            "users": [s.user_id for s in creates + updates][:50],
        }  # fmt: skip
        await hub.audit("users.imported", "users", shown)
    return Applied(sorted(creates + updates, key=lambda s: s.line))


def _problems(hub: Hub, step: Step, error: Rejected) -> list[Problem]:
    """Why the hub refused a line as it wrote (someone changed the users meanwhile)."""
    line = step.line
    if isinstance(error, claims.Taken):
        return [usercsv.taken(line, clash) for clash in error.clashes]
    if error.reason is Reason.NOT_FOUND and (step.action == "create" or hub.has_user(step.user_id)):
        return [Problem(line, "unknown_group", {"group": step.user.group})]
    if error.reason is Reason.NOT_FOUND:
        return [Problem(line, "deleted_meanwhile", {"user": step.user_id})]
    if step.action == "create" and error.reason is Reason.CONFLICT:
        return [Problem(line, "created_meanwhile", {"user": step.user_id})]
    return [Problem(line, "failed", {"reason": error.message})]
