"""A pilot of a study design in one call (`gazelab study pilot DESIGN.yaml ...`): what a
researcher runs before paying anyone.

A throwaway SQLite study in OUT (pilot.db, instance/), the design's experiment on the dataset,
the study server on a free loopback port, simulated participants for every task type through
the same HTTP API as browsers (`studyweb.simulate`), then QC (its decision stored, as
`gazelab study build-maps` stores it), fixation maps for attention tasks
(OUT/maps/LABEL.npy and .png; the dataset is never written), the tidy CSVs (OUT/csv/, with
responses.csv) and a summary: participants finished and excluded, observers per image, the
trials a participant does and the minutes that takes.

Minutes per participant come from the design's timing where it has one (BubbleView's time
limit, CodeCharts' screens) plus an assumed time to answer, and for questionnaires from an
assumed time per trial and question (ANSWER_S); they are an estimate to plan payment with.
"""
from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)
EXPERIMENT = "pilot"
MAX_DEFAULT_PARTICIPANTS = 60
ANSWER_S = {"codecharts": 3.0, "bubbleview": 4.0, "trial": 5.0, "question": 4.0}  # assumed seconds to answer


def run_pilot(design_path, dataset_dir, out_dir, methods: dict[str, str] | None = None,
              participants: int | None = None, seed: int = 0) -> dict:
    """Pilot the design; returns the summary (see the module doc). `participants` defaults to
    what fills every image's observers (at most MAX_DEFAULT_PARTICIPANTS). ValueError /
    DesignError for a design or dataset that cannot run; OUT's earlier pilot is replaced."""
    from studyweb.db import open_session
    from studyweb.designs import create_from_design, load_design
    from studyweb.serving import local_study_server
    from studyweb.simulate import simulate_participants

    out = Path(out_dir).expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    design = load_design(design_path, methods)  # a bad design leaves the last pilot as it was
    for stale in out.glob("pilot.db*"):
        stale.unlink()
    url = f"sqlite:///{out / 'pilot.db'}"
    with open_session(url) as session:
        experiment = create_from_design(session, design, dataset_dir, EXPERIMENT)
        session.commit()
        wanted = participants or _participants_to_fill(experiment)
        has_scenes = any((Path(experiment.dataset_path) / "scenes").glob("*.json"))
    with local_study_server(url, out / "instance") as base_url:
        simulated = simulate_participants(base_url, EXPERIMENT, wanted, concurrency=4, drop_rate=0.1, seed=seed,
                                          model="popout" if has_scenes else "centre", db_url=url)
    with open_session(url) as session:
        return _summarise(session, design, simulated, wanted, out)


def _participants_to_fill(experiment) -> int:
    """Participants that give every image its observers, at most MAX_DEFAULT_PARTICIPANTS."""
    settings = experiment.settings
    design = settings.get("design")
    if design:  # per block: units x observers / per participant; the largest block decides
        n_pairs = len({s.pair_id for s in experiment.stimuli})
        versions = {s.method or "original" for s in experiment.stimuli}
        per = n_pairs if design["per_participant"] in (None, "all") else design["per_participant"]
        units = max(n_pairs * (len(versions) - 1 if b.get("image") == "methods" else 1) for b in design["blocks"])
        need = -(-units * int(design["observers"]) // max(1, min(per, n_pairs)))
    else:
        need = -(-len(experiment.stimuli) * int(settings["observers"]) // int(settings["per_participant"]))
    return max(1, min(need, MAX_DEFAULT_PARTICIPANTS))


def _summarise(session, design, simulated: dict, wanted: int, out: Path) -> dict:
    from sqlalchemy import func, select

    from studyweb.assignment import completed_counts
    from studyweb.db import Participant, Trial
    from studyweb.experiments import experiment_by_name
    from studyweb.export import export_csv
    from studyweb.qc import decide_qc

    experiment = experiment_by_name(session, EXPERIMENT)
    maps = _maps(session, experiment, out) if experiment.task in ("bubbleview", "codecharts") else None
    qc = decide_qc(session, experiment)  # stored on the participants, as the CSVs report it
    session.commit()
    counts = completed_counts(session, experiment)
    shown = [s.id for s in experiment.stimuli if experiment.task != "questionnaire" or _is_unit(s, experiment)]
    observers = [counts.get(sid, 0) for sid in shown] or [0]
    trials = session.execute(select(func.count()).select_from(Trial).join(Participant)
                             .where(Participant.experiment_id == experiment.id)).scalar()
    n_participants = session.execute(select(func.count()).select_from(Participant)
                                     .where(Participant.experiment_id == experiment.id)).scalar()
    per_participant = trials / max(1, n_participants)
    files = export_csv(session, experiment, out / "csv")
    return {
        "task": experiment.task, "participants": wanted, "complete": simulated["complete"],
        "failures": simulated["failures"], "excluded": sorted({f.participant_id for f in qc.flags if f.excluded}),
        "exclusion_reasons": [f.reason for f in qc.flags if f.excluded],
        "observers": {"min": min(observers), "mean": sum(observers) / len(observers), "max": max(observers),
                      "wanted": int((experiment.settings.get("design") or experiment.settings)["observers"]),
                      "images": len(shown)},
        "trials_per_participant": per_participant,
        "minutes_per_participant": _minutes(experiment, design, per_participant),
        "maps": maps, "csv": {name: str(path) for name, path in files.items()}, "database": str(out / "pilot.db"),
    }


def _is_unit(stimulus, experiment) -> bool:
    """Whether a questionnaire stimulus is one trials are counted on (not only a candidate)."""
    version = stimulus.method or "original"
    for block in experiment.settings["design"]["blocks"]:
        if block["task"] == "choose_best":
            if version == "original":
                return True
        elif block["image"] == version or (block["image"] == "methods" and version != "original"):
            return True
    return False


def _minutes(experiment, design, trials: float) -> float:
    """The expected minutes one participant spends on the trials (module doc)."""
    settings = experiment.settings
    if experiment.task == "codecharts":
        cc = settings["codecharts"]
        image_ms = sum(cc["image_ms"]) / len(cc["image_ms"])
        per_trial = (cc["fixation_ms"] + image_ms + cc["chart_ms"]) / 1000 + ANSWER_S["codecharts"]
    elif experiment.task == "bubbleview":
        per_trial = float(settings["time_limit_s"]) + ANSWER_S["bubbleview"]
    else:
        blocks = design.values["blocks"]
        questions = sum(len(b["questions"]) + bool(b.get("follow_up")) for b in blocks) / len(blocks)
        per_trial = ANSWER_S["trial"] + ANSWER_S["question"] * questions
    return round(trials * per_trial / 60, 1)


def _maps(session, experiment, out: Path) -> dict:
    """Build the maps in the pilot's database and save each as OUT/maps/LABEL.npy and .png."""
    from analysis.fixations import save_map
    from studyweb.maps import build_maps, current_maps

    summary = build_maps(session, experiment)
    session.commit()
    folder = out / "maps"
    folder.mkdir(exist_ok=True)
    stimuli = {s.id: s for s in experiment.stimuli}
    for stimulus_id, fixation_map in current_maps(session, experiment).items():
        density = fixation_map.density_array()
        label = stimuli[stimulus_id].label
        save_map(folder / f"{label}.npy", density)
        save_map(folder / f"{label}.png", density)
    return {"built": summary["built"], "empty": summary["empty"], "folder": str(folder)}
