"""Experiments: created from a dataset directory's pairs; the BubbleView pre-blurred images.

Settings (stored as JSON on the experiment):
- blur_sigma_frac, bubble_radius_frac: the pre-blur's Gaussian σ and a revealed bubble's
  radius as fractions of the image's width (0.03 each: BubbleView's ~30 px on ~1000 px wide
  images). A fraction of the natural width in image pixels is the same fraction of the shown
  width in CSS pixels, so blur and bubble keep their look at any image and display size.
- blur_sigma_px, bubble_radius_px: explicit overrides in image pixels (natural size);
  None (the default) = use the fractions.
- display_width_px: the CSS width an image is shown at (1000), shrunk to fit the window;
  max_upscale: the most an image is enlarged (2: a 160 px wide image is shown at most 320 CSS
  px wide).
- codecharts (task 'codecharts' only): fixation_ms, image_ms (one or more durations),
  chart_ms, sentinel_every, tutorial, sentinel_radius_px (`studyweb.codecharts_study`); its
  QC counts one gaze point per trial (min_clicks 1, no IQR rule) unless qc says otherwise.
- time_limit_s, max_clicks (None = no cap), mode ('free' | 'describe'), per_participant (K
  stimuli each), observers (M per stimulus), sides, allow_both_sides, allow_repeat,
  active_timeout_min (minutes a started participant still counts as an observer),
  completion_code, completion_url, px_per_degree, sigma_px (map σ override),
  qc {min_clicks, iqr_k, max_focus_losses}.
- screenout_code, screenout_url: what a screened-out participant gets instead of the completion
  code or URL (Prolific's screened-out code; `studyweb.screening`); a code is drawn when neither
  is given (`fill_codes`). texts (a design's consent, instructions, debrief, screened_out:
  `studyweb.texts`), comprehension ({questions, max_attempts}) and device (the device check:
  `studyweb.screening`; None: none) come from designs, which check them.
- exclude_workers_of: names of experiments of the same study (psiTurk's repeat-worker block
  across experiments): a recruit id with a participant row in one of them is refused at the
  study link, and the exclusion goes both ways (`related_experiments`). A name may be of an
  experiment created later.

Experiments created before the fractions existed stored blur_sigma_px = bubble_radius_px = 30
(the old defaults); those are read as the explicit overrides they look like, so every
participant of a running study sees the same blur and bubbles. Settings missing from a stored
experiment (display_width_px, max_upscale) take their defaults from DEFAULT_SETTINGS, so old
experiments get the display-size rule too. Create a new experiment to use the fractions.
"""
from __future__ import annotations

import copy
import logging
import math
import os
import re
import secrets
import struct
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from studyweb.db.schema import Experiment, Stimulus

log = logging.getLogger(__name__)

TASKS = ("bubbleview", "codecharts")  # and "questionnaire", made from designs (studyweb.designs)
MODES = ("free", "describe")
DEFAULT_QC = {"min_clicks": 2, "iqr_k": 3.0, "max_focus_losses": 5}
DEFAULT_SETTINGS: dict[str, Any] = {
    "blur_sigma_frac": 0.03,
    "bubble_radius_frac": 0.03,
    "blur_sigma_px": None,
    "bubble_radius_px": None,
    "display_width_px": 1000.0,
    "max_upscale": 2.0,
    "time_limit_s": 10.0,
    "max_clicks": None,
    "mode": "free",
    "per_participant": 10,
    "observers": 15,
    "sides": ["x", "y"],
    "allow_both_sides": False,
    "allow_repeat": False,
    "active_timeout_min": 30.0,
    "completion_code": None,
    "completion_url": None,
    "px_per_degree": None,
    "sigma_px": None,
    "qc": DEFAULT_QC,
    "codecharts": None,  # CodeCharts timing and sentinels (`studyweb.codecharts_study.DEFAULTS`)
    "design": None,  # a questionnaire's checked design (`studyweb.designs`)
    "conditions": None,  # {versions, layout}: Latin-square blocks of an attention design (`studyweb.designs`)
    "screenout_code": None,  # given to a screened-out participant (`studyweb.screening`)
    "screenout_url": None,  # or where they are sent
    "texts": None,  # a design's consent, instructions, debrief, screened_out (`studyweb.texts`)
    "comprehension": None,  # {questions, max_attempts}: asked after the instructions (`studyweb.designs`)
    "device": None,  # {min_window, phones, fullscreen}: checked before consent (`studyweb.screening`)
    "exclude_workers_of": [],  # experiments whose workers cannot take this one (`related_experiments`)
}
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


