"""The JSON API the browser (and simulated participants) use, under /api/v1.

Every trial is run by its task (`studyweb.tasks`, `trial_task`): what the session JSON says of
it, whether and how it is answered (POST .../answer takes the body its `answer_shape` names),
and its chart. Auth: the participant token (X-Participant-Token header, `t` query, or the cookie); a token
reaches only its own participant's trials (404 otherwise). Every refusal is a 4xx JSON
{"error": short name, "message": what was wrong}; a save refused for its content stays refused
when sent again, so the browser's queue sets it aside and goes on (`static/saver.js`). Saves are
idempotent by the participant's idempotency_key (`studyweb.db.saving.record_save`): the same key with
the same content to the same route and trial twice stores once and answers 200 both times; the
key with other content, or sent to another trial or route, answers 409 (`_content_digest`).
Text the database cannot store (lone surrogates, NUL) is stored with U+FFFD in its place, and a
body nested deeper than 32 levels or holding a number beyond a float (1e999) is refused with 422
(`validate.parse_json_object`).

Time limits (BubbleView, the experiment's time_limit_s): a click is stored late=True when its
t_ms is past the limit plus LATE_GRACE_MS, or when its save reaches the server more than the
limit plus SERVER_CLOCK_GRACE_MS after the trial's started_at (the server's clock: a client
cannot hide a late click behind a small t_ms while it saves as it goes). Late clicks are kept,
the save still answers 200 (its late_clicks says how many), and QC leaves them out of maps.
The page applies the same limit (`static/bubbleview.js`: no click at or past it). started_at is
when the trial's first save arrived, never before the trial began, so the server's clock can
only under-count the time since the start: saves that arrive as they are made are never
flagged by it. It over-counts for a save delivered late (the server down, the network lost,
a page reloaded mid-trial and resumed after a pause), whose clicks are flagged too and marked
by an event 'late_by_server_clock' that says so; and a client that holds back its first save
moves started_at, so that rule binds only clients that save as they go.
"""
from __future__ import annotations

import datetime as dt
import functools
import logging

from flask import Blueprint, current_app, jsonify, request, url_for
from sqlalchemy import Integer, bindparam, func, insert, select, update
from sqlalchemy.exc import DataError, IntegrityError, StatementError
from werkzeug.exceptions import HTTPException
from werkzeug.http import HTTP_STATUS_CODES

from studyweb.api.validate import ApiError, check_answer_body, check_events_body, check_save, parse_json_object
from studyweb.db.engine import write_lock
from studyweb.db.request import get_db
from studyweb.db.saving import KeyReused, claim_key, content_digest, record_save
from studyweb.db.schema import FINISHED_STATUSES, Click, Event, Experiment, Participant, Stimulus, Trial, utcnow
from studyweb.driver_sql import DriverStatement, begin
from studyweb.participant.auth import current_participant, request_token
from studyweb.tasks import AnswerError, Task, task_named, trial_task

LAST_SEEN_PRECISION = dt.timedelta(minutes=1)
LATE_GRACE_MS = 1000.0  # past the time limit: the page's timer ticks every 100 ms (static/bubbleview.js)
SERVER_CLOCK_GRACE_MS = 5000.0  # past the limit by the server's clock: latency and a few save retries

log = logging.getLogger(__name__)
bp = Blueprint("api", __name__, url_prefix="/api/v1")
ERROR_CODES = (400, 401, 403, 404, 405, 409, 413, 415, 422, 429)


@bp.get("/session")
def session():
    """Where the participant is: status, completion code and URL, and every trial (the
    unfinished ones with what the task page needs; sizes in image px, times in ms)."""
    participant = _participant()
    participant.last_seen_at = utcnow()
    get_db().commit()
    settings = participant.experiment.settings
    trials, number = [], 0
    for trial in participant.trials:
        number += 0 if trial.is_practice else 1
        trials.append(_trial_json(participant, trial, settings, number))
    return jsonify(
        participant_id=participant.id, status=participant.status, experiment=participant.experiment.name,
        completion_code=participant.completion_code, completion_url=settings.get("completion_url"),
        trials=trials, next_trial=next((t["id"] for t in trials if t["status"] != "done"), None),
    )


