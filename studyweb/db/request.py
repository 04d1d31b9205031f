"""The Flask request's database session: opened on first use, closed when the request ends
(`close_db`, registered by `studyweb.create_app`). Kept apart from `studyweb.db.engine` so that
commands, which never serve a request, do not import Flask."""
from __future__ import annotations

from flask import current_app, g
from sqlalchemy.orm import Session


def get_db() -> Session:
    """The Flask request's SQLAlchemy session (opened on first use, closed when the request ends)."""
    if "db" not in g:
        g.db = current_app.extensions["studyweb.sessions"]()
    return g.db


def close_db(exc: BaseException | None) -> None:
    """Teardown: roll back (after an error) and close the request's session, if one was opened."""
    session = g.pop("db", None)
    if session is not None:
        if exc is not None:
            session.rollback()
        session.close()