def create_experiment(
    session: Session, dataset_dir, name: str, task: str = "bubbleview", *, title: str = "",
    description: str = "", pair_ids: list[str] | None = None, **settings,
) -> Experiment:
    """Add an experiment on the dataset at `dataset_dir`: one Stimulus per pair (only `pair_ids`
    when given) and requested side (with its natural size read from the image). Flushed, not
    committed. ValueError on a bad name, task, setting, a dataset that cannot be opened, or one
    with no images for the sides. (Questionnaires come from designs: `studyweb.designs`.)"""
    from datagen.dataset import Dataset

    check_name(session, name)
    if task not in TASKS:
        raise ValueError(f"task {task!r} is not one of {TASKS}")
    if task == "codecharts":
        from studyweb import codecharts_study

        qc = {**DEFAULT_QC, **codecharts_study.QC_DEFAULTS, **(settings.get("qc") or {})}
        settings = {**settings, "qc": qc,
                    "codecharts": codecharts_study.validate_settings(settings.get("codecharts"))}
    elif settings.get("codecharts") is not None:
        raise ValueError(f"codecharts settings are for task 'codecharts', not {task!r}")
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
    if task == "codecharts":
        codecharts_study.check_stimuli(stimuli, merged)
    session.add_all(stimuli)
    session.flush()
    log.info("experiment %s: %d stimuli from %s", name, len(stimuli), dataset_path)
    return experiment


def check_name(session: Session, name: str) -> None:
    """ValueError unless `name` is a free experiment name (1-64 of a-z 0-9 _ -)."""
    if not isinstance(name, str) or not _NAME.match(name):
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


def validate_settings(settings: dict[str, Any], base: dict[str, Any] | None = None) -> dict[str, Any]:
    """`base` (default DEFAULT_SETTINGS) updated with `settings`, checked; a ValueError names the
    bad key and what was expected. None values in `settings` keep the base value."""
    merged = copy.deepcopy(DEFAULT_SETTINGS if base is None else base)
    unknown = sorted(set(settings) - set(DEFAULT_SETTINGS))
    if unknown:
        raise ValueError(f"unknown experiment settings {unknown}; expected some of {sorted(DEFAULT_SETTINGS)}")
    for key, value in settings.items():
        if value is None:
            continue
        if key in ("codecharts", "design", "conditions", "texts", "comprehension", "device"):
            merged[key] = value  # checked with the task (create_experiment, studyweb.designs)
        elif key == "qc":
            bad = sorted(set(value) - set(DEFAULT_QC))
            if bad:
                raise ValueError(f"unknown qc settings {bad}; expected some of {sorted(DEFAULT_QC)}")
            merged["qc"] = {**merged["qc"], **value}
        else:
            merged[key] = value
    for key in ("time_limit_s", "active_timeout_min", "display_width_px"):
        _positive(key, merged[key])
    for key in ("blur_sigma_frac", "bubble_radius_frac"):
        _positive(key, merged[key])
        if merged[key] > 1:
            raise ValueError(f"{key} is a fraction of the image width and must be in (0, 1], got {merged[key]!r}")
    _positive("max_upscale", merged["max_upscale"])
    if merged["max_upscale"] < 1:
        raise ValueError(f"max_upscale must be a number >= 1 (1 = never enlarge), got {merged['max_upscale']!r}")
    for key in ("blur_sigma_px", "bubble_radius_px", "max_clicks", "px_per_degree", "sigma_px"):
        if merged[key] is not None:
            _positive(key, merged[key])
    for key in ("per_participant", "observers"):
        if not isinstance(merged[key], int) or isinstance(merged[key], bool) or merged[key] < 1:
            raise ValueError(f"{key} must be an integer >= 1, got {merged[key]!r}")
    if merged["mode"] not in MODES:
        raise ValueError(f"mode {merged['mode']!r} is not one of {MODES}")
    sides = merged["sides"]
    if isinstance(sides, str):
        sides = [s.strip() for s in sides.split(",") if s.strip()]
    if not sides or any(s not in ("x", "y") for s in sides) or len(set(sides)) != len(sides):
        raise ValueError(f"sides must be a non-empty subset of ['x', 'y'], got {merged['sides']!r}")
    merged["sides"] = list(sides)
    qc = merged["qc"]
    if not isinstance(qc["min_clicks"], int) or qc["min_clicks"] < 0:
        raise ValueError(f"qc.min_clicks must be an integer >= 0, got {qc['min_clicks']!r}")
    if qc["iqr_k"] is not None:  # None: the IQR rule is off
        _positive("qc.iqr_k", qc["iqr_k"])
    if not isinstance(qc["max_focus_losses"], int) or qc["max_focus_losses"] < 0:
        raise ValueError(f"qc.max_focus_losses must be an integer >= 0, got {qc['max_focus_losses']!r}")
    for key in ("completion_url", "screenout_url"):
        url = merged.get(key)
        if url and not str(url).startswith(("https://", "http://")):
            raise ValueError(f"{key} must start with http:// or https://, got {url!r}")
    code = merged.get("screenout_code")
    if code is not None and (not isinstance(code, str) or len(code) > 64):  # participants.completion_code: 64
        raise ValueError(f"screenout_code must be a text of at most 64 characters, got {code!r}")
    merged["exclude_workers_of"] = experiment_names("exclude_workers_of", merged.get("exclude_workers_of", []))
    return merged


