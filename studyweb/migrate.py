"""Run the Alembic migrations in `studyweb/migrations/` without an alembic.ini."""
from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


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

    log.info("migrating %s to %s", _safe(url), revision)
    command.upgrade(alembic_config(url, connection), revision)


def current_revision(url: str) -> str | None:
    """The revision the database at `url` is at (None for an empty database)."""
    from alembic.migration import MigrationContext

    from studyweb.db import make_engine

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


def _safe(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
