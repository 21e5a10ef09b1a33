"""The CSV file's reading, writing and the import's plan, pure (issue 12 part 7)."""

from __future__ import annotations

from presencebridge.core import usercsv
from presencebridge.core.model import User


def wanted(line: int, user: User, columns: tuple[str, ...] = usercsv.COLUMNS) -> usercsv.Wanted:
    return usercsv.Wanted(line, user, columns)


def test_reading_finds_the_delimiter_skips_blank_rows_and_counts_physical_lines() -> None:
    sheet = usercsv.read('\ufeffID;Display_Name;group\n\na;"two\nlines";hq\nb;B;hq\n')
    assert sheet.columns == ("id", "display_name", "group")
    assert [(r.line, r.values["id"]) for r in sheet.rows] == [(3, "a"), (5, "b")]
    assert sheet.rows[0].values["display_name"] == "two\nlines"
    assert usercsv.split_list(" 2101 ;;2102 ") == ["2101", "2102"]


def test_writing_sorts_by_id_and_joins_lists() -> None:
    users = [
        User("b", "B, Jr.", "hq", numbers=("+49301234567",)),
        User("a", "A", "hq", extensions=("1", "2")),
    ]
    text = usercsv.write(users)
    assert text.splitlines() == [
        "id,display_name,group,teams_user_id,email,extensions,numbers",
        "a,A,hq,,,1;2,",
        'b,"B, Jr.",hq,,,,+49301234567',
    ]
    assert [r.values["extensions"] for r in usercsv.read(text).rows] == ["1;2", ""]


def test_a_user_of_a_directory_is_refused_and_columns_not_in_the_file_are_kept() -> None:
    existing = {
        "d": User("d", "D", "hq", directory_key="entra:123"),
        "h": User("h", "H", "hq", "t-h", "h@example.com", ("7",)),
    }
    rows = [
        wanted(2, User("d", "D2", "hq")),
        wanted(3, User("h", "H2", "hq"), ("id", "display_name", "group")),
    ]
    plan = usercsv.plan([], rows, existing, ["hq"])
    assert [p.text() for p in plan.problems] == [
        "line 2: user 'd' comes from directory 'entra', which owns it: change it there, "
        "or leave it out of the file"
    ]
    step = plan.steps[0]
    assert (step.action, dict(step.fields)) == ("update", {"display_name": "H2"})
    assert step.user.extensions == ("7",) and step.user.teams_user_id == "t-h"


def test_a_value_may_move_between_lines_in_any_order() -> None:
    existing = {
        "a": User("a", "A", "hq", "t-a", extensions=("1",)),
        "c": User("c", "C", "hq", numbers=("+49301111111",)),
        "d": User("d", "D", "hq", numbers=("+49302222222",)),
    }
    rows = [
        wanted(2, User("b", "B", "hq", "t-a", extensions=("1",))),  # takes a's, a is later
        wanted(3, User("a", "A", "hq")),  # a's row no longer lists them
        wanted(4, User("c", "C", "hq", numbers=("+49302222222",))),  # c and d swap
        wanted(5, User("d", "D", "hq", numbers=("+49301111111",))),
    ]
    plan = usercsv.plan([], rows, existing, ["hq"])
    assert plan.problems == ()
    assert [(s.user_id, s.action) for s in plan.steps] == [
        ("b", "create"),
        ("a", "update"),
        ("c", "update"),
        ("d", "update"),
    ]


def test_real_conflicts_name_both_users() -> None:
    existing = {
        "a": User("a", "A", "hq", extensions=("1",)),
        "x": User("x", "X", "hq", numbers=("+49301111111",)),
    }
    rows = [
        wanted(2, User("a", "A", "hq", extensions=("1",))),  # a keeps 1
        wanted(3, User("b", "B", "hq", extensions=("1", "5"))),
        wanted(4, User("c", "C", "hq", "t-c", extensions=("5",))),  # b's new 5 too
        wanted(5, User("d", "D", "hq", "t-c", numbers=("+49301111111",))),  # x is not in it
    ]
    plan = usercsv.plan([], rows, existing, ["hq"])
    assert [p.text() for p in plan.problems] == [
        "line 3: extension '1' belongs to user 'a'",
        "line 4: extension '5' is also on line 3 (user 'b')",
        "line 5: Teams id 't-c' is also on line 4 (user 'c')",
        "line 5: number '+49301111111' belongs to user 'x'",
    ]
    assert (plan.problems[1].code, dict(plan.problems[1].params)) == (
        "extension_twice",
        {"value": "5", "other": "b", "other_line": 3},
    )
    assert [s.user_id for s in plan.steps] == ["a"]


def test_the_same_id_twice_names_the_first_line() -> None:
    rows = [wanted(2, User("a", "A", "hq")), wanted(4, User("a", "A", "hq"))]
    plan = usercsv.plan([], rows, {}, ["hq"])
    assert [p.text() for p in plan.problems] == ["line 4: user 'a' is on line 2 already"]
