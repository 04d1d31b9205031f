"""The study's database, in five modules:

- `studyweb.db.schema`: the SQL schema, SQLAlchemy 2.0 typed models (built by the Alembic
  migrations in `studyweb/migrations/`);
- `studyweb.db.engine`: engines (SQLite's pragmas), session factories, and the locks writers take;
- `studyweb.db.revisions`: running the migrations, and sessions on a migrated database;
- `studyweb.db.request`: the Flask request's session (`get_db`; the only one that imports Flask);
- `studyweb.db.saving`: idempotent saves (`record_save`, `claim_key`, `content_digest`).

Code inside studyweb imports from those modules. The names below are the package's interface
for the commands, benchmarks and scripts outside it (`from studyweb.db import open_session`);
`get_db` is left out so that importing this package never imports Flask.
"""
from __future__ import annotations

from studyweb.db.engine import (SQLITE_BUSY_TIMEOUT_MS, SQLiteWriteLock, lock_experiment, make_engine, safe_url,
                                session_factory, write_lock)
from studyweb.db.revisions import init_db, migrate, open_session
from studyweb.db.saving import KeyReused, claim_key, content_digest, record_save
from studyweb.db.schema import (EXPERIMENT_STATUSES, FINISHED_STATUSES, PARTICIPANT_SOURCES, PARTICIPANT_STATUSES,
                                RECRUIT_SOURCES, SIDES, TRIAL_STATUSES, Admin, AdminSession, Base, Click,
                                DuplicateResponse, Event, Experiment, FixationMap, Participant, Response, SaveRecord,
                                Stimulus, Trial, new_token, utcnow)

__all__ = [
    "EXPERIMENT_STATUSES", "FINISHED_STATUSES", "PARTICIPANT_SOURCES", "PARTICIPANT_STATUSES", "RECRUIT_SOURCES",
    "SIDES", "TRIAL_STATUSES", "SQLITE_BUSY_TIMEOUT_MS",
    "Admin", "AdminSession", "Base", "Click", "DuplicateResponse", "Event", "Experiment", "FixationMap", "Participant",
    "Response", "SaveRecord", "Stimulus", "Trial", "new_token", "utcnow",
    "SQLiteWriteLock", "lock_experiment", "make_engine", "safe_url", "session_factory", "write_lock",
    "KeyReused", "claim_key", "content_digest", "record_save",
    "init_db", "migrate", "open_session",
]
