"""The audit log's rows (issue 18) on SQLite and PostgreSQL: appended, listed newest
first with filters, paged by id with a total count, pruned by age."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from presencebridge.adapters.store import Store
from presencebridge.adapters.store import tables as t
from presencebridge.adapters.store.audit import AuditEntry, AuditQuery
from tests.store.conftest import NOW


def entry(minutes: int, actor: str, action: str, target: str, details: str = "{}") -> AuditEntry:
    return AuditEntry(NOW + timedelta(minutes=minutes), "session", actor, action, target, details)


def fill(store: Store) -> None:
    store.append_audit(entry(0, "Anna Admin", "group.created", "sales"))
    store.append_audit(entry(1, "Anna Admin", "group.settings.changed", "sales", '{"x": [1, 2]}'))
    store.append_audit(entry(2, "bob@example.com", "profile.created", "bob"))
    store.append_audit(entry(3, "administrator", "user.deleted", "carl_100%"))


def test_rows_come_back_newest_first_with_every_field(store: Store) -> None:
    fill(store)
    page = store.audit_page(AuditQuery())
    assert page.total == 4 and not page.more
    assert [e.action for e in page.entries] == [
        "user.deleted", "profile.created", "group.settings.changed", "group.created",
    ]  # fmt: skip
    second = page.entries[2]
    assert second.at == NOW + timedelta(minutes=1)  # aware, UTC, on both databases
    assert (second.actor_kind, second.actor, second.target) == ("session", "Anna Admin", "sales")
    assert second.details == '{"x": [1, 2]}'
    ids = [e.id or 0 for e in page.entries]
    assert ids == sorted(ids, reverse=True) and 0 not in ids


def test_filters_match_part_of_actor_action_and_target_in_any_case(store: Store) -> None:
    fill(store)

    def actions(query: AuditQuery) -> list[str]:
        return [e.action for e in store.audit_page(query).entries]

    assert actions(AuditQuery(actor="anna")) == ["group.settings.changed", "group.created"]
    assert actions(AuditQuery(action="GROUP.")) == ["group.settings.changed", "group.created"]
    assert actions(AuditQuery(target="bob")) == ["profile.created"]
    assert actions(AuditQuery(actor="anna", action="settings")) == ["group.settings.changed"]
    # % and _ are letters to look for, not wildcards.
    assert actions(AuditQuery(target="100%")) == ["user.deleted"]
    assert actions(AuditQuery(target="s_les")) == []
    assert actions(AuditQuery(target="sal", exact_target=True)) == []
    assert len(actions(AuditQuery(target="sales", exact_target=True))) == 2
    assert store.audit_page(AuditQuery(actor="nobody")).total == 0
    # NUL: no row has one, and PostgreSQL refuses to be asked (the console passes any
    # text on): nothing found, on both databases.
    for query in (AuditQuery(actor="a\x00"), AuditQuery(target="\x00", exact_target=True)):
        assert store.audit_page(query).total == 0 and store.audit_page(query).entries == []


def test_pages_follow_each_other_by_id_and_keep_the_total(store: Store) -> None:
    for i in range(25):
        store.append_audit(entry(i, "Anna Admin", "profile.created", f"u{i:02d}"))
    store.append_audit(entry(30, "other", "group.created", "g"))
    seen: list[str] = []
    before = None
    pages = 0
    while True:
        page = store.audit_page(AuditQuery(actor="anna", limit=10, before=before))
        pages += 1
        assert page.total == 25
        seen += [e.target for e in page.entries]
        if not page.more:
            break
        before = page.entries[-1].id
    assert pages == 3
    assert seen == [f"u{i:02d}" for i in reversed(range(25))]


def test_prune_deletes_only_rows_older_than_the_retention(store: Store) -> None:
    fill(store)
    removed = store.prune_audit(NOW + timedelta(minutes=2))
    assert removed == 2
    assert [e.action for e in store.audit_page(AuditQuery()).entries] == [
        "user.deleted", "profile.created",
    ]  # fmt: skip


def test_long_values_are_cut_to_the_columns(store: Store) -> None:
    store.append_audit(
        AuditEntry(NOW, "session", "x" * 400, "a" * 100, "t" * 400, '"' + "d" * 9000 + '"')
    )
    with store.engine.connect() as c:
        row = c.execute(sa.select(t.audit_log)).one()
    assert len(row.actor) == 256 and len(row.action) == 64 and len(row.target) == 300
    assert len(row.details) == 4000
