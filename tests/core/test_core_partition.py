"""Partitions and leases: every user handled by exactly one node, shares kept even."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from presencebridge.core.partition import Lease, partition_of, plan

NOW = datetime(2026, 11, 29, 9, 0, tzinfo=UTC)
TTL = timedelta(seconds=9)


def settle(
    nodes: list[str], partitions: int, leases: dict[int, Lease], now: datetime, rounds: int = 6
) -> dict[int, Lease]:
    """Each node in turn applies its plan to the lease table, as the service does."""
    for _ in range(rounds):
        for node in nodes:
            step = plan(node, partitions, leases, nodes, now)
            for p in step.keep:
                leases[p] = Lease(p, node, now + TTL)
            for p in step.release:
                leases[p] = Lease(p, node, now)  # expired at once
            for p in step.acquire:
                current = leases.get(p)
                # The database's condition: free, expired, or already ours.
                if current is None or current.expires_at <= now or current.node == node:
                    leases[p] = Lease(p, node, now + TTL)
    return leases


def owners(leases: dict[int, Lease], now: datetime) -> dict[str, int]:
    counts: dict[str, int] = {}
    for lease in leases.values():
        if lease.expires_at > now:
            counts[lease.node] = counts.get(lease.node, 0) + 1
    return counts


def test_a_user_always_lands_in_the_same_partition() -> None:
    assert partition_of("alice", 64) == partition_of("alice", 64)
    assert 0 <= partition_of("alice", 64) < 64
    spread = {partition_of(f"user{i}", 64) for i in range(2000)}
    assert len(spread) == 64


def test_one_node_takes_every_partition() -> None:
    leases = settle(["n1"], 16, {}, NOW)
    assert owners(leases, NOW) == {"n1": 16}


def test_three_nodes_share_evenly() -> None:
    leases = settle(["n1", "n2", "n3"], 64, {}, NOW)
    counts = owners(leases, NOW)
    assert sum(counts.values()) == 64
    assert max(counts.values()) - min(counts.values()) <= 2
    assert all(c <= 22 for c in counts.values())


def test_a_joining_node_gets_its_share_from_the_others() -> None:
    leases = settle(["n1", "n2"], 64, {}, NOW)
    assert owners(leases, NOW) == {"n1": 32, "n2": 32}
    later = NOW + timedelta(seconds=3)
    leases = settle(["n1", "n2", "n3"], 64, leases, later)
    counts = owners(leases, later)
    assert sum(counts.values()) == 64
    assert counts["n3"] >= 20


def test_a_dead_nodes_partitions_move_only_after_its_leases_expire() -> None:
    leases = settle(["n1", "n2", "n3"], 64, {}, NOW)
    dead = {p for p, lease in leases.items() if lease.node == "n3"}
    # n3 is gone: the others no longer see it, but its leases still run.
    soon = NOW + timedelta(seconds=3)
    leases = settle(["n1", "n2"], 64, leases, soon)
    assert all(leases[p].node == "n3" for p in dead)
    after_expiry = NOW + TTL + timedelta(seconds=1)
    leases = settle(["n1", "n2"], 64, leases, after_expiry)
    counts = owners(leases, after_expiry)
    assert counts == {"n1": 32, "n2": 32}


def test_a_node_keeps_what_it_holds_and_renews_it() -> None:
    leases = {p: Lease(p, "n1", NOW + timedelta(seconds=2)) for p in range(8)}
    step = plan("n1", 8, leases, ["n1"], NOW)
    assert step.keep == frozenset(range(8))
    assert step.release == frozenset()
    assert step.acquire == ()


def test_an_expired_lease_of_our_own_is_taken_again_not_kept() -> None:
    leases = {0: Lease(0, "n1", NOW - timedelta(seconds=1))}
    step = plan("n1", 2, leases, ["n1"], NOW)
    assert step.keep == frozenset()
    assert set(step.acquire) == {0, 1}


@settings(max_examples=60, deadline=None)
@given(
    partitions=st.integers(1, 96),
    nodes=st.lists(st.sampled_from(["a", "b", "c", "d", "e"]), min_size=1, unique=True),
    killed=st.sets(st.sampled_from(["a", "b", "c", "d", "e"])),
)
def test_every_partition_has_exactly_one_live_owner_after_failures(
    partitions: int, nodes: list[str], killed: set[str]
) -> None:
    leases = settle(nodes, partitions, {}, NOW)
    survivors = [n for n in nodes if n not in killed] or nodes[:1]
    later = NOW + TTL * 2
    leases = settle(survivors, partitions, leases, later)
    live = {p: lease.node for p, lease in leases.items() if lease.expires_at > later}
    assert set(live) == set(range(partitions))
    assert set(live.values()) <= set(survivors)
    counts = owners(leases, later)
    share = -(-partitions // len(survivors))
    assert all(c <= share for c in counts.values())
