"""Experiments: created from a dataset directory's pairs (`create_experiment`; questionnaires
and designs with conditions come from designs: `studyweb.designs`), found by name, their images
(the BubbleView pre-blurred ones among them) and their progress. Their settings, defaults and
checks are `studyweb.settings`; a task's own settings are its plug-in's (`studyweb.tasks`).
"""
from __future__ import annotations

import logging
import os
import secrets
import struct
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from datadir import Dataset
from studyweb.assignment import completed_counts
from studyweb.config import instance_dir as default_instance_dir
from studyweb.db.schema import Experiment, FixationMap, Participant, Stimulus
from studyweb.settings import EXPERIMENT_NAME, blur_sigma_image_px, check_positive, fill_codes, validate_settings
from studyweb.tasks import attention_tasks, task_named

log = logging.getLogger(__name__)


def create_experiment(
    session: Session, dataset_dir, name: str, task: str = "bubbleview", *, title: str = "",
    description: str = "", pair_ids: list[str] | None = None, **settings,
) -> Experiment:
    """Add an experiment on the dataset at `dataset_dir`: one Stimulus per pair (only `pair_ids`
    when given) and requested side (with its natural size read from the image). Flushed, not
    committed. ValueError on a bad name, task, setting, a dataset that cannot be opened, or one
    with no images for the sides. The task is an attention task (`studyweb.tasks.attention_tasks`),
    which fills in and checks its own settings (`Task.prepare_settings`) and its images
    (`Task.check_stimuli`). (Questionnaires come from designs: `studyweb.designs`.)"""
    check_name(session, name)
    if task not in attention_tasks():
        raise ValueError(f"task {task!r} is not one of {attention_tasks()}")
    for other in attention_tasks():  # another task's settings are a mistake, not something to ignore
        key = task_named(other).settings_key
        if other != task and key and settings.get(key) is not None:
            raise ValueError(f"{key} settings are for task {other!r}, not {task!r}")
    settings = task_named(task).prepare_settings(settings)
    merged = validate_settings(settings)
    dataset_path = Path(dataset_dir).expanduser().resolve()
    dataset = Dataset.open(dataset_path)
    fill_codes(merged)

    experiment = Experiment(
        name=name, title=title or name, description=description, task=task,
        dataset_path=str(dataset_path), settings=merged, status="open",
    )
    session.add(experiment)
    session.flush()
    stimuli = []
    wanted = None if pair_ids is None else set(pair_ids)
    for row in dataset.pairs.itertuples(index=False):
        if wanted is not None and row.pair_id not in wanted:
            continue
        for side in merged["sides"]:
            relative = getattr(row, f"{side}_image")
            if not relative:
                continue  # e.g. a 'single' pair has no Y image
            width, height = image_size(dataset_path / relative)
            stimuli.append(Stimulus(experiment_id=experiment.id, image_path=relative, pair_id=row.pair_id,
                                    side=side, width=width, height=height))
    if not stimuli:
        raise ValueError(f"dataset {dataset_path} has no images for sides {merged['sides']}")
    task_named(task).check_stimuli(stimuli, merged)
    session.add_all(stimuli)
    session.flush()
    log.info("experiment %s: %d stimuli from %s", name, len(stimuli), dataset_path)
    return experiment


def check_name(session: Session, name: str) -> None:
    """ValueError unless `name` is a free experiment name (1-64 of a-z 0-9 _ -)."""
    if not isinstance(name, str) or not EXPERIMENT_NAME.match(name):
        raise ValueError(f"experiment name {name!r} must be 1-64 of a-z 0-9 _ - (starting with a letter or digit)")
    if session.scalar(select(Experiment.id).where(Experiment.name == name)) is not None:
        raise ValueError(f"an experiment named {name!r} already exists")


def experiment_by_name(session: Session, name: str) -> Experiment:
    """The experiment called `name`; ValueError listing the known names when there is none."""
    experiment = session.scalar(select(Experiment).where(Experiment.name == name))
    if experiment is None:
        known = session.scalars(select(Experiment.name).order_by(Experiment.name)).all()
        raise ValueError(f"no experiment named {name!r}; known: {', '.join(known) or 'none'}")
    return experiment


def related_experiments(session: Session, experiment: Experiment) -> dict[str, str]:
    """{name: 'listed here' | 'lists this one'} of the experiments whose workers cannot take
    `experiment`: those its exclude_workers_of names (created yet or not) and those naming it
    in theirs, so listing an experiment once keeps a worker to one of the two."""
    related = {name: "listed here" for name in experiment.settings.get("exclude_workers_of") or []
               if name != experiment.name}
    for name, settings in session.execute(select(Experiment.name, Experiment.settings)
                                          .where(Experiment.id != experiment.id).order_by(Experiment.name)):
        if experiment.name in ((settings or {}).get("exclude_workers_of") or []):
            related.setdefault(name, "lists this one")
    return related


