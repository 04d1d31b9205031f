"""Alembic environment for studyweb, configured in code by `studyweb.migrate` (no alembic.ini).

The URL comes from the config's `sqlalchemy.url`; a live connection passed in
`config.attributes["connection"]` is used as is (tests, create-and-migrate in one go).
"""
from alembic import context

from studyweb.db import Base, make_engine

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
    # render_as_batch: SQLite cannot ALTER most things; batch mode rebuilds the table instead.
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise RuntimeError("studyweb migrations run online only; use `gazelab study init-db --db URL`")
run_migrations_online()
