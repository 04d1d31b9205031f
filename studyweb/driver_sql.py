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

from dataclasses import dataclass
from typing import Any, Callable, Sequence

from sqlalchemy.engine import Connection, Dialect


@dataclass(frozen=True)
class _Compiled:
    sql: str
    names: tuple[str, ...]  # bind names in the order the driver wants them (positional styles)
    positional: bool
    bind: dict[str, Callable[[Any], Any]]  # name → the type's bind processor (only those that have one)
    result: tuple[Callable[[Any], Any] | None, ...]  # per result column, or () for no rows


class DriverStatement:
    """A Core statement compiled once per dialect and run on the DBAPI cursor of a Connection.

    `statement` must name every bind parameter it takes (bindparam or .values({col: bindparam}))
    so that its SQL does not depend on the parameters given."""

    def __init__(self, statement):
        self.statement = statement
        self._by_dialect: dict[str, _Compiled] = {}

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

    def first(self, conn: Connection, params: dict[str, Any] | None = None) -> tuple | None:
        """The first result row with each column converted by its type (None without rows)."""
        compiled = self.compiled(conn.dialect)
        cursor = self.execute(conn, params)
        try:
            row = cursor.fetchone()
        finally:
            cursor.close()
        if row is None:
            return None
        return tuple(value if convert is None else convert(value) for convert, value in zip(compiled.result, row))


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
    bind = {}
    for name in names if positional else compiled.binds:
        type_ = compiled.binds[name].type
        processor = type_.dialect_impl(dialect).bind_processor(dialect)
        if processor is not None:
            bind[name] = processor
    result = ()
    if statement.is_select:
        result = tuple(column.type.dialect_impl(dialect).result_processor(dialect, None)
                       for column in statement.selected_columns)
    return _Compiled(sql=compiled.string, names=names, positional=positional, bind=bind, result=result)


def _parameters(compiled: _Compiled, params: dict[str, Any]):
    bind = compiled.bind
    if compiled.positional:
        return tuple(bind[name](params[name]) if name in bind else params[name] for name in compiled.names)
    return {name: bind[name](value) if name in bind else value for name, value in params.items()}
