"""The schema's revisions: run the Alembic migrations in `studyweb/migrations/` without an
alembic.ini, say which revision a database is at, and open sessions on a migrated database (for
commands and scripts; a Flask request uses `studyweb.db.request.get_db`)."""
from __future__ import annotations

import contextlib
import logging
from pathlib import Path

from sqlalchemy.exc import ArgumentError, OperationalError

from studyweb.db.engine import make_engine, safe_url, session_factory

log = logging.getLogger(__name__)
MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def init_db(url: str) -> None:
    """Create or upgrade the schema at `url` by running the Alembic migrations to head."""
    upgrade(url)


def migrate(url: str) -> None:
    """`init_db(url)`, with a database that cannot be opened turned into a ValueError naming
    it (password hidden) and the driver's first line."""
    try:
        init_db(url)
    except (ArgumentError, OperationalError) as exc:
        raise ValueError(f"cannot open database {safe_url(url)}: {str(exc).splitlines()[0]}") from exc


@contextlib.contextmanager
def open_session(url: str):
    """A session on the database at `url`, migrated to the newest schema first; the engine is
    disposed when the block ends (for commands and scripts, not requests: see `get_db`)."""
    migrate(url)
    engine = make_engine(url)
    try:
        with session_factory(engine)() as session:
            yield session
    finally:
        engine.dispose()


# Alembic (a second or so to import) is imported by the functions that run it, not by every
# command that opens a database.
def alembic_config(url: str, connection=None):
    """An Alembic Config pointing at studyweb's migrations and the database at `url`."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # '%' is interpolation syntax in ConfigParser; escape it (URL-encoded passwords use it).
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def upgrade(url: str, revision: str = "head", connection=None) -> None:
    """Migrate the database at `url` to `revision` (default the newest)."""
    from alembic import command

    log.info("migrating %s to %s", safe_url(url), revision)
    command.upgrade(alembic_config(url, connection), revision)


def current_revision(url: str) -> str | None:
    """The revision the database at `url` is at (None for an empty database)."""
    from alembic.migration import MigrationContext

    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


def head_revision() -> str:
    """The newest revision in `studyweb/migrations/versions/`."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
