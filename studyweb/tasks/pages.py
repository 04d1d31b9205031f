"""The task pages (blueprint "tasks"): an experiment's task page, the one its task names
(`Task.template`, running `Task.scripts`), and the images it shows. Images are served only to
the participant holding a trial of that stimulus: the blurred image (pre-blurred once by
`studyweb.experiments.blurred_image` and cached under the instance directory) and the sharp one,
both at their natural size in pixels; the images a trial shows besides its own stimulus
(`Task.shown_stimuli`: a questionnaire's candidates, the rated image, the input), its target map,
and a pick_region trial's label mask (`Task.mask_png`: the objects the page highlights)."""
from __future__ import annotations

import io

import numpy as np
from flask import Blueprint, abort, current_app, render_template, send_file

from studyweb.admin.heatmap import overlay_png
from studyweb.db.request import get_db
from studyweb.db.schema import Stimulus, Trial
from studyweb.experiments import blurred_image, stimulus_image_path
from studyweb.participant import _participant_or_entry, elsewhere
from studyweb.participant.auth import current_participant
from studyweb.tasks.choose_best import target_map_path
from studyweb.tasks.registry import task_named, trial_task

bp = Blueprint("tasks", __name__)


@bp.get("/s/<name>/task")
def bubbleview(name: str):
    """The task page for the practice and main trials, the experiment's task's
    (`Task.template`); elsewhere in the flow → resume."""
    experiment, participant = _participant_or_entry(name)
    if participant is None or participant.status not in ("practice", "trials"):
        return elsewhere(experiment, participant)
    get_db().commit()
    task = task_named(experiment.task)
    response = current_app.make_response(render_template(task.template, experiment=experiment,
                                                         participant=participant, task=task))
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


@bp.get("/t/trials/<int(max=2147483647):trial_id>/stimuli/<int(max=2147483647):stimulus_id>.png")
def stimulus_image(trial_id: int, stimulus_id: int):
    """An image a trial shows besides its own stimulus (a candidate, the rated image, the
    input), PNG at its natural size; 404 unless the token's participant holds the trial and it
    shows that image (`Task.shown_stimuli`)."""
    trial = _own_trial(trial_id)
    if stimulus_id not in trial_task(trial).shown_stimuli(trial.spec or {}):
        abort(404, description="no such image for this trial")
    stimulus = get_db().get(Stimulus, stimulus_id)
    response = send_file(stimulus_image_path(stimulus), mimetype="image/png", max_age=0)
    response.headers["Cache-Control"] = "private, max-age=3600"
    return response


@bp.get("/t/trials/<int(max=2147483647):trial_id>/target_map.png")
def target_map(trial_id: int):
    """The trial's target attention: the pair's y_map over the input image (PNG, the input's
    natural size); 404 unless the trial shows a target map."""
    trial = _own_trial(trial_id)
    reference = (trial.spec or {}).get("reference") or {}
    if not reference.get("target_map") or not reference.get("input"):
        abort(404, description="this trial shows no target map")
    stimulus = get_db().get(Stimulus, reference["input"])
    path = target_map_path(stimulus.experiment.dataset_path, stimulus.pair_id)
    if path is None:
        abort(404, description="the pair has no target map")
    density = np.load(path).astype(np.float32)
    response = send_file(io.BytesIO(overlay_png(stimulus, density)), mimetype="image/png", max_age=0)
    response.headers["Cache-Control"] = "private, max-age=3600"
    return response


@bp.get("/t/trials/<int(max=2147483647):trial_id>/mask.png")
def pick_mask(trial_id: int):
    """A pick_region trial's label mask (8-bit grey PNG at the mask's own size: 0 background,
    k = the object with mask id k; DESIGN.md §2), the very array the server looks answers up in
    (`tasks.pick_region.mask_png`); 404 unless the token's participant holds a trial with objects
    to pick."""
    trial = _own_trial(trial_id)
    png = trial_task(trial).mask_png(trial.spec or {})
    if png is None:
        abort(404, description="this trial has no objects to pick")
    response = send_file(io.BytesIO(png), mimetype="image/png", max_age=0)
    response.headers["Cache-Control"] = "private, max-age=3600"
    return response


def _own_trial(trial_id: int) -> Trial:
    participant = current_participant()
    trial = get_db().get(Trial, trial_id)
    if participant is None or trial is None or trial.participant_id != participant.id:
        abort(404, description="no such image for this participant")
    return trial