@bp.post("/trials/<int(max=2147483647):trial_id>/save")  # ids fit a 32-bit INTEGER column
def save_trial(trial_id: int):
    """Store clicks (image px), events and, with done=true, the end of a trial. Body:
    {idempotency_key, clicks: [{x, y, t_ms}], display_w, display_h (CSS px), done, events,
    response_text, elapsed_ms}. Answers {ok, duplicate, stored_clicks, late_clicks (of those, how
    many were stored late=True: past the time limit, see the module's docstring), status}."""
    # The hot path of a study: Core statements run on the driver's cursor (`studyweb.driver_sql`),
    # one read before the first write, so SQLite's single write lock is held for three short
    # statements and the commit.
    token = request_token()
    if token is None:
        raise ApiError(401, "missing or unknown participant token (X-Participant-Token header)")
    body = parse_json_object(request.get_data(cache=True))
    # A Core connection, not the request's ORM session: this route needs no objects.
    engine = current_app.extensions["studyweb.engine"]
    with engine.connect() as conn:
        return jsonify(_save(conn, write_lock(engine), token, trial_id, body))


def _save(conn, lock, token: str, trial_id: int, body: dict) -> dict:
    """Apply and commit one trial save on `conn`; the JSON answer, or ApiError (nothing saved).

    Everything the writes need (rows, changed columns, statements) is prepared before the
    first write. The writes and the commit run back to back under `lock` (`db.engine.write_lock`):
    on SQLite the savers take turns there instead of polling for the database's single write
    lock."""
    row = _SAVE_READ.first(conn, {"token": token, "trial_id": trial_id})
    if row is None:
        raise ApiError(401, "missing or unknown participant token (X-Participant-Token header)")
    if row.trial_id is None:
        raise ApiError(404, f"trial {trial_id} is not one of this participant's trials")
    save = check_save(body, row.width or 480, row.height or 360)
    if row.status in FINISHED_STATUSES:
        raise ApiError(409, f"this participation has ended (status {row.status!r})")
    key, clicks, done = save["idempotency_key"], save["clicks"], save["done"]
    digest = _content_digest("trial", trial_id, body)
    now = utcnow()
    display_w, display_h = save["display_w"], save["display_h"]
    late = _late_rule(row, now)
    click_rows = [dict(trial_id=trial_id, x=x, y=y, t_ms=t, display_w=display_w, display_h=display_h,
                       idempotency_key=key, late=late(t)) for x, y, t in clicks]
    n_late = sum(c["late"] for c in click_rows)
    event_rows = [dict(participant_id=row.id, trial_id=trial_id, created_at=now, **ev) for ev in save["events"]]
    if clicks and late.by_clock:
        event_rows.append(dict(participant_id=row.id, trial_id=trial_id, created_at=now, kind="late_by_server_clock",
                               t_ms=None, payload={"clicks": len(clicks), "server_elapsed_ms": late.server_elapsed_ms,
                                                   "time_limit_ms": late.limit_ms}))
    elapsed = max([save["elapsed_ms"] or 0.0] + [t for _, _, t in clicks])
    changes = {"duration_ms": max(row.duration_ms or 0.0, elapsed)}
    if row.trial_status == "pending":
        changes.update(status="started", started_at=now)
    if display_w is not None:
        changes.update(display_w=display_w, display_h=display_h)
    if save["response_text"] is not None:
        changes["response_text"] = save["response_text"]
    if done:
        changes.update(status="done", ended_at=now)
    seen = {} if row.last_seen_at is not None and now - row.last_seen_at <= LAST_SEEN_PRECISION else {
        "last_seen_at": now}  # the active-timeout rule counts in tens of minutes
    trial_update = _driver_update(Trial.__table__, tuple(changes))
    with lock:
        begin(conn)
        try:
            # The idempotency claim first (a duplicate key writes nothing else).
            if not claim_key(conn, key, row.id, "trial", digest):
                conn.commit()
                return dict(ok=True, duplicate=True, stored_clicks=0, late_clicks=0, status=row.status)
            if row.trial_status == "done":
                raise ApiError(409, f"trial {trial_id} is already finished")
            _INSERT_CLICKS.executemany(conn, click_rows)
            if event_rows:
                conn.execute(_INSERT_EVENTS, event_rows)
            trial_update.execute(conn, {"row_id": trial_id, **changes}).close()
            status = _advanced_status(conn, row.id, row.status) if done else row.status
            participant_changes = {"status": status, **seen} if status != row.status else seen
            if participant_changes:
                conn.execute(_update_by_id(Participant.__table__, tuple(participant_changes)),
                             {"row_id": row.id, **participant_changes})
            conn.commit()
        except BaseException:
            conn.rollback()  # the claim too: a refused save can be sent again
            raise
    return dict(ok=True, duplicate=False, stored_clicks=len(clicks), late_clicks=n_late, status=status)


