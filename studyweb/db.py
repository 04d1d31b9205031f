"""The study server's SQL schema (SQLAlchemy 2.0 typed models) and engine helpers.

SQLite is the default (WAL, foreign keys on, a busy timeout so concurrent writers wait instead
of failing); PostgreSQL works by URL. Only portable column types are used. The schema is
created by Alembic migrations (`studyweb/migrations/`): `init_db(url)` migrates to head.

Times are naive UTC datetimes (`utcnow()`), the same on SQLite and PostgreSQL.
Coordinates are image pixels at the stimulus' natural size, x right and y down.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import functools
import logging
import os
import secrets
import threading
from pathlib import Path
from typing import Any, Optional

try:
    import fcntl
except ImportError:  # Windows: SQLiteWriteLock orders this process's threads only
    fcntl = None

import numpy as np
from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    false,
    func,
    select,
    update,
)
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship, sessionmaker

log = logging.getLogger(__name__)

EXPERIMENT_STATUSES = ("open", "closed")
PARTICIPANT_STATUSES = (
    "consent", "instructions", "practice", "trials", "debrief", "complete", "returned", "timed_out", "screened_out",
)
# A participant in one of these is no longer doing the study (and no longer "active"); screened_out:
# ended by the device check, comprehension check, tutorial or catch trials (`studyweb.screening`).
FINISHED_STATUSES = ("complete", "returned", "timed_out", "screened_out")
PARTICIPANT_SOURCES = ("real", "simulated", "imported")
RECRUIT_SOURCES = ("prolific", "mturk", "anonymous")
TRIAL_STATUSES = ("pending", "started", "done")
SIDES = ("x", "y", "")
SQLITE_BUSY_TIMEOUT_MS = 10_000


def utcnow() -> dt.datetime:
    """The current time as a naive UTC datetime (what every DateTime column holds)."""
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


def new_token() -> str:
    """A random URL-safe secret (32 bytes of entropy) for a participant's browser."""
    return secrets.token_urlsafe(32)


class Base(DeclarativeBase):
    pass


class Experiment(Base):
    """One study: a task on the stimuli of one dataset; `settings` holds the task parameters
    (see `studyweb.experiments.DEFAULT_SETTINGS`). Replace `settings` with a new dict to change
    it: the JSON column does not track in-place mutation."""

    __tablename__ = "experiments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    title: Mapped[str] = mapped_column(String(200), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    task: Mapped[str] = mapped_column(String(32), default="bubbleview")
    dataset_path: Mapped[str] = mapped_column(Text, default="")
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default="open")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)

    stimuli: Mapped[list["Stimulus"]] = relationship(
        back_populates="experiment", order_by="Stimulus.id", cascade="all, delete-orphan"
    )
    participants: Mapped[list["Participant"]] = relationship(
        back_populates="experiment", order_by="Participant.id", cascade="all, delete-orphan"
    )


class Stimulus(Base):
    """One image shown in an experiment: a side ('x' | 'y', or '' for a lone image) of a pair,
    as rendered (method '') or as an editing method output it (method = the method's name, in
    questionnaire designs).

    image_path is absolute or relative to the experiment's dataset; width, height are the
    natural size in pixels; blurred_path caches the pre-blurred image (BubbleView)."""

    __tablename__ = "stimuli"
    __table_args__ = (UniqueConstraint("experiment_id", "pair_id", "side", "method", name="uq_stimuli_version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiments.id", ondelete="CASCADE"), index=True)
    image_path: Mapped[str] = mapped_column(Text)
    pair_id: Mapped[str] = mapped_column(String(128))
    side: Mapped[str] = mapped_column(String(1), default="")
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    blurred_path: Mapped[Optional[str]] = mapped_column(Text, nullable=True)
    method: Mapped[str] = mapped_column(String(64), default="", server_default="")

    experiment: Mapped[Experiment] = relationship(back_populates="stimuli")

    @property
    def label(self) -> str:
        """'PAIRID_side' (or the pair id alone for a lone image), as in the dataset's file names."""
        return f"{self.pair_id}_{self.side}" if self.side else self.pair_id


