"""Exports: the current fixation maps into a dataset directory, and tidy CSVs of everything.

Into a dataset (DESIGN.md §2): maps/PAIRID_side.npy (float32 density, sums to 1) and .png
(8-bit, max = 255), fixations/PAIRID_side.csv (participant_id, x, y, t_ms; image pixels, ms)
of the clicks that went into the map, and the pairs.csv columns x_map, y_map (the .npy paths),
n_observers_x, n_observers_y and kl_xy = KLD(Y map as prediction, X map as ground truth), in
nats (analysis.metrics.kld). Sides without a current map keep their columns as they were.
"""
from __future__ import annotations

import csv
import logging
import os
import tempfile
from pathlib import Path

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from studyweb.db import Click, Event, Experiment, Participant, Stimulus, Trial
from studyweb.maps import current_maps
from studyweb.qc import run_qc

log = logging.getLogger(__name__)


def export_to_dataset(session: Session, experiment: Experiment, dataset_dir=None) -> dict:
    """Write the experiment's current maps and their clicks into the dataset at `dataset_dir`
    (default: the experiment's own dataset) and fill its map columns. Run build_maps first.

    Returns {"maps": files written per side, "pairs": pairs updated, "dataset": path}.
    ValueError when there is no current map, or a pair id is not in the dataset."""
    from analysis.fixations import save_map
    from analysis.metrics import kld
    from datagen.dataset import Dataset

    dataset = Dataset.open(Path(dataset_dir) if dataset_dir is not None else Path(experiment.dataset_path))
    maps = current_maps(session, experiment)
    if not maps:
        raise ValueError(f"experiment {experiment.name!r} has no fixation maps yet; run"
                         f" `gazelab study build-maps {experiment.name}` first")
    stimuli = {s.id: s for s in session.scalars(select(Stimulus).where(Stimulus.id.in_(list(maps))))}
    unknown = sorted({s.pair_id for s in stimuli.values()} - set(dataset.pairs["pair_id"]))
    if unknown:
        raise ValueError(f"pairs {unknown[:5]} of experiment {experiment.name!r} are not in dataset {dataset.path}")
    qc = run_qc(session, experiment)

    rows: dict[str, dict] = {}
    densities: dict[tuple[str, str], np.ndarray] = {}
    for stimulus_id, fixation_map in sorted(maps.items()):
        stimulus = stimuli[stimulus_id]
        if stimulus.side not in ("x", "y"):
            continue
        density = fixation_map.density_array()
        pair, side = stimulus.pair_id, stimulus.side
        save_map(dataset.path_of(pair, "map_npy", side), density)
        save_map(dataset.path_of(pair, "map", side), density)
        keep = (qc.stimulus_id == stimulus_id) & np.isin(qc.participant_id, fixation_map.participant_ids)
        _write_csv(dataset.path_of(pair, "fixations", side), ["participant_id", "x", "y", "t_ms"],
                   zip(qc.participant_id[keep].tolist(), qc.x[keep].tolist(), qc.y[keep].tolist(),
                       qc.t_ms[keep].tolist()))
        row = rows.setdefault(pair, {"pair_id": pair})
        row[f"{side}_map"] = f"maps/{pair}_{side}.npy"
        row[f"n_observers_{side}"] = fixation_map.n_participants
        densities[pair, side] = density
    for pair, row in rows.items():
        if (pair, "x") in densities and (pair, "y") in densities:
            row["kl_xy"] = kld(densities[pair, "y"], densities[pair, "x"])
    dataset.update_pairs(list(rows.values()))
    log.info("exported %d maps of %s into %s", len(densities), experiment.name, dataset.path)
    return {"maps": len(densities), "pairs": len(rows), "dataset": str(dataset.path)}


def export_csv(session: Session, experiment: Experiment, out_dir) -> dict[str, Path]:
    """Tidy CSVs of the experiment in `out_dir`: participants.csv, trials.csv, clicks.csv
    (x, y in image pixels, t_ms since trial start) and events.csv; one row per record, ids
    to join on. Simulated and imported participants are labelled in the `source` column."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    in_experiment = select(Participant.id).where(Participant.experiment_id == experiment.id)
    participant_cols = ["id", "recruit_source", "recruit_id", "study_id", "session_id", "source", "status",
                        "user_agent", "screen_w", "screen_h", "window_w", "window_h", "assignment_seed",
                        "created_at", "last_seen_at", "completed_at", "completion_code"]
    tables = {
        "participants": (participant_cols, session.execute(
            select(*[getattr(Participant, c) for c in participant_cols])
            .where(Participant.experiment_id == experiment.id).order_by(Participant.id))),
        "trials": (["id", "participant_id", "stimulus_id", "pair_id", "side", "position", "is_practice", "status",
                    "started_at", "ended_at", "duration_ms", "display_w", "display_h", "response_text"],
                   session.execute(
                       select(Trial.id, Trial.participant_id, Trial.stimulus_id, Stimulus.pair_id, Stimulus.side,
                              Trial.position, Trial.is_practice, Trial.status, Trial.started_at, Trial.ended_at,
                              Trial.duration_ms, Trial.display_w, Trial.display_h, Trial.response_text)
                       .outerjoin(Stimulus, Stimulus.id == Trial.stimulus_id)
                       .where(Trial.participant_id.in_(in_experiment)).order_by(Trial.participant_id,
                                                                                Trial.position))),
        "clicks": (["id", "trial_id", "participant_id", "stimulus_id", "x", "y", "t_ms", "display_w", "display_h"],
                   session.execute(
                       select(Click.id, Click.trial_id, Trial.participant_id, Trial.stimulus_id, Click.x, Click.y,
                              Click.t_ms, Click.display_w, Click.display_h)
                       .join(Trial, Trial.id == Click.trial_id)
                       .where(Trial.participant_id.in_(in_experiment)).order_by(Click.id))),
        "events": (["id", "participant_id", "trial_id", "kind", "t_ms", "payload", "created_at"],
                   session.execute(
                       select(Event.id, Event.participant_id, Event.trial_id, Event.kind, Event.t_ms, Event.payload,
                              Event.created_at)
                       .where(Event.participant_id.in_(in_experiment)).order_by(Event.id))),
    }
    written = {}
    for name, (columns, result) in tables.items():
        written[name] = _write_csv(out / f"{name}.csv", columns, (_cells(row) for row in result))
    return written


def _cells(row) -> list:
    import json

    return [json.dumps(v) if isinstance(v, (dict, list)) else ("" if v is None else v) for v in row]


def _write_csv(path: Path, header: list[str], rows) -> Path:
    """Write a CSV atomically (temp file + rename): a crash never leaves half a table."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(header)
            writer.writerows(rows)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
