"""Agent tokens: looked up by their SHA-256, never stored as text."""

from __future__ import annotations

import hashlib
import re
import secrets
import uuid
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from presencebridge.adapters.store import GroupRecord, Store, UnknownTokenError, hash_token
from presencebridge.adapters.store import tables as t
from presencebridge.core.model import User, UserState

NOW = datetime(2024, 3, 4, 8, 30, tzinfo=UTC)


def add_users(store: Store, group: GroupRecord, *ids: str) -> None:
    for user_id in ids:
        store.create_user(UserState(User(user_id, user_id.title(), group.id)), NOW)


def test_hash_token_is_the_sha256_hex_digest() -> None:
    assert hash_token("abc") == ("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")


def test_an_agent_token_leads_to_its_user(store: Store, group: GroupRecord) -> None:
    add_users(store, group, "alice", "bob")
    alice_token, alice_second, bob_token = (secrets.token_urlsafe(32) for _ in range(3))

    ids = [
        store.add_agent_token("alice", alice_token, NOW),
        store.add_agent_token("alice", alice_second, NOW),
        store.add_agent_token("bob", bob_token, NOW),
    ]

    assert len(set(ids)) == 3
    assert all(str(uuid.UUID(token_id)) == token_id for token_id in ids)
    assert store.agent_token_user(alice_token) == "alice"
    assert store.agent_token_user(alice_second) == "alice"
    assert store.agent_token_user(bob_token) == "bob"


def test_an_unknown_token_raises(store: Store, group: GroupRecord) -> None:
    add_users(store, group, "alice")
    token = secrets.token_urlsafe(32)
    store.add_agent_token("alice", token, NOW)

    for wrong in ["", "nope", token[:-1], token + "x", f" {token}", hash_token(token)]:
        with pytest.raises(UnknownTokenError):
            store.agent_token_user(wrong)
    assert issubclass(UnknownTokenError, LookupError)


def test_the_database_holds_only_the_tokens_hash(store: Store, group: GroupRecord) -> None:
    add_users(store, group, "alice")
    token = secrets.token_urlsafe(32)
    token_id = store.add_agent_token("alice", token, NOW)

    with store.engine.connect() as connection:
        rows = connection.execute(sa.select(t.agent_tokens)).mappings().all()
        everything = [
            value
            for table in t.metadata.sorted_tables
            for row in connection.execute(sa.select(table))
            for value in row
        ]

    assert len(rows) == 1
    [row] = rows
    assert row["id"] == token_id
    assert row["user_id"] == "alice"
    assert re.fullmatch(r"[0-9a-f]{64}", row["token_hash"])
    assert row["token_hash"] == hashlib.sha256(token.encode()).hexdigest()
    assert all(token not in str(value) for value in row.values())
    assert all(token not in str(value) for value in everything)


def test_a_token_for_an_unknown_user_is_refused(store: Store, group: GroupRecord) -> None:
    with pytest.raises(IntegrityError):
        store.add_agent_token("ghost", secrets.token_urlsafe(32), NOW)

    with store.engine.connect() as connection:
        assert (
            connection.execute(sa.select(sa.func.count()).select_from(t.agent_tokens)).scalar() == 0
        )


def test_the_same_token_cannot_be_added_twice(store: Store, group: GroupRecord) -> None:
    add_users(store, group, "alice", "bob")
    token = secrets.token_urlsafe(32)
    store.add_agent_token("alice", token, NOW)

    with pytest.raises(IntegrityError):
        store.add_agent_token("bob", token, NOW)

    assert store.agent_token_user(token) == "alice"
