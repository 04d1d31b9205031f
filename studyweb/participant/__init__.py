"""Participant pages: the study link `/s/<name>`, consent, instructions, debrief, completion.

Where a participant is lives in Participant.status on the server, so a reload (or coming back
with the same link) resumes at the right page: consent → instructions → practice/trials (the
task page, see `studyweb.tasks`) → debrief → complete.
"""
from __future__ import annotations

import logging

from flask import Blueprint, abort, redirect, render_template, request, url_for
from sqlalchemy import select

from studyweb.db import FINISHED_STATUSES, Experiment, Participant, get_db, utcnow
from studyweb.participant.auth import current_participant, set_token_cookie
from studyweb.participant.enrol import RefusedEntry, assign_trials, enter

log = logging.getLogger(__name__)
bp = Blueprint("participant", __name__, url_prefix="/s")

# The page each status belongs to (practice and trials share the task page).
STATUS_ENDPOINTS = {
    "consent": "participant.consent",
    "instructions": "participant.instructions",
    "practice": "tasks.bubbleview",
    "trials": "tasks.bubbleview",
    "debrief": "participant.debrief",
    "complete": "participant.complete",
}


@bp.get("/<name>")
def entry(name: str):
    """The study link. Prolific (PROLIFIC_PID, STUDY_ID, SESSION_ID), MTurk (workerId,
    assignmentId, hitId) or anonymous; a known token or recruit id resumes."""
    experiment = _experiment_or_404(name)
    participant = current_participant(experiment.id)
    if participant is None:
        if experiment.status != "open":
            return _message(experiment, "This study is closed", "Thank you for your interest; "
                            "this study is not taking new participants.", 410)
        try:
            participant = enter(get_db(), experiment, request.args, request.headers.get("User-Agent"))
        except RefusedEntry as refused:
            return _message(experiment, refused.heading, str(refused), 409)
        except ValueError as bad:
            return _message(experiment, "This link is not valid", str(bad), 400)
    return set_token_cookie(redirect(_page_of(experiment, participant)), participant)


@bp.get("/<name>/resume")
def resume(name: str):
    """Send the participant to the page their status says."""
    experiment, participant = _participant_or_entry(name)
    if participant is None:
        return redirect(url_for("participant.entry", name=name))
    return redirect(_page_of(experiment, participant))


@bp.route("/<name>/consent", methods=["GET", "POST"])
def consent(name: str):
    """Consent form; agreeing assigns the trials, declining ends the participation."""
    experiment, participant = _participant_or_entry(name)
    if participant is None or participant.status != "consent":
        return elsewhere(experiment, participant)
    if request.method == "GET":
        return render_template("participant/consent.html", experiment=experiment, participant=participant)
    db = get_db()
    if request.form.get("consent") != "yes":
        participant.status = "returned"
        db.commit()
        return _message(experiment, "You chose not to take part",
                        "Thank you. Nothing more will be recorded; you can close this page.")
    try:
        assign_trials(db, participant)
    except RefusedEntry as refused:
        db.rollback()
        return _message(experiment, refused.heading, str(refused), 409)
    participant.status = "instructions"
    participant.last_seen_at = utcnow()
    db.commit()
    return redirect(url_for("participant.instructions", name=name, t=participant.token))


@bp.route("/<name>/instructions", methods=["GET", "POST"])
def instructions(name: str):
    """The task explained; the form also sends the screen and window size (CSS px)."""
    experiment, participant = _participant_or_entry(name)
    if participant is None or participant.status != "instructions":
        return elsewhere(experiment, participant)
    n_trials = sum(1 for t in participant.trials if not t.is_practice)
    if request.method == "GET":
        return render_template("participant/instructions.html", experiment=experiment, participant=participant,
                               settings=_display_settings(experiment), n_trials=n_trials)
    for field in ("screen_w", "screen_h", "window_w", "window_h"):
        value = request.form.get(field, "")
        # isascii: "\u00b2" (a superscript 2) passes isdigit() but not int()
        if value.isascii() and value.isdigit() and 0 < int(value) < 100_000:
            setattr(participant, field, int(value))
    has_practice = any(t.is_practice and t.status != "done" for t in participant.trials)
    participant.status = "practice" if has_practice else "trials"
    participant.last_seen_at = utcnow()
    get_db().commit()
    return redirect(url_for("tasks.bubbleview", name=name, t=participant.token))


@bp.route("/<name>/debrief", methods=["GET", "POST"])
def debrief(name: str):
    """What the study was about, and an optional comment; finishing completes the participant."""
    experiment, participant = _participant_or_entry(name)
    if participant is None or participant.status != "debrief":
        return elsewhere(experiment, participant)
    if request.method == "GET":
        return render_template("participant/debrief.html", experiment=experiment, participant=participant)
    db = get_db()
    comments = request.form.get("comments", "").replace("\x00", "").strip()[:2000]  # PostgreSQL text holds no NUL
    if comments:
        from studyweb.db import Event

        db.add(Event(participant_id=participant.id, kind="debrief_comment", payload={"text": comments}))
    participant.status = "complete"
    participant.completed_at = participant.last_seen_at = utcnow()
    db.commit()
    return redirect(url_for("participant.complete", name=name, t=participant.token))


@bp.get("/<name>/complete")
def complete(name: str):
    """The completion code, or a redirect to the experiment's completion URL."""
    experiment, participant = _participant_or_entry(name)
    if participant is None or participant.status != "complete":
        return elsewhere(experiment, participant)
    completion_url = experiment.settings.get("completion_url")
    if completion_url and request.args.get("show") != "code":
        return redirect(completion_url)
    return render_template("participant/complete.html", experiment=experiment, participant=participant,
                           completion_url=completion_url)


def _experiment_or_404(name: str) -> Experiment:
    experiment = get_db().scalars(select(Experiment).where(Experiment.name == name)).first()
    if experiment is None:
        abort(404, description=f"there is no study called {name!r}")
    return experiment


def _participant_or_entry(name: str) -> tuple[Experiment, Participant | None]:
    experiment = _experiment_or_404(name)
    participant = current_participant(experiment.id)
    if participant is not None and participant.status not in FINISHED_STATUSES:
        participant.last_seen_at = utcnow()
    return experiment, participant


def _page_of(experiment: Experiment, participant: Participant) -> str:
    endpoint = STATUS_ENDPOINTS.get(participant.status)
    if endpoint is None:  # returned, timed out
        return url_for("participant.ended", name=experiment.name, t=participant.token)
    return url_for(endpoint, name=experiment.name, t=participant.token)


@bp.get("/<name>/ended")
def ended(name: str):
    """The page for a participant who declined or timed out."""
    experiment, participant = _participant_or_entry(name)
    if participant is None or participant.status in STATUS_ENDPOINTS:
        return elsewhere(experiment, participant)
    return _message(experiment, "This session has ended",
                    "Your session is no longer active. Thank you for your time.")


def elsewhere(experiment: Experiment, participant: Participant | None):
    """Redirect to the page the participant belongs on (the entry link without one)."""
    if participant is None:
        return redirect(url_for("participant.entry", name=experiment.name))
    return redirect(_page_of(experiment, participant))


def _display_settings(experiment: Experiment) -> dict:
    settings = dict(experiment.settings)
    settings["time_limit_ms"] = float(settings.get("time_limit_s", 10.0)) * 1000
    return settings


def _message(experiment, heading: str, message: str, status: int = 200):
    return render_template("participant/message.html", experiment=experiment, heading=heading,
                           message=message), status