class _LateRule:
    """Whether a click of one save is late (the module's rule): t_ms past the time limit plus
    LATE_GRACE_MS, or every click of a save arriving more than the limit plus
    SERVER_CLOCK_GRACE_MS after the trial's started_at. No limit: nothing is late."""

    def __init__(self, limit_ms: float | None, server_elapsed_ms: float | None):
        self.limit_ms, self.server_elapsed_ms = limit_ms, server_elapsed_ms
        self.by_clock = (limit_ms is not None and server_elapsed_ms is not None
                         and server_elapsed_ms > limit_ms + SERVER_CLOCK_GRACE_MS)

    def __call__(self, t_ms: float) -> bool:
        return self.limit_ms is not None and (self.by_clock or t_ms > self.limit_ms + LATE_GRACE_MS)


def _late_rule(row, now: dt.datetime) -> _LateRule:
    """The late rule of the save read in `row` (`_SAVE_READ`) arriving at `now` (naive UTC): the
    trial's task's time limit (ms; `Task.late_limit_ms`: BubbleView's time_limit_s)."""
    limit_ms = task_named(row.trial_task or row.experiment_task).late_limit_ms(row.time_limit_s)
    elapsed = None if row.started_at is None else (now - row.started_at).total_seconds() * 1000
    return _LateRule(limit_ms, elapsed)


@bp.get("/trials/<int(max=2147483647):trial_id>/chart")
def chart(trial_id: int):
    """The chart of one of the participant's trials that show one (CodeCharts'), as the browser
    draws it (`Task.chart_json`: `studyweb.codecharts.to_json`; display px)."""
    participant = _participant()
    trial, task = _own_trial(participant, trial_id, "trials")
    chart = task.chart_json(trial, participant.experiment.settings)
    if chart is None:
        raise ApiError(404, f"trial {trial_id} is not one of this participant's trials with a chart")
    return jsonify(chart)


