"""Several nodes: a node that lost a partition's lease writes nothing for its users.

The fence is given to the store when it is made (bootstrap), so there is no moment in
which a node of a cluster could commit unfenced.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from presencebridge.adapters.store import GroupRecord, Store
from presencebridge.adapters.store.leases import LeaseFence, LeaseLost, LeaseStore
from presencebridge.core.model import TeamsSyncMode, User, UserState
from presencebridge.core.partition import partition_of

NOW = datetime(2024, 3, 4, 8, 30, tzinfo=UTC)
PARTITIONS = 4
TTL = timedelta(seconds=30)

pytestmark = pytest.mark.parametrize(
    "store_url", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
)


def test_a_node_writes_while_it_holds_the_lease_and_nothing_after_losing_it(
    store: Store, group: GroupRecord
) -> None:
    leases = LeaseStore(store.engine)
    fenced = Store(store.engine, LeaseFence(leases, "node-1", PARTITIONS))
    state = UserState(user=User("alice", "Alice", group.id))
    store.create_user(state, NOW)
    partition = partition_of("alice", PARTITIONS)
    leases.heartbeat("node-1", "http://node-1", TTL)
    leases.heartbeat("node-2", "http://node-2", TTL)
    assert leases.acquire("node-1", [partition], TTL) == {partition}

    fenced.save_users([replace(state, own_mode=TeamsSyncMode.OFF)], [], NOW)
    assert [s.own_mode for s in store.load_users()] == [TeamsSyncMode.OFF]

    # node-1 pauses; its lease runs out and node-2 takes the partition over.
    leases.release("node-1", [partition])
    assert leases.acquire("node-2", [partition], TTL) == {partition}
    with pytest.raises(LeaseLost) as lost:
        fenced.save_users([replace(state, own_mode=TeamsSyncMode.TELEPHONY_ONLY)], [], NOW)
    assert lost.value.partitions == [partition]
    assert [s.own_mode for s in store.load_users()] == [TeamsSyncMode.OFF]
