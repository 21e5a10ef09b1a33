"""Which node handles which users: partitions and the leases on them.

Pure: the cluster service reads the lease table, asks `plan` what to do, and does it.
Every user belongs to one partition for good (a hash of the user id), each partition
to at most one node at a time, so each user's events are applied by one node, in
order. A node that stops renewing loses its partitions when their leases expire, and
the others share them out.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

DEFAULT_PARTITIONS = 64


def partition_of(user_id: str, partitions: int) -> int:
    # crc32, not hash(): the same on every node and across restarts.
    return zlib.crc32(user_id.encode()) % partitions


@dataclass(frozen=True, slots=True)
class Lease:
    partition: int
    node: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class LeasePlan:
    keep: frozenset[int]  # held and still ours: renew
    release: frozenset[int]  # held but more than our share: give back
    acquire: tuple[int, ...]  # free (never leased or expired): try to take, in this order


def fair_share(partitions: int, nodes: int) -> int:
    return math.ceil(partitions / max(1, nodes))


def plan(
    me: str,
    partitions: int,
    leases: Mapping[int, Lease],
    live_nodes: Iterable[str],
    now: datetime,
) -> LeasePlan:
    """What `me` does next: renew its own leases, give back any above its fair share,
    and take free partitions up to it.

    Taking only up to ceil(P / nodes) and giving back the excess spreads the
    partitions evenly when a node joins, and a dead node's leases, once expired,
    are free for the others. Free partitions are tried in an order that differs
    per node, so nodes starting together rarely race for the same ones.
    """
    nodes = set(live_nodes) | {me}
    share = fair_share(partitions, len(nodes))
    mine = sorted(p for p, lease in leases.items() if lease.node == me and lease.expires_at > now)
    keep, release = mine[:share], mine[share:]
    free = [p for p in range(partitions) if p not in leases or leases[p].expires_at <= now]
    free.sort(key=lambda p: zlib.crc32(f"{me}/{p}".encode()))
    wanted = max(0, share - len(keep))
    return LeasePlan(frozenset(keep), frozenset(release), tuple(free[:wanted]))
