"""Participant pages: the study link `/s/<name>`, consent, instructions, debrief, completion.

Where a participant is lives in Participant.status on the server, so a reload (or coming back
with the same link) resumes at the right page: consent (after the device check, where the
experiment has one) → instructions (one page or several; then the comprehension check, where
the experiment has one) → practice/trials (the task page, see `studyweb.tasks`) → debrief →
complete. Failing the device check, the comprehension check, the CodeCharts tutorial or too
many catch trials leads to the screened-out page instead (`studyweb.screening`). The words on
each page come from `studyweb.texts`.
"""
from __future__ import annotations

import logging

from flask import Blueprint, abort, jsonify, redirect, render_template, request, url_for
from sqlalchemy import func, select

from studyweb import screening, texts
from studyweb.db.request import get_db
from studyweb.db.schema import FINISHED_STATUSES, Event, Experiment, Participant, Trial, utcnow
from studyweb.participant.auth import current_participant, set_token_cookie
from studyweb.participant.enrol import RefusedEntry, assign_trials, enter
from studyweb.tasks import task_named, trial_task

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
    "screened_out": "participant.screened_out",
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
    """Consent form, behind the device check where the experiment has one (the page's script
    shows the form once the browser passes; the form carries its report, checked again here);
    agreeing assigns the trials, declining ends the participation."""
    experiment, participant = _participant_or_entry(name)
    if participant is None or participant.status != "consent":
        return elsewhere(experiment, participant)
    db = get_db()
    rule = screening.device_rule(db, experiment, task_named(experiment.task))
    if request.method == "GET":
        return render_template("participant/consent.html", experiment=experiment, participant=participant,
                               device=rule, consent_text=texts.consent_html(experiment))
    if request.form.get("consent") != "yes":
        participant.status = "returned"
        db.commit()
        return _message(experiment, "You chose not to take part",
                        "Thank you. Nothing more will be recorded; you can close this page.")
    report = screening.device_report(request.form)
    if report is not None:
        problems = screening.device_problems(rule, report, participant.user_agent) if rule else []
        screening.record_device(db, participant, report, problems)
        if problems:
            return _screened_out_now(experiment, participant, "device", "; ".join(problems))
    try:
        assign_trials(db, participant)
    except RefusedEntry as refused:
        db.rollback()
        return _message(experiment, refused.heading, str(refused), 409)
    participant.status = "instructions"
    participant.last_seen_at = utcnow()
    db.commit()
    return redirect(url_for("participant.instructions", name=name, t=participant.token))


@bp.post("/<name>/device")
def device(name: str):
    """The device check's way out: a participant whose browser cannot meet it ends the study
    here, screened out (the form carries the check's report, recorded)."""
    experiment, participant = _participant_or_entry(name)
    db = get_db()
    rule = screening.device_rule(db, experiment, task_named(experiment.task))
    if participant is None or participant.status != "consent" or rule is None:
        return elsewhere(experiment, participant)
    report = screening.device_report(request.form)
    problems = screening.device_problems(rule, report, participant.user_agent) if report else []
    if report is not None:
        screening.record_device(db, participant, report, problems)
    return _screened_out_now(experiment, participant, "device",
                             "; ".join(problems) or "ended the study at the device check")


@bp.route("/<name>/instructions", methods=["GET", "POST"])
def instructions(name: str):
    """The task explained, page `page` (1-based) of one or several; the form of the last page
    also sends the screen and window size (CSS px) and devicePixelRatio (an event 'screen'),
    and leads to the comprehension check, where the experiment has one, or to the task."""
    experiment, participant = _participant_or_entry(name)
    if participant is None or participant.status != "instructions":
        return elsewhere(experiment, participant)
    if request.method == "GET":
        pages = texts.instruction_pages(experiment, participant)
        page = request.args.get("page", "1")
        page = min(max(int(page), 1), len(pages)) if page.isascii() and page.isdigit() and len(page) < 4 else 1
        return render_template("participant/instructions.html", experiment=experiment, participant=participant,
                               pages=pages, page=page, again=request.args.get("again") == "1")
    for field in ("screen_w", "screen_h", "window_w", "window_h"):
        value = request.form.get(field, "")
        # isascii: "\u00b2" (a superscript 2) passes isdigit() but not int()
        if value.isascii() and value.isdigit() and 0 < int(value) < 100_000:
            setattr(participant, field, int(value))
    report = screening.device_report(request.form)
    if report is not None:  # with devicePixelRatio, which has no column
        get_db().add(Event(participant_id=participant.id, kind="screen", payload=report))
    participant.last_seen_at = utcnow()
    if experiment.settings.get("comprehension"):
        get_db().commit()
        return redirect(url_for("participant.comprehension", name=name, t=participant.token))
    return _start_trials(participant)