class Participant(Base):
    """One person (or simulated client) taking one experiment.

    token is the secret the browser holds. One assignment per (experiment, recruit_id) is enforced
    in code (`studyweb.assignment.assign`, under the experiment lock), not by a unique
    constraint, so that an experiment with allow_repeat can take the same person twice."""

    __tablename__ = "participants"
    __table_args__ = (
        Index("ix_participants_recruit", "experiment_id", "recruit_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiments.id", ondelete="CASCADE"), index=True)
    token: Mapped[str] = mapped_column(String(64), unique=True, default=new_token)
    recruit_source: Mapped[str] = mapped_column(String(16), default="anonymous")
    recruit_id: Mapped[Optional[str]] = mapped_column(String(128), nullable=True)
    study_id: Mapped[Optional[str]] = mapped_column(String(128), nullable=True)
    session_id: Mapped[Optional[str]] = mapped_column(String(128), nullable=True)
    source: Mapped[str] = mapped_column(String(16), default="real")
    status: Mapped[str] = mapped_column(String(16), default="consent")
    user_agent: Mapped[Optional[str]] = mapped_column(Text, nullable=True)
    screen_w: Mapped[Optional[int]] = mapped_column(Integer, nullable=True)
    screen_h: Mapped[Optional[int]] = mapped_column(Integer, nullable=True)
    window_w: Mapped[Optional[int]] = mapped_column(Integer, nullable=True)
    window_h: Mapped[Optional[int]] = mapped_column(Integer, nullable=True)
    assignment_seed: Mapped[Optional[int]] = mapped_column(Integer, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    last_seen_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    completed_at: Mapped[Optional[dt.datetime]] = mapped_column(DateTime, nullable=True)
    completion_code: Mapped[Optional[str]] = mapped_column(String(64), nullable=True)
    # The QC decision as it was made (maps built, a study ended): never recomputed by an export.
    qc_status: Mapped[Optional[str]] = mapped_column(String(16), nullable=True)
    qc_reason: Mapped[Optional[str]] = mapped_column(Text, nullable=True)
    qc_decided_at: Mapped[Optional[dt.datetime]] = mapped_column(DateTime, nullable=True)

    experiment: Mapped[Experiment] = relationship(back_populates="participants")
    trials: Mapped[list["Trial"]] = relationship(
        back_populates="participant", order_by="Trial.position", cascade="all, delete-orphan"
    )
    events: Mapped[list["Event"]] = relationship(
        back_populates="participant", order_by="Event.id", cascade="all, delete-orphan"
    )


class Trial(Base):
    """One stimulus shown to one participant at `position` (0 = first; practice and tutorial
    trials have is_practice=True). duration_ms is the viewing time; display_w/h the image's shown
    size in CSS pixels; response_text the description in BubbleView's 'describe' mode.

    task: the trial's task when it is not the experiment's own (None: the experiment's); spec:
    what the task needs to run and check the trial, e.g. CodeCharts' {"kind": "image" |
    "sentinel", "seed", "image_ms", "tutorial"} (`studyweb.codecharts_study`). A sentinel trial
    has no stimulus."""

    __tablename__ = "trials"
    __table_args__ = (UniqueConstraint("participant_id", "position", name="uq_trials_position"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    participant_id: Mapped[int] = mapped_column(ForeignKey("participants.id", ondelete="CASCADE"), index=True)
    stimulus_id: Mapped[Optional[int]] = mapped_column(
        ForeignKey("stimuli.id", ondelete="CASCADE"), nullable=True, index=True
    )
    position: Mapped[int] = mapped_column(Integer)
    is_practice: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    started_at: Mapped[Optional[dt.datetime]] = mapped_column(DateTime, nullable=True)
    ended_at: Mapped[Optional[dt.datetime]] = mapped_column(DateTime, nullable=True)
    duration_ms: Mapped[Optional[float]] = mapped_column(Float, nullable=True)
    display_w: Mapped[Optional[float]] = mapped_column(Float, nullable=True)
    display_h: Mapped[Optional[float]] = mapped_column(Float, nullable=True)
    response_text: Mapped[Optional[str]] = mapped_column(Text, nullable=True)
    task: Mapped[Optional[str]] = mapped_column(String(32), nullable=True)
    spec: Mapped[Optional[dict[str, Any]]] = mapped_column(JSON, nullable=True)

    participant: Mapped[Participant] = relationship(back_populates="trials")
    stimulus: Mapped[Optional[Stimulus]] = relationship()
    clicks: Mapped[list["Click"]] = relationship(
        back_populates="trial", order_by="Click.t_ms", cascade="all, delete-orphan"
    )


class Click(Base):
    """One click: (x, y) in image pixels at natural size, t_ms since the trial started, and the
    image's displayed size (CSS pixels) at the time; idempotency_key of the save that sent it."""

    __tablename__ = "clicks"
    __table_args__ = (Index("ix_clicks_trial_id", "trial_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    trial_id: Mapped[int] = mapped_column(ForeignKey("trials.id", ondelete="CASCADE"))
    x: Mapped[float] = mapped_column(Float)
    y: Mapped[float] = mapped_column(Float)
    t_ms: Mapped[float] = mapped_column(Float)
    display_w: Mapped[Optional[float]] = mapped_column(Float, nullable=True)
    display_h: Mapped[Optional[float]] = mapped_column(Float, nullable=True)
    idempotency_key: Mapped[Optional[str]] = mapped_column(String(64), nullable=True)
    late: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    trial: Mapped[Trial] = relationship(back_populates="clicks")


class Event(Base):
    """Something that happened in the browser (focus_lost, focus_back, resize, fullscreen_exit,
    visibility_hidden, ...) at t_ms (since the trial started, or since page load without one)."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    participant_id: Mapped[int] = mapped_column(ForeignKey("participants.id", ondelete="CASCADE"), index=True)
    trial_id: Mapped[Optional[int]] = mapped_column(
        ForeignKey("trials.id", ondelete="CASCADE"), nullable=True, index=True
    )
    kind: Mapped[str] = mapped_column(String(32))
    t_ms: Mapped[Optional[float]] = mapped_column(Float, nullable=True)
    payload: Mapped[Optional[dict[str, Any]]] = mapped_column(JSON, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)

    participant: Mapped[Participant] = relationship(back_populates="events")


class Response(Base):
    """One answer of a participant in a trial (CodeCharts codes, questionnaire answers), one row
    per question: what was answered (choice, rating, text, or a point x, y in image pixels of
    the natural size), whether it was valid (a typed code that is on the chart) and, where the
    answer is known (sentinels, catch trials), correct; rt_ms from the answer screen's start;
    shown_methods the candidates' methods in display order; payload what else the task keeps
    (e.g. the code as typed). One row per (participant, idempotency_key, question) and one per
    (trial, question): a trial is answered once, whatever races (migration 0006)."""

    __tablename__ = "responses"
    __table_args__ = (UniqueConstraint("participant_id", "idempotency_key", "question", name="uq_responses_key"),
                      UniqueConstraint("trial_id", "question", name="uq_responses_trial_question"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    participant_id: Mapped[int] = mapped_column(ForeignKey("participants.id", ondelete="CASCADE"), index=True)
    trial_id: Mapped[int] = mapped_column(ForeignKey("trials.id", ondelete="CASCADE"), index=True)
    task: Mapped[str] = mapped_column(String(32))
    question: Mapped[str] = mapped_column(String(64), default="")
    choice: Mapped[Optional[str]] = mapped_column(String(64), nullable=True)
    rating: Mapped[Optional[float]] = mapped_column(Float, nullable=True)
    text: Mapped[Optional[str]] = mapped_column(Text, nullable=True)
    x: Mapped[Optional[float]] = mapped_column(Float, nullable=True)
    y: Mapped[Optional[float]] = mapped_column(Float, nullable=True)
    valid: Mapped[bool] = mapped_column(Boolean, default=True)
    correct: Mapped[Optional[bool]] = mapped_column(Boolean, nullable=True)
    rt_ms: Mapped[Optional[float]] = mapped_column(Float, nullable=True)
    shown_methods: Mapped[Optional[list[str]]] = mapped_column(JSON, nullable=True)
    payload: Mapped[Optional[dict[str, Any]]] = mapped_column(JSON, nullable=True)
    idempotency_key: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)

    trial: Mapped[Trial] = relationship()


class DuplicateResponse(Base):
    """A response moved aside by migration 0006: a second answer to a trial's question that
    raced in before the database enforced one; `row` is the whole response as JSON."""

    __tablename__ = "duplicate_responses"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    response_id: Mapped[int] = mapped_column(Integer)
    trial_id: Mapped[int] = mapped_column(Integer)
    question: Mapped[str] = mapped_column(String(64))
    row: Mapped[str] = mapped_column(Text)
    moved_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, server_default=func.current_timestamp())


class SaveRecord(Base):
    """One applied save, keyed by the participant and their client's idempotency key (a key
    belongs to one participant: another participant's identical key is a different save);
    `content_sha256` is the digest of what the save carried (`content_digest`), so a key sent
    again with other content is refused rather than silently dropped. See `record_save`."""

    __tablename__ = "save_records"

    participant_id: Mapped[int] = mapped_column(ForeignKey("participants.id", ondelete="CASCADE"), primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    content_sha256: Mapped[Optional[str]] = mapped_column(String(64), nullable=True)
    received_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class AdminSession(Base):
    """A logged-in admin's session on the server: the browser's signed cookie holds a random
    token whose SHA-256 is `id`; logging out deletes the row, so a copy of the cookie made
    before the logout opens nothing after it. Sessions also end after ADMIN_SESSION_IDLE of
    inactivity and ADMIN_SESSION_MAX after login (`studyweb.admin.sessions`)."""

    __tablename__ = "admin_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    admin_id: Mapped[int] = mapped_column(ForeignKey("admins.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    last_seen_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    address: Mapped[Optional[str]] = mapped_column(String(64), nullable=True)
    user_agent: Mapped[Optional[str]] = mapped_column(String(300), nullable=True)

    admin: Mapped["Admin"] = relationship()


class FixationMap(Base):
    """A fixation density for one stimulus: float32 (height, width) bytes that sum to 1, and
    the QC decision it was built with, so exports and pages read it instead of re-running QC.

    params holds sigma_px, the QC settings and a hash of the points; participant_ids the
    participants whose clicks went in; points those clicks (`points_array`); qc_flags the
    build's QC flags about the experiment and about the participants with a saved trial of
    this stimulus (`studyweb.qc.Flag.as_dict()`). points and qc_flags are NULL for maps built
    before revision 0003. Only the latest build per stimulus has is_current=True."""

    __tablename__ = "fixation_maps"
    POINTS_DTYPE = "<f8"  # points: little-endian float64, the same bytes on every machine

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    stimulus_id: Mapped[int] = mapped_column(ForeignKey("stimuli.id", ondelete="CASCADE"), index=True)
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    n_participants: Mapped[int] = mapped_column(Integer, default=0)
    n_points: Mapped[int] = mapped_column(Integer, default=0)
    participant_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    height: Mapped[int] = mapped_column(Integer)
    width: Mapped[int] = mapped_column(Integer)
    density: Mapped[bytes] = mapped_column(LargeBinary)
    built_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    is_current: Mapped[bool] = mapped_column(Boolean, default=True)
    points: Mapped[Optional[bytes]] = mapped_column(LargeBinary, nullable=True)
    qc_flags: Mapped[Optional[list[dict[str, Any]]]] = mapped_column(JSON, nullable=True)

    stimulus: Mapped[Stimulus] = relationship()

    def density_array(self) -> np.ndarray:
        """The density as a float32 (height, width) array that sums to 1 (a copy)."""
        return np.frombuffer(self.density, dtype=np.float32).reshape(self.height, self.width).copy()

    def points_array(self) -> np.ndarray | None:
        """The clicks that went in, in click order, as float64 (n_points, 4) rows of
        (participant id, x, y, t_ms): image pixels, ms since the trial started. None for a map
        built before they were stored."""
        if self.points is None:
            return None
        return np.frombuffer(self.points, dtype=self.POINTS_DTYPE).reshape(-1, 4).astype(np.float64)


class Admin(Base):
    """An administrator; the password is stored as a werkzeug hash, never in clear."""

    __tablename__ = "admins"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)

    def set_password(self, password: str) -> None:
        from werkzeug.security import generate_password_hash

        self.password_hash = generate_password_hash(password)

    def check_password(self, password: str) -> bool:
        from werkzeug.security import check_password_hash

        return check_password_hash(self.password_hash, password)


def get_db():
    """The Flask request's SQLAlchemy session (opened on first use, closed when the request ends)."""
    from flask import current_app, g

    if "db" not in g:
        g.db = current_app.extensions["studyweb.sessions"]()
    return g.db


def close_db(exc: BaseException | None) -> None:
    """Teardown: roll back (after an error) and close the request's session, if one was opened."""
    from flask import g

    session = g.pop("db", None)
    if session is not None:
        if exc is not None:
            session.rollback()
        session.close()


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


def init_db(url: str) -> None:
    """Create or upgrade the schema at `url` by running the Alembic migrations to head."""
    from studyweb.migrate import upgrade

    upgrade(url)


def migrate(url: str) -> None:
    """`init_db(url)`, with a database that cannot be opened turned into a ValueError naming
    it (password hidden) and the driver's first line."""
    from sqlalchemy.exc import ArgumentError, OperationalError

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


def safe_url(url: str) -> str:
    """`url` with its password hidden, for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # an unparsable URL is shown as given; it has no password to hide
        return url


class KeyReused(ValueError):
    """An idempotency key this participant already used for a save with other content (the
    content digest covers the route and the trial too: see `record_save`)."""

    def __init__(self, idempotency_key: str, kind: str):
        super().__init__(f"idempotency_key {idempotency_key!r} was already used for another {kind} save with"
                         " different content or to another trial; send each save with a new key")
        self.idempotency_key = idempotency_key


def record_save(session: Session, idempotency_key: str, participant_id: int, kind: str,
                content_sha256: str | None = None) -> bool:
    """Claim a participant's idempotency key inside the caller's transaction: True the first
    time (apply the save, then commit), False when this participant already applied the key
    with the same content (skip the save). KeyReused when the earlier save under this key
    carried other content (`content_sha256` differs) or was of another kind.

    `content_sha256` is the caller's `content_digest` of everything that makes the save what it
    is: the body and where it was sent (the API's digest covers the route and the trial), so
    the same body under one key sent to two trials is refused the second time, never taken
    for a resend of the first.

    Race-safe: the (participant, key) primary key decides, through INSERT ... ON CONFLICT DO
    NOTHING, so two requests with the same key at once apply it exactly once."""
    dialect = session.get_bind().dialect.name
    if dialect in ("sqlite", "postgresql"):
        return claim_key(session.connection(), idempotency_key, participant_id, kind, content_sha256)
    values = _claim_values(idempotency_key, participant_id, kind, content_sha256)
    try:  # other databases: a savepoint and the PK's IntegrityError
        with session.begin_nested():
            session.add(SaveRecord(**values))
        return True
    except IntegrityError:
        _check_same_content(session.connection(), values)
        return False


def claim_key(connection, idempotency_key: str, participant_id: int, kind: str,
              content_sha256: str | None = None) -> bool:
    """`record_save` on a Core connection (SQLite, PostgreSQL), inside the caller's transaction."""
    from studyweb.driver_sql import begin

    values = _claim_values(idempotency_key, participant_id, kind, content_sha256)
    begin(connection)
    cursor = _claim_statement(connection.dialect.name).execute(connection, values)
    claimed = cursor.rowcount == 1
    cursor.close()
    if claimed:
        return True
    _check_same_content(connection, values)
    return False


def content_digest(content: Any) -> str:
    """SHA-256 (hex) of a JSON-able save content, independent of key order; what
    `record_save` compares when a key comes back."""
    import hashlib
    import json

    text = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def _check_same_content(connection, values: dict[str, Any]) -> None:
    """KeyReused unless the stored save under this participant's key has the same kind and
    content (a record without a digest, from before digests were kept, counts as the same)."""
    table = SaveRecord.__table__
    stored = connection.execute(
        select(table.c.kind, table.c.content_sha256)
        .where(table.c.participant_id == values["participant_id"],
               table.c.idempotency_key == values["idempotency_key"])).first()
    if stored is None:  # claimed by a transaction that has not committed yet: the PK waits on PostgreSQL
        return
    if stored.kind != values["kind"] or (
            stored.content_sha256 is not None and values["content_sha256"] is not None
            and stored.content_sha256 != values["content_sha256"]):
        raise KeyReused(values["idempotency_key"], values["kind"])


def _claim_values(idempotency_key: str, participant_id: int, kind: str, content_sha256: str | None) -> dict[str, Any]:
    if not idempotency_key or len(idempotency_key) > 64:
        raise ValueError(f"idempotency_key must be 1..64 characters, got {len(idempotency_key or '')}")
    return dict(idempotency_key=idempotency_key, participant_id=participant_id, kind=kind,
                content_sha256=content_sha256, received_at=utcnow())


@functools.cache
def _claim_statement(dialect: str):
    """INSERT … ON CONFLICT DO NOTHING into save_records, built once per dialect and run on the
    driver's cursor (`studyweb.driver_sql`: every save claims a key), whose rowcount says
    whether the row went in."""
    from sqlalchemy import bindparam

    from studyweb.driver_sql import DriverStatement

    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:
        from sqlalchemy.dialects.postgresql import insert
    table = SaveRecord.__table__
    return DriverStatement(insert(table).values({column.name: bindparam(column.name, type_=column.type)
                                                 for column in table.columns}).on_conflict_do_nothing())


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
