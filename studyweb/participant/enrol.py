"""Creating a participant from the study link, and assigning their trials (via
`studyweb.assignment.assign`) when they consent."""
from __future__ import annotations

import secrets
from typing import Mapping

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from studyweb.assignment import AlreadyParticipated, AssignmentError, StudyFull, assign
from studyweb.db.schema import FINISHED_STATUSES, Experiment, Participant
from studyweb.experiments import related_participation

MAX_ID_LENGTH = 128
# (recruit_source, the recruit id parameter, study parameter, session parameter)
RECRUITERS = (
    ("prolific", "PROLIFIC_PID", "STUDY_ID", "SESSION_ID"),
    ("mturk", "workerId", "hitId", "assignmentId"),
)


class RefusedEntry(Exception):
    """A polite refusal: `heading` for the page title, the message for its text."""

    def __init__(self, heading: str, message: str):
        super().__init__(message)
        self.heading = heading


def recruit_ids(args: Mapping[str, str]) -> tuple[str, str | None, str | None, str | None]:
    """(recruit_source, recruit_id, study_id, session_id) from the link's query parameters.
    ValueError when an id is too long."""
    for source, id_key, study_key, session_key in RECRUITERS:
        recruit_id = (args.get(id_key) or "").strip()
        if recruit_id:
            values = [recruit_id, args.get(study_key) or None, args.get(session_key) or None]
            if any(v is not None and (len(v) > MAX_ID_LENGTH or "\x00" in v) for v in values):
                raise ValueError(f"recruitment ids must be at most {MAX_ID_LENGTH} characters, without NUL")
            return (source, *values)
    return "anonymous", None, None, None


SIMULATED_FLAG = "gazelab_simulated"
RELATED_STUDY_MESSAGE = ("Our records show that you already took part in a study related to this one, and each"
                         " person may take part in only one of them. Thank you for your interest! Please return"
                         " this study so that someone else can take your place.")


def enter(db: Session, experiment: Experiment, args: Mapping[str, str], user_agent: str | None) -> Participant:
    """The participant for this link: a recruit id already known here resumes its unfinished
    participation; a finished one is refused (RefusedEntry) unless the experiment allows repeats,
    and so is one with a participant row in a related experiment (`exclude_workers_of`), without
    a row made here. Otherwise a new participant (status 'consent'), committed."""
    source, recruit_id, study_id, session_id = recruit_ids(args)
    if recruit_id is not None:
        earlier = _by_recruit_id(db, experiment, source, recruit_id)
        if earlier is not None:
            if earlier.status not in FINISHED_STATUSES:
                return earlier
            if not experiment.settings.get("allow_repeat"):
                raise RefusedEntry("You have already taken part",
                                   "Our records show that you already took part in this study. "
                                   "Thank you! You cannot take part a second time.")
        if related_participation(db, experiment, source, recruit_id):  # exclude_workers_of: refused, no row made
            raise RefusedEntry("You have already taken part in a related study", RELATED_STUDY_MESSAGE)
    # `gazelab study simulate` marks its clients, so their data are labelled simulated everywhere.
    origin = "simulated" if args.get(SIMULATED_FLAG) == "1" else "real"
    participant = Participant(
        experiment_id=experiment.id, recruit_source=source, recruit_id=recruit_id, study_id=study_id,
        session_id=session_id, source=origin, status="consent", user_agent=(user_agent or "")[:1000],
    )
    db.add(participant)
    try:
        db.commit()
    except IntegrityError:  # the same recruit id arrived twice at once: use the first
        db.rollback()
        earlier = _by_recruit_id(db, experiment, source, recruit_id)
        if earlier is None:
            raise
        return earlier
    return participant


def assign_trials(db: Session, participant: Participant) -> None:
    """Assign the participant's trials and fix their completion code (so it can be shown even if
    the last save fails). RefusedEntry when they already took part or the study is full."""
    experiment = participant.experiment
    try:
        assign(db, experiment, participant)
    except AlreadyParticipated:
        raise RefusedEntry("You have already taken part",
                           "Our records show that you already took part in this study. Thank you!") from None
    except StudyFull:
        raise RefusedEntry("This study is full",
                           "Every image already has enough participants. Thank you for your interest!") from None
    except AssignmentError as exc:
        raise RefusedEntry("We could not start the study", str(exc)) from None
    if not participant.completion_code:
        participant.completion_code = experiment.settings.get("completion_code") or secrets.token_hex(4).upper()


def _by_recruit_id(db: Session, experiment: Experiment, source: str, recruit_id: str) -> Participant | None:
    return db.scalars(select(Participant).where(
        Participant.experiment_id == experiment.id, Participant.recruit_source == source,
        Participant.recruit_id == recruit_id)).first()