@bp.post("/trials/<int(max=2147483647):trial_id>/answer")
def answer(trial_id: int):
    """The answer to a trial of a task that takes answers, in the body its `answer_shape` names
    (`validate.check_answer_body`: CodeCharts' typed code, a questionnaire's answer per
    question); stored once per idempotency key by the task (`Task.record_answer`), the trial
    ends. The answer is {ok, duplicate, status} and the task's fields (CodeCharts: valid,
    correct, tutorial); an answer that does not fit the trial gets 422 and nothing is stored.

    A trial is answered once: any later answer under another key gets 409 {"error": "conflict",
    "message": "trial N is already answered"} and stores nothing, also when several race in
    (`_store_answer`; the responses table's unique (trial, question) backs that up)."""
    participant = _participant()
    raw = parse_json_object(request.get_data(cache=True))
    trial, task = _own_trial(participant, trial_id, "trials")
    if task.answer_shape is None:  # BubbleView's trials are saved (`save_trial`), not answered
        raise ApiError(404, f"trial {trial_id} is not one of this participant's trials that take answers")
    body = check_answer_body(raw, task.answer_shape)
    if participant.status in FINISHED_STATUSES:
        raise ApiError(409, f"this participation has ended (status {participant.status!r})")
    db = get_db()
    with write_lock(current_app.extensions["studyweb.engine"]):
        try:
            result = _store_answer(db, participant, trial, task, body, _content_digest("answer", trial_id, raw))
            db.commit()
        except IntegrityError as exc:
            db.rollback()  # the key's claim too: nothing of this request stays
            if _is_second_response(exc):
                raise ApiError(409, f"trial {trial_id} is already answered") from None
            raise
        except BaseException:
            db.rollback()
            raise
    return jsonify(ok=True, **result)


def _store_answer(db, participant: Participant, trial: Trial, task: Task, body: dict, digest: str) -> dict:
    """Apply one checked answer in the request's transaction, which the caller commits (or rolls
    back on any error); the answer's JSON fields but ok.

    The idempotency claim comes first, so a resent answer is a duplicate even once its trial is
    done. Then the participant's row is locked and the trial read again: on PostgreSQL a racing
    answer of the same participant waits at the lock and then finds the trial done (409); on
    SQLite the claim's INSERT already holds the database's one write lock. Answers of one
    participant are so applied one at a time, which also keeps the CodeCharts tutorial gate (it
    deletes the open main trials) from deadlocking with another answer."""
    key = body["idempotency_key"]
    if not record_save(db, key, participant.id, "answer", digest):
        return {"duplicate": True, "status": participant.status}
    # FOR NO KEY UPDATE: the lock an UPDATE of the row takes, which lets inserts that refer to it go on.
    db.refresh(participant, ["status", "last_seen_at"], with_for_update={"key_share": True})
    if participant.status in FINISHED_STATUSES:
        raise ApiError(409, f"this participation has ended (status {participant.status!r})")
    trial_id = trial.id
    trial = db.get(Trial, trial_id, populate_existing=True)
    if trial is None:  # removed meanwhile: a failed CodeCharts tutorial removes the main trials
        raise ApiError(404, f"trial {trial_id} is no longer one of this participant's trials")
    if trial.status == "done":
        raise ApiError(409, f"trial {trial_id} is already answered")
    try:
        result = task.record_answer(db, participant, trial, body, key)
    except AnswerError as exc:
        raise ApiError(422, str(exc)) from None
    db.flush()
    participant.status = _advanced_status(db.connection(), participant.id, participant.status)
    db.add_all(Event(participant_id=participant.id, trial_id=trial.id, **ev) for ev in body["events"])
    _touch(participant, utcnow())
    return {"duplicate": False, **result, "status": participant.status}


def _is_second_response(exc: IntegrityError) -> bool:
    """Whether `exc` is the responses table's unique (trial, question) refusing a second answer
    to a trial (PostgreSQL names the constraint, SQLite its columns)."""
    message = str(exc.orig)
    return "uq_responses_trial_question" in message or "responses.trial_id, responses.question" in message


def _own_trial(participant: Participant, trial_id: int, what: str) -> tuple[Trial, Task]:
    """The participant's trial `trial_id` and its task; 404 otherwise (never another's)."""
    trial = get_db().get(Trial, trial_id)
    if trial is None or trial.participant_id != participant.id:
        raise ApiError(404, f"trial {trial_id} is not one of this participant's {what}")
    return trial, trial_task(trial)