def related_participation(session: Session, experiment: Experiment, recruit_source: str,
                          recruit_id: str) -> str | None:
    """The name of a related experiment (`related_experiments`) where this recruit id (of this
    recruit source) has a participant row, whatever its status; None when there is none."""
    names = related_experiments(session, experiment)
    if not names:
        return None
    return session.scalar(
        select(Experiment.name).join(Participant, Participant.experiment_id == Experiment.id)
        .where(Experiment.name.in_(list(names)), Participant.recruit_source == recruit_source,
               Participant.recruit_id == recruit_id).order_by(Experiment.name).limit(1))


def stimulus_image_path(stimulus: Stimulus) -> Path:
    """The stimulus' image file: image_path if absolute, else relative to the experiment's dataset."""
    path = Path(stimulus.image_path)
    return path if path.is_absolute() else Path(stimulus.experiment.dataset_path) / path


def blurred_image(stimulus: Stimulus, sigma: float | None = None, instance_dir=None) -> Path:
    """The stimulus' image blurred by a Gaussian of `sigma` image pixels (default: the
    experiment's `blur_sigma_image_px` at the stimulus' natural width), as a PNG cached under
    INSTANCE/blurred/<experiment id>/<stimulus id>_s<sigma>.png, so a changed setting never
    serves an old blur. Written once (temp file + rename, so concurrent workers never serve
    half a file); sets stimulus.blurred_path (the caller commits)."""
    import cv2  # OpenCV: only when an image is first blurred

    if sigma is None:
        sigma = blur_sigma_image_px(stimulus.experiment.settings, stimulus.width)
    sigma = float(sigma)
    check_positive("sigma", sigma)
    root = Path(instance_dir) if instance_dir is not None else default_instance_dir()
    out = root / "blurred" / str(stimulus.experiment_id) / f"{stimulus.id}_s{sigma:g}.png"
    if not out.is_file():
        source = stimulus_image_path(stimulus)
        image = cv2.imread(str(source), cv2.IMREAD_COLOR)
        if image is None:
            raise ValueError(f"stimulus {stimulus.id}: image {source} is missing or unreadable")
        blurred = cv2.GaussianBlur(image, (0, 0), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.stem}.{os.getpid()}.{secrets.token_hex(4)}.png")
        if not cv2.imwrite(str(tmp), blurred):
            raise ValueError(f"could not write the blurred image {tmp}")
        os.replace(tmp, out)
        log.debug("blurred stimulus %d at sigma %g px -> %s", stimulus.id, sigma, out)
    stimulus.blurred_path = str(out)
    return out


def image_size(path) -> tuple[int, int]:
    """(width, height) in pixels of an image file; PNG headers are read without decoding."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            head = handle.read(24)
    except OSError as exc:
        raise ValueError(f"image {path} cannot be read: {exc}") from exc
    if head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR":
        width, height = struct.unpack(">II", head[16:24])
        return int(width), int(height)
    import cv2  # OpenCV: only for images other than PNG

    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ValueError(f"image {path} is not a readable image")
    return int(image.shape[1]), int(image.shape[0])


def experiment_status(session: Session, experiment: Experiment) -> dict[str, Any]:
    """Progress: participants by status and by source, saved observers per stimulus (trials
    'done', practice excluded) against the M wanted, and how many stimuli have a current map."""
    by = lambda column: {  # noqa: E731
        str(k): int(v) for k, v in session.execute(
            select(column, func.count()).where(Participant.experiment_id == experiment.id)
            .group_by(column).order_by(column))
    }
    stimulus_ids = session.scalars(select(Stimulus.id).where(Stimulus.experiment_id == experiment.id)).all()
    done = completed_counts(session, experiment)
    counts = [done.get(sid, 0) for sid in stimulus_ids] or [0]
    wanted = int(experiment.settings.get("observers", 0))
    maps = session.scalar(
        select(func.count()).select_from(FixationMap).join(Stimulus, Stimulus.id == FixationMap.stimulus_id)
        .where(Stimulus.experiment_id == experiment.id, FixationMap.is_current.is_(True))
    )
    return {
        "name": experiment.name, "status": experiment.status, "task": experiment.task,
        "stimuli": len(stimulus_ids), "participants": by(Participant.status), "sources": by(Participant.source),
        "observers": {"wanted": wanted, "min": min(counts), "max": max(counts),
                      "mean": float(sum(counts) / len(counts)), "full": sum(c >= wanted for c in counts)},
        "maps": int(maps or 0),
    }
