"""The task pages: BubbleView (`static/bubbleview.js`, driven by `static/flow.js`) and the
images it shows. Images are served only to the participant holding a trial of that stimulus:
the blurred image (pre-blurred once by `studyweb.experiments.blurred_image` and cached under
the instance directory) and the sharp one, both at their natural size in pixels."""
from __future__ import annotations

from flask import Blueprint, abort, current_app, render_template, send_file

from studyweb.db import Trial, get_db
from studyweb.experiments import blurred_image, stimulus_image_path
from studyweb.participant import _participant_or_entry, elsewhere
from studyweb.participant.auth import current_participant

bp = Blueprint("tasks", __name__)


@bp.get("/s/<name>/task")
def bubbleview(name: str):
    """The task page for the practice and main trials (BubbleView's, or CodeCharts' for a
    task "codecharts" experiment); elsewhere in the flow → resume."""
    experiment, participant = _participant_or_entry(name)
    if participant is None or participant.status not in ("practice", "trials"):
        return elsewhere(experiment, participant)
    get_db().commit()
    template = "tasks/codecharts.html" if experiment.task == "codecharts" else "tasks/bubbleview.html"
    response = current_app.make_response(render_template(template, experiment=experiment, participant=participant))
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/t/trials/<int(max=2147483647):trial_id>/<any(blurred, sharp):kind>.png")
def image(trial_id: int, kind: str):
    """The trial's stimulus, blurred or sharp (PNG, natural size); 404 unless the token's
    participant holds this trial."""
    participant = current_participant()
    db = get_db()
    trial = db.get(Trial, trial_id)
    if participant is None or trial is None or trial.participant_id != participant.id or trial.stimulus is None:
        abort(404, description="no such image for this participant")
    stimulus = trial.stimulus
    if kind == "sharp":
        path = stimulus_image_path(stimulus)
    else:
        had = stimulus.blurred_path
        path = blurred_image(stimulus, instance_dir=current_app.instance_path)
        if stimulus.blurred_path != had:
            db.commit()
    response = send_file(path, mimetype="image/png", max_age=0)
    response.headers["Cache-Control"] = "private, max-age=3600"
    return response