@bp.post("/events")
def events():
    """Browser events outside a trial save: {idempotency_key, events: [{type, t_ms, data}],
    trial_id (optional, one of the participant's trials)}."""
    participant = _participant()
    raw = parse_json_object(request.get_data(cache=True))
    body = check_events_body(raw)
    db = get_db()
    if body["trial_id"] is not None:
        trial = db.get(Trial, body["trial_id"])
        if trial is None or trial.participant_id != participant.id:
            raise ApiError(404, f"trial {body['trial_id']} is not one of this participant's trials")
    if not record_save(db, body["idempotency_key"], participant.id, "events",
                       _content_digest("events", body["trial_id"], raw)):
        db.rollback()
        return jsonify(ok=True, duplicate=True, stored_events=0)
    db.add_all(Event(participant_id=participant.id, trial_id=body["trial_id"], **ev) for ev in body["events"])
    _touch(participant, utcnow())
    db.commit()
    return jsonify(ok=True, duplicate=False, stored_events=len(body["events"]))


def register_error_handlers(app) -> None:
    """API errors (and HTTP errors under /api/) as JSON; other pages keep Flask's HTML."""
    app.register_error_handler(ApiError, lambda e: (jsonify(error=_reason(e.status), message=e.message), e.status))
    app.register_error_handler(KeyReused, lambda e: (jsonify(error=_reason(409), message=str(e)), 409))
    app.register_error_handler(StatementError, _database_error)
    for code in ERROR_CODES:
        app.register_error_handler(code, _http_error)
    app.register_error_handler(500, _server_error)


def _http_error(exc: HTTPException):
    if not request.path.startswith("/api/"):
        return exc
    message = exc.description or exc.name
    if exc.code == 413:
        limit = request.max_content_length
        message = f"the request body is larger than the limit of {limit} bytes"
    return jsonify(error=_reason(exc.code), message=message), exc.code


def _database_error(exc: StatementError):
    """A value the database refused to store (DataError, or a driver that cannot encode it) is
    the request's fault: 422, so the client does not resend it forever. Anything else (the
    database down, a lock timeout) stays a 500 the client retries."""
    if isinstance(exc, DataError) or isinstance(exc.orig, ValueError):  # UnicodeEncodeError among them
        log.warning("refused a value the database cannot store on %s: %s", request.path, str(exc.orig)[:200])
        message = f"a value in this request cannot be stored: {str(exc.orig)[:200]}"
        if request.path.startswith("/api/"):
            return jsonify(error=_reason(422), message=message), 422
        return message, 422
    return _server_error(exc)


def _server_error(exc):
    log.exception("internal error on %s", request.path)
    if request.path.startswith("/api/"):
        return jsonify(error="internal", message="internal server error; please retry"), 500
    return "Internal server error", 500


def _save_read():
    """The one read of a save: participant by token, the trial if it is theirs, its image size,
    the experiment's task and time limit (s, read from the settings JSON in SQL).
    Built once (statement construction costs more than running it)."""
    trials, stimuli, participants = Trial.__table__, Stimulus.__table__, Participant.__table__
    experiments = Experiment.__table__
    trial_id = bindparam("trial_id", type_=Integer)
    return (
        select(participants.c.id, participants.c.status, participants.c.last_seen_at,
               trials.c.id.label("trial_id"), trials.c.status.label("trial_status"), trials.c.duration_ms,
               trials.c.started_at, trials.c.task.label("trial_task"), stimuli.c.width, stimuli.c.height,
               experiments.c.task.label("experiment_task"),
               experiments.c.settings["time_limit_s"].as_float().label("time_limit_s"))
        .select_from(participants)
        .join(experiments, experiments.c.id == participants.c.experiment_id)
        .outerjoin(trials, (trials.c.id == trial_id) & (trials.c.participant_id == participants.c.id))
        .outerjoin(stimuli, stimuli.c.id == trials.c.stimulus_id)
        .where(participants.c.token == bindparam("token"))
    )


