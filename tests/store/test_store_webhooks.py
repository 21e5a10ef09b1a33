"""The webhook outbox (issue 17 part 4) on SQLite and PostgreSQL: each user's oldest
undelivered change first, dead letters kept apart, sent again or discarded, and a batch
written again after its commit was in fact made adds nothing twice."""

from __future__ import annotations

from datetime import UTC, datetime

from presencebridge.adapters.store import Store
from presencebridge.adapters.store.webhooks import NewChange, WebhookOutbox

NOW = datetime(2024, 3, 4, 8, 30, tzinfo=UTC)


def change(user: str, n: int, webhook: str = "door") -> NewChange:
    return NewChange(
        webhook, user, f"{webhook}-{user}-{n}", "presence.changed", f'{{"n":{n}}}', NOW
    )


def test_heads_are_each_users_oldest_change_in_order(store: Store) -> None:
    outbox = WebhookOutbox(store.engine)
    outbox.add([change("bob", 1), change("alice", 1), change("bob", 2), change("alice", 2)])
    outbox.add([change("alice", 1, webhook="other")])
    heads = outbox.heads("door", 10)
    assert [(h.user_id, h.body) for h in heads] == [("bob", '{"n":1}'), ("alice", '{"n":1}')]
    assert [h.user_id for h in outbox.heads("door", 10, skip={"bob"})] == ["alice"]
    assert outbox.counts("door") == (4, 0)

    outbox.delivered([heads[0].id])
    assert [h.body for h in outbox.heads("door", 10) if h.user_id == "bob"] == ['{"n":2}']


def test_a_dead_letter_is_skipped_until_sent_again_or_discarded(store: Store) -> None:
    outbox = WebhookOutbox(store.engine)
    outbox.add([change("alice", 1), change("alice", 2), change("bob", 1)])
    first = outbox.heads("door", 10)[0]
    outbox.failed(first.id, 3, "HTTP 400", NOW)
    assert [h.event_id for h in outbox.heads("door", 10)] == ["door-alice-2", "door-bob-1"]
    assert outbox.counts("door") == (2, 1)
    [dead] = outbox.dead_letters("door", 10)
    assert (dead.attempts, dead.last_error, dead.dead_at) == (3, "HTTP 400", NOW)

    assert outbox.revive("other", dead.id) is None  # another webhook's id space
    assert outbox.revive("door", dead.id) is not None
    assert outbox.revive("door", dead.id) is None  # no longer dead
    assert outbox.heads("door", 10)[0].event_id == "door-alice-1"  # the oldest again
    assert outbox.heads("door", 10)[0].attempts == 0

    outbox.failed(dead.id, 1, "HTTP 400", NOW)
    assert outbox.discard("door", dead.id)
    assert not outbox.discard("door", dead.id)
    assert outbox.counts("door") == (2, 0)


def test_a_batch_written_twice_adds_each_change_once(store: Store) -> None:
    outbox = WebhookOutbox(store.engine)
    batch = [change("alice", 1), change("alice", 2)]
    outbox.add(batch[:1])
    outbox.add(batch)  # the first row is there already (a commit whose answer was lost)
    assert [h.event_id for h in outbox.heads("door", 10)] == ["door-alice-1"]
    assert outbox.counts("door") == (2, 0)
