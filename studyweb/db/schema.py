"""The study server's SQL schema: SQLAlchemy 2.0 typed models (`Base.metadata` is what the
Alembic migrations in `studyweb/migrations/` build; `studyweb.db.revisions` runs them).

Only portable column types are used, so SQLite and PostgreSQL hold the same schema. Times are
naive UTC datetimes (`utcnow()`), the same on SQLite and PostgreSQL. Coordinates are image pixels
at the stimulus' natural size, x right and y down.
"""
from __future__ import annotations

import datetime as dt
import secrets
from typing import Any, Optional

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
    false,
    func,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

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
    "sentinel", "seed", "image_ms", "tutorial"} (`studyweb.tasks.codecharts`). A sentinel trial
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
