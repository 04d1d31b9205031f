"""Core statements run on the database driver's own cursor, for the study's hot path.

A trial save is four or five short statements, and SQLAlchemy's execution machinery (an
execution context, parameter processing, a result object per statement) cost more CPU than
SQLite spends running them: a profile of 1,500 saves put half of the route's time there. A
`DriverStatement` keeps what SQLAlchemy is good at — the statement is written in Core, compiled
by the dialect once, and its values converted by the column types' own bind and result
processors (`TypeEngine.bind_processor`, `result_processor`: datetimes as SQLite stores them,
booleans, JSON) — and hands the SQL to the DBAPI cursor directly.

It runs inside the caller's SQLAlchemy `Connection` and its transaction: `begin(conn)` makes sure
the Connection has one, so `conn.commit()` / `conn.rollback()` end the driver's work as they
end any other statement's. Positional (qmark, format) and named (pyformat, named) paramstyles are
both handled, which covers pysqlite and psycopg.
"""
from __future__ import annotations

from collections import namedtuple
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from sqlalchemy.engine import Connection, Dialect


@dataclass(frozen=True)
class _Compiled:
    sql: str
    names: tuple[str, ...]  # bind names in the order the driver wants them (positional styles)
    positional: bool
    bind: dict[str, Callable[[Any], Any]]  # name → the type's bind processor (only those that have one)
    defaults: dict[str, Any]  # name → the value fixed in the statement (a literal's, a JSON path's)
    bind_at: tuple[tuple[int, Callable[[Any], Any]], ...]  # (position, processor), positional styles
    row: type | None  # a namedtuple of the result columns' names (a SELECT)


class DriverStatement:
    """A Core statement compiled once per dialect and run on the DBAPI cursor of a Connection.

    `statement` must name every bind parameter it takes (bindparam or .values({col: bindparam}))
    so that its SQL does not depend on the parameters given."""

    def __init__(self, statement):
        self.statement = statement
        self._by_dialect: dict[str, _Compiled] = {}
        self._results: dict[str, tuple] = {}

    def compiled(self, dialect: Dialect) -> _Compiled:
        key = f"{dialect.name}+{dialect.driver}"
        found = self._by_dialect.get(key)
        if found is None:
            found = self._by_dialect[key] = _compile(self.statement, dialect)
        return found

    def execute(self, conn: Connection, params: dict[str, Any] | None = None):
        """Run once with `params`; the DBAPI cursor (read rows with `rows`/`first`, or rowcount)."""
        compiled = self.compiled(conn.dialect)
        cursor = _cursor(conn)
        cursor.execute(compiled.sql, _parameters(compiled, params or {}))
        return cursor

    def executemany(self, conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
        """Run once per row of `rows` in one driver call (a multi-row INSERT's usual path)."""
        if not rows:
            return
        compiled = self.compiled(conn.dialect)
        _cursor(conn).executemany(compiled.sql, [_parameters(compiled, row) for row in rows])

    def first(self, conn: Connection, params: dict[str, Any] | None = None):
        """The first result row, a named tuple of the selected columns' names with each value
        converted by its column's type (None without rows)."""
        compiled = self.compiled(conn.dialect)
        cursor = self.execute(conn, params)
        try:
            row = cursor.fetchone()
            converters = self._converters(conn.dialect, cursor.description)
        finally:
            cursor.close()
        if row is None:
            return None
        return compiled.row._make(value if convert is None else convert(value)
                                  for convert, value in zip(converters, row))

    def _converters(self, dialect: Dialect, description) -> tuple:
        """The result columns' processors, asked of their types with the driver's type codes
        (psycopg's differ by column), on the first run: they are the same on every later one."""
        key = f"{dialect.name}+{dialect.driver}"
        found = self._results.get(key)
        if found is None:
            found = self._results[key] = tuple(
                column.type.dialect_impl(dialect).result_processor(dialect, entry[1])
                for column, entry in zip(self.statement.selected_columns, description))
        return found


def begin(conn: Connection) -> None:
    """Make sure `conn` has a transaction, so its commit and rollback reach the driver's statements."""
    if not conn.in_transaction():
        conn.begin()


def _cursor(conn: Connection):
    return conn.connection.dbapi_connection.cursor()


def _compile(statement, dialect: Dialect) -> _Compiled:
    compiled = statement.compile(dialect=dialect)
    positional = bool(compiled.positional)
    names = tuple(compiled.positiontup or ()) if positional else tuple(compiled.binds)
    bind, defaults = {}, {}
    for name in names if positional else compiled.binds:
        parameter = compiled.binds[name]
        processor = parameter.type.dialect_impl(dialect).bind_processor(dialect)
        if processor is not None:
            bind[name] = processor
        if not parameter.required:
            defaults[name] = parameter.effective_value
    row = namedtuple("Row", [column.key for column in statement.selected_columns]) if statement.is_select else None
    return _Compiled(sql=compiled.string, names=names, positional=positional, bind=bind, row=row,
                     defaults=defaults, bind_at=tuple((i, bind[name]) for i, name in enumerate(names) if name in bind))


def _parameters(compiled: _Compiled, params: dict[str, Any]):
    bind = compiled.bind
    if compiled.defaults:
        params = {**compiled.defaults, **params}
    if compiled.positional:
        values = [params[name] for name in compiled.names]
        for index, convert in compiled.bind_at:
            values[index] = convert(values[index])
        return values
    return {name: bind[name](value) if name in bind else value for name, value in params.items()}
