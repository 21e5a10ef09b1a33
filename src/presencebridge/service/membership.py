"""The node's place among others: which users it handles, where its changes go.

One node handles everyone and tells no one (`SINGLE_NODE`). With several nodes the
cluster (`service/cluster.py`) supplies these: it owns partitions by lease, fans
changes out (the store's write fence, `LeaseFence`, is given to the store when it is
made). The hub takes its membership once, before it starts (`Hub.join`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from presencebridge.core.model import UserState


def _everyone(_user_id: str) -> bool:
    return True


def _nobody_else(_subject: object) -> None:
    return None


@dataclass(frozen=True, slots=True)
class Membership:
    # Whether this node handles the user now.
    owns: Callable[[str], bool] = _everyone
    # A user's new state, for the other nodes.
    replicate: Callable[[UserState], None] = _nobody_else
    # A group changed here; the other nodes read it again.
    group_changed: Callable[[str], None] = _nobody_else
    # A user was deleted here; the other nodes drop their copy.
    removed: Callable[[str], None] = _nobody_else
    # One of a user's agent tokens was revoked here; the other nodes check the tokens of
    # that user's agents connected to them again.
    tokens_changed: Callable[[str], None] = _nobody_else

    @property
    def single(self) -> bool:
        return self is SINGLE_NODE


SINGLE_NODE = Membership()
