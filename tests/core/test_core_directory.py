"""The directory sync's rules and plan (core/directory.py), table by table."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from presencebridge.core.directory import (
    Create,
    Known,
    Policy,
    Rule,
    Rules,
    Update,
    merge,
    plan,
)
from presencebridge.core.model import User
from presencebridge.core.ports import DirectoryPerson, DirectoryRead

NOW = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
RULES = Rules(
    (
        Rule(None, attribute="department", equals="Temps"),
        Rule("sales", member_of="Sales"),
        Rule("hq", ou="ou=HQ,dc=example,dc=com"),
    ),
    default_group="staff",
)
POLICY = Policy("entra", RULES, 0.10, timedelta(days=30))


def person(key: str, **fields: object) -> DirectoryPerson:
    values: dict[str, object] = {"display_name": key.title(), "upn": f"{key}@example.com",
                                 "teams_user_id": f"t-{key}"}  # fmt: skip
    values.update(fields)
    return DirectoryPerson(key, **values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("who", "group"),
    [
        (person("a"), "staff"),
        (person("b", groups=("sales",)), "sales"),  # group names without case
        (person("c", ou="cn=c,OU=HQ,DC=example,DC=com"), "hq"),
        (person("d", ou="cn=d,ou=Branch,dc=example,dc=com"), "staff"),
        (person("e", groups=("Sales",), attributes=(("department", "temps"),)), None),
    ],
)
def test_first_matching_rule_wins(who: DirectoryPerson, group: str | None) -> None:
    assert RULES.group_of(who) == group


def test_no_default_group_means_not_in_scope() -> None:
    assert Rules((Rule("sales", member_of="Sales"),)).group_of(person("a")) is None


def known(key: str, group: str = "staff", **fields: object) -> Known:
    p = person(key)
    user = User(f"{key}@example.com", p.display_name, group, p.teams_user_id,
                p.upn, (), (), f"entra:{key}")  # fmt: skip
    values = {"sync_off": False, "disabled_since": None} | fields
    return Known(user, values["sync_off"], values["disabled_since"])  # type: ignore[arg-type]


def test_first_run_creates_everyone_in_scope() -> None:
    people = {k: person(k) for k in ("a", "b")} | {
        "t": person("t", attributes=(("department", "Temps"),))
    }
    result = plan(POLICY, people, [], [], NOW)
    assert [c.user.id for c in result.creates] == ["a@example.com", "b@example.com"]
    assert result.creates[0].user.directory_key == "entra:a"
    assert result.summary() == "create 2, update 0, disable 0, delete 0, unchanged 0"


def test_a_second_run_finds_nothing_to_do() -> None:
    people = {k: person(k) for k in ("a", "b")}
    first = plan(POLICY, people, [], [], NOW)
    after = [Known(c.user, c.sync_off, None) for c in first.creates]
    again = plan(POLICY, people, after, [k.user.id for k in after], NOW)
    assert again.actions() == [] and again.unchanged == 2


def test_changes_become_updates_with_only_what_changed() -> None:
    people = {"a": person("a", display_name="Anna B", groups=("Sales",), extensions=("2101",))}
    result = plan(POLICY, people, [known("a")], ["a@example.com"], NOW)
    (update,) = result.updates
    assert isinstance(update, Update)
    assert dict(update.fields) == {"display_name": "Anna B", "group": "sales",
                                   "extensions": ("2101",)}  # fmt: skip


def test_numbers_are_parsed_and_bad_values_left_out_with_a_note() -> None:
    people = {"a": person("a", numbers=("030 1234567", "12ab"), extensions=("21 01",))}
    (create,) = plan(POLICY, people, [], [], NOW).creates
    assert create.user.numbers == ("+49301234567",)
    assert create.user.extensions == ()
    assert len(create.notes) == 2


def test_a_known_number_in_any_international_spelling_is_no_change() -> None:
    with_number = known("a")
    user = replace(with_number.user, numbers=("+49301234567",))
    spellings = ("+49 30 1234567", "+49-30-123.45.67", "+49/30/1234567", "+49301234567")
    for spelling in spellings:
        people = {"a": person("a", numbers=(spelling,))}
        result = plan(POLICY, people, [replace(with_number, user=user)], [user.id], NOW)
        assert result.actions() == [] and result.unchanged == 1, spelling
    # a national spelling, another number, a trunk prefix: parsed as always
    people = {"a": person("a", numbers=("030 1234567", "+49 (0)30 7654321", "bad"))}
    result = plan(POLICY, people, [replace(with_number, user=user)], [user.id], NOW)
    (update,) = result.updates
    assert dict(update.fields) == {"numbers": ("+49301234567", "+49307654321")}
    assert len(update.notes) == 1


def test_without_a_teams_account_created_with_sync_off() -> None:
    (create,) = plan(POLICY, {"a": person("a", teams_user_id=None)}, [], [], NOW).creates
    assert isinstance(create, Create) and create.sync_off
    assert "Teams sync off" in create.line()


def test_users_made_by_hand_are_never_touched_and_their_ids_are_not_taken() -> None:
    result = plan(POLICY, {"a": person("a")}, [], ["a@example.com"], NOW)
    assert result.creates == () and "taken" in result.skipped[0].why


def test_disabled_removed_and_out_of_scope_people_are_disabled_then_deleted() -> None:
    people = {
        "a": person("a", enabled=False),
        "t": person("t", attributes=(("department", "Temps"),)),
        **{f"x{i}": person(f"x{i}") for i in range(30)},
    }
    everyone = [known(k) for k in ["a", "t", "gone", *(f"x{i}" for i in range(30))]]
    result = plan(POLICY, people, everyone, [], NOW)
    assert sorted(d.user_id for d in result.disables) == [
        "a@example.com", "gone@example.com", "t@example.com"]  # fmt: skip
    later = [known("gone", disabled_since=NOW - timedelta(days=31)),
             known("a", disabled_since=NOW - timedelta(days=2))]  # fmt: skip
    result = plan(POLICY, people, later, [], NOW)
    assert [d.user_id for d in result.deletes] == ["gone@example.com"]
    assert result.disables == ()


def test_the_safety_stop_and_force() -> None:
    everyone = [known(f"x{i}") for i in range(10)]
    people = {f"x{i}": person(f"x{i}") for i in range(8)}  # 2 of 10 gone: 20 %
    stopped = plan(POLICY, people, everyone, [], NOW)
    assert stopped.stopped is not None and "--force" in stopped.stopped
    assert "2 of 10" in stopped.stopped
    assert plan(POLICY, people, everyone, [], NOW, force=True).stopped is None
    one_gone = {f"x{i}": person(f"x{i}") for i in range(9)}  # 10 %: allowed
    assert plan(POLICY, one_gone, everyone, [], NOW).stopped is None


def test_enabled_again_lifts_the_mark_and_sync_off() -> None:
    back = known("a", sync_off=True, disabled_since=NOW - timedelta(days=1))
    (update,) = plan(POLICY, {"a": person("a")}, [back], [], NOW).updates
    assert update.enable and update.sync_off is False


def test_a_users_own_choice_of_off_stays() -> None:
    mine = known("a", sync_off=True)
    assert plan(POLICY, {"a": person("a")}, [mine], [], NOW).actions() == []


def test_a_delta_is_merged_and_memberships_apply_to_everyone() -> None:
    snapshot = {"a": person("a"), "b": person("b"), "c": person("c")}
    read = DirectoryRead((person("b", display_name="Bea"),), full=False, removed=("c",),
                         memberships={"a": ("Sales",)})  # fmt: skip
    merged = merge(snapshot, read)
    assert sorted(merged) == ["a", "b"]
    assert merged["b"].display_name == "Bea" and merged["a"].groups == ("Sales",)
    assert merged["b"].groups == ()
    full = merge(snapshot, DirectoryRead((person("z"),)))
    assert list(full) == ["z"]