@bp.route("/<name>/comprehension", methods=["GET", "POST"])
def comprehension(name: str):
    """Questions on the instructions, each with a right answer: all right → the task; a wrong
    one → the instructions again; comprehension.max_attempts wrong rounds → screened out.
    Every round is an event (comprehension_passed | comprehension_failed, with the answers)."""
    experiment, participant = _participant_or_entry(name)
    check = experiment.settings.get("comprehension")
    if participant is None or participant.status != "instructions" or not check:
        return elsewhere(experiment, participant)
    db = get_db()
    failed = db.scalar(select(func.count()).select_from(Event).where(Event.participant_id == participant.id,
                                                                      Event.kind == "comprehension_failed"))
    if request.method == "GET":
        return render_template("participant/comprehension.html", experiment=experiment, participant=participant,
                               questions=check["questions"], attempt=failed + 1, attempts=check["max_attempts"])
    answers = [request.form.get(f"q{k}", "")[:64].replace("\x00", "") for k in range(len(check["questions"]))]
    wrong = [k for k, (q, a) in enumerate(zip(check["questions"], answers)) if a != q["answer"]]
    payload = {"attempt": failed + 1, "answers": answers, "wrong": wrong}
    db.add(Event(participant_id=participant.id, kind="comprehension_failed" if wrong else "comprehension_passed",
                 payload=payload))
    if not wrong:
        return _start_trials(participant)
    if failed + 1 >= check["max_attempts"]:
        return _screened_out_now(experiment, participant, "comprehension",
                                 f"{failed + 1} round(s) with wrong answers (max_attempts {check['max_attempts']})")
    db.commit()
    return redirect(url_for("participant.instructions", name=name, t=participant.token, again=1))


@bp.route("/<name>/debrief", methods=["GET", "POST"])
def debrief(name: str):
    """What the study was about, and an optional comment; finishing completes the participant."""
    experiment, participant = _participant_or_entry(name)
    if participant is None or participant.status != "debrief":
        return elsewhere(experiment, participant)
    if request.method == "GET":
        return render_template("participant/debrief.html", experiment=experiment, participant=participant,
                               debrief_text=texts.debrief_html(experiment))
    db = get_db()
    comments = request.form.get("comments", "").replace("\x00", "").strip()[:2000]  # PostgreSQL text holds no NUL
    if comments:
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


@bp.get("/<name>/screened-out")
def screened_out(name: str):
    """The end for a participant who was screened out: its message, and the screen-out code, or
    a redirect to the experiment's screenout_url (Prolific's screened-out link)."""
    experiment, participant = _participant_or_entry(name)
    if participant is None or participant.status != "screened_out":
        return elsewhere(experiment, participant)
    screenout_url = experiment.settings.get("screenout_url")
    if screenout_url and request.args.get("show") != "code":
        return redirect(screenout_url)
    message = texts.screened_out_html(experiment, screening.screen_out_reason(get_db(), participant))
    return render_template("participant/screened_out.html", experiment=experiment, participant=participant,
                           message=message, screenout_url=screenout_url)


@bp.get("/<name>/feedback/<int(max=2147483647):trial_id>")
def tutorial_feedback(name: str, trial_id: int):
    """How the participant's answer to one of their CodeCharts tutorial trials went, as JSON
    (`Task.tutorial_feedback`); 404 for another trial or one not answered yet."""
    _, participant = _participant_or_entry(name)
    trial = get_db().get(Trial, trial_id)
    if participant is None or trial is None or trial.participant_id != participant.id or not trial.is_practice \
            or not trial_task(trial).has_tutorial:
        abort(404, description="no such tutorial trial for this participant")
    feedback = trial_task(trial).tutorial_feedback(get_db(), trial)
    if feedback is None:
        abort(404, description="this tutorial trial is not answered yet")
    return jsonify(feedback)


def _start_trials(participant: Participant):
    """Send the participant on to the task page: the practice first, where there is one."""
    has_practice = any(t.is_practice and t.status != "done" for t in participant.trials)
    participant.status = "practice" if has_practice else "trials"
    participant.last_seen_at = utcnow()
    get_db().commit()
    return redirect(url_for("tasks.bubbleview", name=participant.experiment.name, t=participant.token))


def _screened_out_now(experiment: Experiment, participant: Participant, reason: str, detail: str):
    """Screen the participant out (`screening.screen_out`), commit, and go to the screened-out page."""
    screening.screen_out(get_db(), participant, reason, detail)
    get_db().commit()
    return redirect(url_for("participant.screened_out", name=experiment.name, t=participant.token))


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


def _message(experiment, heading: str, message: str, status: int = 200):
    return render_template("participant/message.html", experiment=experiment, heading=heading,
                           message=message), status