def fill_codes(settings: dict[str, Any]) -> None:
    """Draw a completion code and a different screen-out code (8 hex digits) for settings that
    give neither that code nor its URL (in place)."""
    if settings["completion_code"] is None and not settings["completion_url"]:
        settings["completion_code"] = secrets.token_hex(4).upper()
    if settings.get("screenout_code") is None and not settings.get("screenout_url"):
        code = secrets.token_hex(4).upper()
        while code == settings["completion_code"]:
            code = secrets.token_hex(4).upper()
        settings["screenout_code"] = code


def experiment_names(key: str, value) -> list[str]:
    """`value` as a list of distinct experiment names (order kept); ValueError naming `key`
    unless it is a list of names of 1-64 of a-z 0-9 _ -."""
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and _NAME.match(v) for v in value):
        raise ValueError(f"{key} must be a list of experiment names (1-64 of a-z 0-9 _ -), got {value!r}")
    return list(dict.fromkeys(value))


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
    from studyweb.db.schema import Participant

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


def blur_sigma_image_px(settings: dict[str, Any], image_width: float) -> float:
    """The pre-blur's σ in image pixels for an image `image_width` pixels wide: the explicit
    blur_sigma_px if set, else blur_sigma_frac × image_width."""
    return _image_px(settings, "blur_sigma", image_width)


def bubble_radius_image_px(settings: dict[str, Any], image_width: float) -> float:
    """A bubble's radius in image pixels for an image `image_width` pixels wide: the explicit
    bubble_radius_px if set, else bubble_radius_frac × image_width."""
    return _image_px(settings, "bubble_radius", image_width)


def setting(settings: dict[str, Any], key: str) -> Any:
    """settings[key], or its default for an experiment stored before `key` existed."""
    return settings.get(key, DEFAULT_SETTINGS[key])


def blurred_image(stimulus: Stimulus, sigma: float | None = None, instance_dir=None) -> Path:
    """The stimulus' image blurred by a Gaussian of `sigma` image pixels (default: the
    experiment's `blur_sigma_image_px` at the stimulus' natural width), as a PNG cached under
    INSTANCE/blurred/<experiment id>/<stimulus id>_s<sigma>.png, so a changed setting never
    serves an old blur. Written once (temp file + rename, so concurrent workers never serve
    half a file); sets stimulus.blurred_path (the caller commits)."""
    import cv2

    from studyweb.config import instance_dir as default_instance_dir

    if sigma is None:
        sigma = blur_sigma_image_px(stimulus.experiment.settings, stimulus.width)
    sigma = float(sigma)
    _positive("sigma", sigma)
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
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ValueError(f"image {path} is not a readable image")
    return int(image.shape[1]), int(image.shape[0])


def _positive(key: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
        raise ValueError(f"{key} must be a finite number > 0, got {value!r}")


def _image_px(settings: dict[str, Any], name: str, image_width: float) -> float:
    explicit = settings.get(f"{name}_px")
    if explicit is not None:
        return float(explicit)
    return float(setting(settings, f"{name}_frac")) * float(image_width)


def experiment_status(session: Session, experiment: Experiment) -> dict[str, Any]:
    """Progress: participants by status and by source, saved observers per stimulus (trials
    'done', practice excluded) against the M wanted, and how many stimuli have a current map."""
    from sqlalchemy import func

    from studyweb.assignment import completed_counts
    from studyweb.db.schema import FixationMap, Participant

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
