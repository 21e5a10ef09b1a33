"""Signed outgoing webhooks against a real receiver process and a real server process
(issue 17 part 4, docs/webhooks.md): signatures checked with the page's own snippet;
a receiver that is down, then back, gets every change afterwards, in order per user,
none lost, none twice; a hub killed with changes pending delivers them after its start;
a group filter keeps other users' changes away."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.server import ServerProcess
from tests.webhooks.hooks import (
    SECRET,
    Receiver,
    documented_verify,
    hook_server,
    make_users,
    profiles_of,
    select,
    wait_for,
    webhook_table,
    webhooks,
)

PROFILES = [f"p{n}" for n in range(8)]


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[Receiver]:
    process = Receiver(tmp_path / "receiver")
    process.start()
    yield process
    process.stop()


def unique_keys(receiver: Receiver, path: str) -> None:
    """No change was taken twice, and every attempt of a change carried its key."""
    taken = [r.key for r in receiver.taken(path)]
    assert len(taken) == len(set(taken))
    for r in receiver.received(path):
        assert r.body["id"] == r.key


def test_a_receiver_down_for_a_while_gets_every_change_in_order_signed(
    tmp_path: Path, receiver: Receiver
) -> None:
    config = webhook_table("all", receiver.url("/all"), max_attempts=1000) + webhook_table(
        "sales", receiver.url("/sales"), groups=["sales"], language="de"
    )
    server = hook_server(tmp_path, config)
    try:
        make_users(server, {"alice": "hq", "bob": "sales"}, len(PROFILES))
        users = ("alice", "bob")
        for profile in PROFILES[:3]:
            for user in users:
                select(server, user, profile)
        wait_for(
            lambda: all(profiles_of(receiver.taken("/all"), u) == PROFILES[:3] for u in users),
            "the first three changes of both users at the receiver",
        )
        verify = documented_verify()
        for r in receiver.received():
            timestamp = r.headers["x-presencebridge-timestamp"]
            signature = r.headers["x-presencebridge-signature"]
            assert verify(SECRET, timestamp, signature, r.raw.encode())
            assert not verify(SECRET, timestamp, signature, r.raw.encode() + b" ")
            assert not verify("another secret", timestamp, signature, r.raw.encode())

        # Every answer back at the hub before the receiver goes: a 200 still on its way
        # when the process stops would (rightly) be sent again, with the same key.
        wait_for(
            lambda: all(w["pending"] == 0 for w in webhooks(server).values()),
            "both outboxes empty",
        )
        receiver.stop()
        for profile in PROFILES[3:]:
            for user in users:
                select(server, user, profile)
        wait_for(lambda: not webhooks(server)["all"]["up"], "the hub sees the receiver down")
        # Down for a while: the hub keeps trying, with growing delays, until it answers.
        wait_for(lambda: webhooks(server)["all"]["failed"] >= 4, "several attempts refused")
        assert webhooks(server)["all"]["pending"] > 0
        receiver.start()

        wait_for(
            lambda: all(profiles_of(receiver.taken("/all"), u) == PROFILES for u in users),
            "every change of both users, in order, after the receiver came back",
        )
        wait_for(lambda: webhooks(server)["all"]["pending"] == 0, "an empty outbox")
        assert webhooks(server)["all"]["up"] and webhooks(server)["all"]["dead"] == 0
        unique_keys(receiver, "/all")
        check_group_filter(server, receiver)
        check_no_secret_shown(server)
    finally:
        server.stop()


def check_group_filter(server: ServerProcess, receiver: Receiver) -> None:
    """The `sales` webhook: bob (group sales) in order, never alice (group hq)."""
    wait_for(
        lambda: profiles_of(receiver.taken("/sales"), "bob") == PROFILES,
        "bob's changes at the sales webhook",
    )
    sales = receiver.received("/sales")
    assert {r.user for r in sales} == {"bob"}
    assert all(r.body["webhook"] == "sales" for r in sales)
    bob = next(r for r in sales if r.profile == "p0").body
    # The presence resource as the API gives it, in the webhook's language.
    with server.client() as api:
        resource = api.get("/api/v1/users/bob/presence", params={"lang": "de"}).json()
    assert set(bob["presence"]) == set(resource)
    assert bob["user"] == {
        "id": "bob", "display_name": "Bob", "group": "sales", "email": None, "extensions": [],
    }  # fmt: skip
    assert bob["event"] == "presence.changed"
    unique_keys(receiver, "/sales")


def check_no_secret_shown(server: ServerProcess) -> None:
    with server.client() as api:
        shown = [api.get("/api/v1/admin/webhooks").text, httpx.get(server.url + "/healthz").text]
    shown.append(server.log_path.read_text())
    assert all(SECRET not in text for text in shown)
    health = httpx.get(server.url + "/healthz").json()
    kinds = {c["name"]: c["kind"] for c in health["connectors"]}
    assert kinds == {"all": "webhook", "sales": "webhook"}


def test_changes_pending_when_the_hub_is_killed_go_out_after_its_start(
    tmp_path: Path, receiver: Receiver
) -> None:
    receiver.answer(503)
    server = hook_server(tmp_path, webhook_table("all", receiver.url("/all"), max_attempts=1000))
    try:
        make_users(server, {"alice": "hq"}, 5)
        for profile in PROFILES[:5]:
            select(server, "alice", profile)
        # In the outbox: the user's creation and five profile changes.
        wait_for(lambda: webhooks(server)["all"]["pending"] == 6, "six changes in the outbox")
        wait_for(lambda: any(r.status == 503 for r in receiver.received()), "a refused attempt")
        server.kill9()
        receiver.answer(200)
        server.start()
        wait_for(
            lambda: profiles_of(receiver.taken("/all"), "alice") == PROFILES[:5],
            "the five changes, in order, after the restart",
        )
        wait_for(lambda: webhooks(server)["all"]["pending"] == 0, "an empty outbox")
        unique_keys(receiver, "/all")
        # The refused attempts before the kill and the delivery after it: one key each.
        refused = {r.key for r in receiver.received("/all") if r.status == 503}
        assert refused <= {r.key for r in receiver.taken("/all")}
    finally:
        server.stop()
