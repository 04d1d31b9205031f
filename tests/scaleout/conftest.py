"""Fixtures of the scale-out tests: a database of its own on the throwaway PostgreSQL server
(`postgres_url`, tests/conftest.py)."""
from __future__ import annotations

import uuid

import pytest


@pytest.fixture
def postgres_database(postgres_url):
    """The SQLAlchemy URL of a new, empty database on the throwaway server, dropped after the
    test (WITH (FORCE): connections a killed server left are cut)."""
    from sqlalchemy.engine import make_url

    name = f"scaleout_{uuid.uuid4().hex[:16]}"
    _admin(postgres_url, f'CREATE DATABASE "{name}"')
    try:
        yield make_url(postgres_url).set(database=name).render_as_string(hide_password=False)
    finally:
        _admin(postgres_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _admin(server_url: str, statement: str) -> None:
    """One statement outside a transaction (CREATE/DROP DATABASE) on the server's `postgres` database."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    engine = create_engine(server_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        with engine.connect() as connection:
            connection.execute(text(statement))
    finally:
        engine.dispose()
