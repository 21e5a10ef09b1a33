"""Node heartbeats and partition leases in PostgreSQL (several nodes, one database).

Times come from the database's clock, so the nodes' own clocks never decide who
owns what. Synchronous, like the store: the cluster service runs it on a thread.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Connection, Engine

from presencebridge.adapters.store import tables as t
from presencebridge.core.partition import Lease, partition_of


class LeaseLost(RuntimeError):
    """This node no longer holds a partition it was about to write for."""

    def __init__(self, partitions: list[int]) -> None:
        super().__init__(f"lease of partitions {partitions} lost: another node handles them")
        self.partitions = partitions


@dataclass(frozen=True, slots=True)
class ClusterView:
    now: datetime  # the database's clock
    nodes: dict[str, str]  # live node id -> its URL
    leases: dict[int, Lease]


class LeaseStore:
    def __init__(self, engine: Engine) -> None:
        if engine.dialect.name != "postgresql":
            raise ValueError("several nodes need PostgreSQL (PRESENCEBRIDGE_DATABASE_URL)")
        self.engine = engine

    def heartbeat(self, node: str, url: str, ttl: timedelta) -> ClusterView:
        """Say `node` is alive; return the live nodes and every lease."""
        with self.engine.begin() as c:
            now = c.execute(sa.select(sa.func.now())).scalar_one()
            c.execute(
                insert(t.cluster_nodes)
                .values(id=node, url=url, seen_at=now)
                .on_conflict_do_update(
                    index_elements=[t.cluster_nodes.c.id], set_={"url": url, "seen_at": now}
                )
            )
            # Forget nodes silent for long; they come back with their next heartbeat.
            c.execute(t.cluster_nodes.delete().where(t.cluster_nodes.c.seen_at < now - ttl * 10))
            nodes = {
                r.id: r.url
                for r in c.execute(
                    sa.select(t.cluster_nodes).where(t.cluster_nodes.c.seen_at > now - ttl)
                )
            }
            leases = {
                r.partition: Lease(r.partition, r.node_id, r.expires_at)
                for r in c.execute(sa.select(t.partition_leases))
            }
        return ClusterView(now, nodes, leases)

    def renew(self, node: str, partitions: Collection[int], ttl: timedelta) -> set[int]:
        """Extend `node`'s unexpired leases; returns those it still holds."""
        if not partitions:
            return set()
        leases = t.partition_leases
        with self.engine.begin() as c:
            rows = c.execute(
                leases.update()
                .where(
                    leases.c.node_id == node,
                    leases.c.partition.in_(list(partitions)),
                    leases.c.expires_at > sa.func.now(),
                )
                .values(expires_at=sa.func.now() + ttl)
                .returning(leases.c.partition)
            )
            return {r.partition for r in rows}

    def acquire(self, node: str, partitions: Collection[int], ttl: timedelta) -> set[int]:
        """Take the partitions that are free or expired; returns those taken."""
        if not partitions:
            return set()
        leases = t.partition_leases
        taken: set[int] = set()
        with self.engine.begin() as c:
            for partition in partitions:
                statement = (
                    insert(leases)
                    .values(
                        partition=partition,
                        node_id=node,
                        expires_at=sa.func.now() + ttl,
                        epoch=1,
                    )
                    .on_conflict_do_update(
                        index_elements=[leases.c.partition],
                        set_={
                            "node_id": node,
                            "expires_at": sa.func.now() + ttl,
                            "epoch": leases.c.epoch + 1,
                        },
                        where=(leases.c.expires_at <= sa.func.now()) | (leases.c.node_id == node),
                    )
                    .returning(leases.c.partition)
                )
                if c.execute(statement).first() is not None:
                    taken.add(partition)
        return taken

    def release(self, node: str, partitions: Collection[int]) -> None:
        """Give partitions back at once (leaving, or above the fair share)."""
        if not partitions:
            return
        leases = t.partition_leases
        with self.engine.begin() as c:
            c.execute(
                leases.update()
                .where(leases.c.node_id == node, leases.c.partition.in_(list(partitions)))
                .values(expires_at=sa.func.now() - timedelta(seconds=1))
            )

    def owner_url(self, partition: int) -> str | None:
        """The URL of the live node holding `partition`, straight from the table."""
        leases, nodes = t.partition_leases, t.cluster_nodes
        with self.engine.begin() as c:
            row = c.execute(
                sa.select(nodes.c.url)
                .join(leases, leases.c.node_id == nodes.c.id)
                .where(leases.c.partition == partition, leases.c.expires_at > sa.func.now())
            ).first()
        return None if row is None else str(row.url)

    def leave(self, node: str) -> None:
        with self.engine.begin() as c:
            c.execute(t.cluster_nodes.delete().where(t.cluster_nodes.c.id == node))

    def check_held(self, c: Connection, node: str, partitions: Collection[int]) -> None:
        """The write fence, inside the writing transaction: `node` must hold every one
        of `partitions`. FOR SHARE keeps another node from taking them until this
        transaction ends, so a new owner always reads what the old one committed."""
        if not partitions:
            return
        leases = t.partition_leases
        held = c.execute(
            sa.select(leases.c.partition)
            .where(
                leases.c.node_id == node,
                leases.c.partition.in_(sorted(partitions)),
                leases.c.expires_at > sa.func.now(),
            )
            .with_for_update(read=True)
        ).all()
        if len(held) != len(set(partitions)):
            raise LeaseLost(sorted(set(partitions) - {r.partition for r in held}))


@dataclass(frozen=True, slots=True)
class LeaseFence:
    """The store's write fence on a node of a cluster: a commit for users whose
    partitions this node no longer holds is refused (a paused node must not write).
    Made before the store, so the store has it from its first commit on."""

    leases: LeaseStore
    node: str
    partitions: int

    def __call__(self, connection: Connection, user_ids: Collection[str]) -> None:
        needed = {partition_of(u, self.partitions) for u in user_ids}
        self.leases.check_held(connection, self.node, needed)
