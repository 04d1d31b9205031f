"""Engines, sessions for commands, and the locks writers take.

SQLite is the default (WAL, foreign keys on, a busy timeout so concurrent writers wait instead
of failing); PostgreSQL works by URL. A command or script opens a migrated session with
`studyweb.db.revisions.open_session`; a Flask request uses `studyweb.db.request.get_db`.
"""
from __future__ import annotations

import contextlib
import logging
import os
import threading
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: SQLiteWriteLock orders this process's threads only
    fcntl = None

from sqlalchemy import create_engine, event, update
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session, sessionmaker

from studyweb.db.schema import Experiment

log = logging.getLogger(__name__)
SQLITE_BUSY_TIMEOUT_MS = 10_000


def make_engine(url: str, **kwargs) -> Engine:
    """An engine for `url`. SQLite: the file's directory is created, and every connection gets
    WAL, foreign_keys=ON, busy_timeout (ms) and synchronous=NORMAL (safe with WAL)."""
    parsed = make_url(url)
    is_sqlite = parsed.get_backend_name() == "sqlite"
    if is_sqlite and parsed.database and parsed.database != ":memory:" and not parsed.database.startswith("file:"):
        Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, **kwargs)
    if is_sqlite:
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """A sessionmaker bound to `engine`; objects stay usable after commit (expire_on_commit=False)."""
    return sessionmaker(bind=engine, expire_on_commit=False)


def safe_url(url: str) -> str:
    """`url` with its password hidden, for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # an unparsable URL is shown as given; it has no password to hide
        return url


def lock_experiment(session: Session, experiment_id: int) -> None:
    """Take the experiment's write lock for the rest of the caller's transaction.

    A no-op UPDATE of the experiment row: on PostgreSQL it row-locks the experiment; on SQLite
    it takes the database write lock (other writers wait up to busy_timeout). Assignments run
    under it so two participants never count the same observers at once."""
    session.execute(
        update(Experiment.__table__).where(Experiment.__table__.c.id == experiment_id)
        .values(status=Experiment.__table__.c.status)
    )


class SQLiteWriteLock:
    """Writers of one SQLite file take turns on an OS file lock (`<database>-writelock`) held
    across their write transaction, in every process and thread that uses it.

    SQLite has one write lock per database, and a writer that finds it taken polls: its busy
    handler sleeps 1, 2, 5, 10, 15, 20 ... ms between tries, so under a steady stream of saves
    from two gunicorn workers a save could sleep for tens of ms while the lock was free most of
    that time. A writer blocked in flock(2) is woken the moment the lock is released. Writers
    that do not take this lock (the ORM's occasional writes) still get SQLite's busy handler;
    the lock is always taken before SQLite's, so the two cannot deadlock. The file descriptor is
    opened per process (an inherited one would share the lock with the parent, as flock locks
    belong to open file descriptions), and a thread lock orders the threads of one process.
    Where fcntl is missing (Windows) only the thread lock is taken.
    """

    def __init__(self, database: str | os.PathLike):
        self.path = Path(f"{database}-writelock")
        self._threads = threading.Lock()
        self._fd: int | None = None
        self._pid: int | None = None

    def __enter__(self) -> SQLiteWriteLock:
        self._threads.acquire()
        try:
            if fcntl is not None:
                fcntl.flock(self._descriptor(), fcntl.LOCK_EX)
        except BaseException:
            self._threads.release()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        try:
            if fcntl is not None:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._threads.release()

    def _descriptor(self) -> int:
        if self._pid != os.getpid():  # first use in this process (gunicorn forks its workers)
            self._fd, self._pid = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600), os.getpid()
        return self._fd


_write_locks: dict[str, SQLiteWriteLock] = {}


def write_lock(engine: Engine) -> contextlib.AbstractContextManager:
    """The lock that writers of `engine`'s database take turns on around a write transaction:
    a `SQLiteWriteLock` for a SQLite file (one per file in this process), else a no-op
    (PostgreSQL waits for its row locks without polling)."""
    url = engine.url
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:" \
            or url.database.startswith("file:"):
        return contextlib.nullcontext()
    lock = _write_locks.get(url.database)
    if lock is None:  # first use of this spelling of the path: one lock per file, however named
        path = str(Path(url.database).expanduser().resolve())
        lock = _write_locks[url.database] = _write_locks.setdefault(path, SQLiteWriteLock(path))
    return lock


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()