def _open_trials():
    trials = Trial.__table__
    return (
        select(func.count().filter(trials.c.status != "done"),
               func.count().filter((trials.c.status != "done") & trials.c.is_practice))
        .where(trials.c.participant_id == bindparam("participant_id"))
    )


@functools.cache
def _driver_update(table, columns: tuple[str, ...]) -> DriverStatement:
    """`_update_by_id` run on the driver's cursor (`studyweb.driver_sql`): a save's trial update."""
    return DriverStatement(_update_by_id(table, columns))


@functools.cache
def _update_by_id(table, columns: tuple[str, ...]):
    """UPDATE table SET <columns> WHERE id = :row_id, with a bound parameter named after each
    column; built once per table and set of columns (a save changes one of a few sets)."""
    return (update(table).where(table.c.id == bindparam("row_id", type_=Integer))
            .values({name: bindparam(name, type_=table.c[name].type) for name in columns}))


_SAVE_READ = DriverStatement(_save_read())
_OPEN_TRIALS = _open_trials()
_CLICK_COLUMNS = ("trial_id", "x", "y", "t_ms", "display_w", "display_h", "idempotency_key", "late")
_INSERT_CLICKS = DriverStatement(insert(Click.__table__).values(
    {name: bindparam(name, type_=Click.__table__.c[name].type) for name in _CLICK_COLUMNS}))
_INSERT_EVENTS = insert(Event.__table__)


def _content_digest(route: str, trial_id: int | None, body: dict) -> str:
    """The digest a save's idempotency key is held to: the route ('trial' for a trial save,
    'answer', 'events'), the trial, and everything in the body but the key. The same body under
    the same key sent to another trial is so another save, refused (KeyReused, 409), never
    dropped as a duplicate of the first; a new key stores it."""
    body = {k: v for k, v in body.items() if k != "idempotency_key"}
    return content_digest({"route": route, "trial_id": trial_id, "body": body})


def _participant() -> Participant:
    participant = current_participant()
    if participant is None:
        raise ApiError(401, "missing or unknown participant token (X-Participant-Token header)")
    return participant


def _advanced_status(conn, participant_id: int, status: str) -> str:
    """The participant's status after one of their trials ended, in one query: every trial done
    → 'debrief'; the practice done → 'trials'."""
    open_all, open_practice = conn.execute(_OPEN_TRIALS, {"participant_id": participant_id}).one()
    if open_all == 0 and status in ("instructions", "practice", "trials"):
        return "debrief"
    if open_all and status == "practice" and open_practice == 0:
        return "trials"
    return status


def _touch(participant: Participant, now) -> None:
    """Record activity for the assignment's active-timeout rule; a minute's precision is plenty
    for a timeout counted in tens of minutes, and skips an UPDATE on most saves."""
    if participant.last_seen_at is None or now - participant.last_seen_at > LAST_SEEN_PRECISION:
        participant.last_seen_at = now


def _trial_json(participant: Participant, trial: Trial, settings: dict, number: int) -> dict:
    """What the task page needs for one trial: its task, place and status, what its task says of
    every trial (`Task.trial_summary`), and for an unfinished one what its task's page needs
    (`Task.trial_json`: sizes in image px, times in ms)."""
    task = trial_task(trial)
    out = {"id": trial.id, "position": trial.position, "is_practice": trial.is_practice,
           "status": trial.status, "number": number, "task": task.name}
    if (trial.spec or {}).get("pace"):  # the design's pause before it (`studyweb.workload.pace_trials`)
        out["pace"] = trial.spec["pace"]
    out.update(task.trial_summary(trial))
    if trial.status == "done":
        return out
    out.update(task.trial_json(trial, participant, settings, url_for, lambda sid: get_db().get(Stimulus, sid)))
    return out


def _reason(status: int) -> str:
    return HTTP_STATUS_CODES.get(status, "error").lower().replace(" ", "_")
