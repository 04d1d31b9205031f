"""Alembic environment for studyweb, configured in code by `studyweb.db.revisions` (no alembic.ini).

The URL comes from the config's `sqlalchemy.url`; a live connection passed in
`config.attributes["connection"]` is used as is (tests, create-and-migrate in one go).
"""
from alembic import context

from studyweb.db.engine import make_engine
from studyweb.db.schema import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(config.get_main_option("sqlalchemy.url"))
    try:
        with engine.connect() as connection:
            _run(connection)
    finally:
        engine.dispose()


def _run(connection) -> None:
    # render_as_batch: SQLite cannot ALTER most things; batch mode rebuilds the table instead
    # (copy, drop, rename). With foreign keys on, dropping the old table would cascade-delete
    # every row that points at it (trials, clicks, maps...), so SQLite migrates with them off,
    # checked afterwards. The pragma only takes effect outside a transaction.
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
        connection.commit()
    try:
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
            if sqlite:
                broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if broken:
                    raise RuntimeError(f"the migration left rows whose foreign keys point nowhere: {broken[:5]}")
    finally:
        if sqlite:
            connection.exec_driver_sql("PRAGMA foreign_keys=ON")
            connection.commit()


if context.is_offline_mode():
    raise RuntimeError("studyweb migrations run online only; use `gazelab study init-db --db URL`")
run_migrations_online()
