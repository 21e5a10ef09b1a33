"""Many rows of one statement handed to the driver's `executemany` directly.

The group commit writes up to hundreds of users' states and history rows at once. Run
through `Connection.execute`, SQLAlchemy processes every parameter of every row (a
quarter of the store thread's time in a batch of 100 events, py-spy). A `BulkStatement`
is compiled once for the engine's dialect: the SQL and its parameters' order come from
SQLAlchemy, the columns' own bind processors (JSON, the UTC instant) are applied here,
once per value, and the rows go to the driver as tuples.

Only for drivers with positional `?` parameters (SQLite); `run` falls back to
`Connection.execute` for any other, whose drivers adapt types of their own (psycopg's
JSONB).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.sql.dml import UpdateBase


class BulkStatement:
    def __init__(self, statement: UpdateBase, column_keys: Sequence[str] | None = None):
        self.statement = statement
        self.column_keys = list(column_keys) if column_keys is not None else None
        # One plan per engine's dialect, gone with it.
        self._plans: weakref.WeakKeyDictionary[Dialect, _Plan] = weakref.WeakKeyDictionary()

    def run(self, c: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        """The statement once per row (`rows` name its parameters, as for `execute`)."""
        if not rows:
            return
        if c.dialect.paramstyle != "qmark":
            c.execute(self.statement, [dict(row) for row in rows])
            return
        plan = self._plans.get(c.dialect)
        if plan is None:
            plan = self._plans[c.dialect] = _Plan(self.statement, c.dialect, self.column_keys)
        seen: dict[tuple[str, int], Any] = {}
        c.exec_driver_sql(plan.sql, [plan.values(row, seen) for row in rows])


class _Plan:
    def __init__(
        self, statement: UpdateBase, dialect: Dialect, column_keys: list[str] | None
    ) -> None:
        compiled = statement.compile(dialect=dialect, column_keys=column_keys)
        self.sql = compiled.string
        names = tuple(compiled.positiontup or ())
        fixed = compiled.params  # literals of the statement (`version + 1`)
        steps: list[tuple[str, Any, Callable[[Any], Any] | None]] = []
        for name in names:
            processor = compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect)
            steps.append((name, fixed.get(name), processor))
        self.steps = tuple(steps)

    def values(self, row: Mapping[str, Any], seen: dict[tuple[str, int], Any]) -> tuple[Any, ...]:
        """The row's parameters in order. `seen`: what this run's processors made of a time
        already (a group commit's rows share one `now`), by the object's identity; the
        rows hold their values alive for the run, so an identity is never reused."""
        found = []
        for name, literal, processor in self.steps:
            value = row.get(name, literal)
            if processor is None:
                found.append(value)
            elif isinstance(value, datetime):
                key = (name, id(value))
                if key not in seen:
                    seen[key] = processor(value)
                found.append(seen[key])
            else:
                found.append(processor(value))
        return tuple(found)
