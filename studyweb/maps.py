"""Fixation maps in SQL: the valid clicks of each stimulus → `analysis.fixations.fixation_map`.

σ (pixels), first that applies: the `sigma_px` argument; settings.sigma_px; 1° of visual
angle × settings.px_per_degree; else 25 px scaled by the image width (BubbleView's 25 px at
640 px: 25 · width / 640).

A build is where QC decides (`studyweb.qc.decide_qc`): each participant's decision (kept |
excluded, the reason) is stored on the participant in the build's transaction, and each map
keeps the decision about it (`FixationMap.points`, `FixationMap.qc_flags`): the exact clicks
that went in and the build's flags about its stimulus' participants and the experiment. A map
is rebuilt only when its inputs changed: its params hold σ, the QC settings and a hash of the
points, and a map with the same params is kept, its qc_flags set to this build's (the same
points can come with other flags, e.g. a newly excluded participant without valid clicks on
it). A map from before points were stored (revision 0003) is rebuilt once, to store them.
"""
from __future__ import annotations

import hashlib
import logging
import time

import numpy as np
from sqlalchemy import select, update
from sqlalchemy.orm import Session, defer

from analysis.fixations import fixation_map, sigma_from_visual_angle
from studyweb.db.schema import Experiment, FixationMap, Stimulus, utcnow
from studyweb.qc import decide_qc

log = logging.getLogger(__name__)
REFERENCE_SIGMA_PX = 25.0  # BubbleView's map σ ...
REFERENCE_WIDTH_PX = 640.0  # ... at this image width


def map_sigma(stimulus_width: int, settings: dict, sigma_px: float | None = None) -> float:
    """The map's Gaussian σ in pixels for an image `stimulus_width` pixels wide (see module doc)."""
    if sigma_px is not None:
        return float(sigma_px)
    if settings.get("sigma_px"):
        return float(settings["sigma_px"])
    if settings.get("px_per_degree"):
        return sigma_from_visual_angle(1.0, float(settings["px_per_degree"]))
    return REFERENCE_SIGMA_PX * stimulus_width / REFERENCE_WIDTH_PX


def build_maps(session: Session, experiment: Experiment, sigma_px: float | None = None,
               progress: bool = False) -> dict:
    """Build (or keep) the current map of every stimulus from the clicks that pass QC, and store
    QC's decision on every participant (`decide_qc`; a questionnaire builds no maps, but its
    decision is stored all the same).

    Returns {"built", "skipped" (unchanged), "empty" (no valid clicks), "kept_participants",
    "excluded_participants", "flags" (list of dicts), "seconds"}. Old maps stay in the table with
    is_current=False. Flushes; the caller commits.
    """
    start = time.perf_counter()
    qc_settings = experiment.settings.get("qc", {})
    result = decide_qc(session, experiment)
    stimuli = session.scalars(select(Stimulus).where(Stimulus.experiment_id == experiment.id)
                              .order_by(Stimulus.id)).all()
    current = {  # what the skip test needs, without the densities and points themselves
        row.stimulus_id: row for row in session.execute(
            select(FixationMap.id, FixationMap.stimulus_id, FixationMap.params, FixationMap.qc_flags,
                   FixationMap.points.is_not(None).label("has_points"))
            .join(Stimulus, Stimulus.id == FixationMap.stimulus_id)
            .where(Stimulus.experiment_id == experiment.id, FixationMap.is_current.is_(True))
        )
    }
    order = np.argsort(result.stimulus_id, kind="stable")
    sorted_sid = result.stimulus_id[order]
    built = skipped = empty = 0
    replaced: list[int] = []
    reflagged: list[dict] = []
    new_maps: list[FixationMap] = []
    iterator = stimuli
    if progress:
        from tqdm import tqdm

        iterator = tqdm(stimuli, desc="maps", unit="stimulus")
    for stimulus in iterator:
        lo, hi = np.searchsorted(sorted_sid, [stimulus.id, stimulus.id + 1])
        if lo == hi:
            empty += 1
            continue
        rows = order[lo:hi]
        points = np.column_stack([result.x[rows], result.y[rows]])
        participants = sorted({int(p) for p in result.participant_id[rows]})
        params = {
            "sigma_px": round(map_sigma(stimulus.width, experiment.settings, sigma_px), 6),
            "qc": qc_settings,
            "points_sha1": _points_hash(result.participant_id[rows], points),
        }
        flags = result.flags_about(result.viewers.get(stimulus.id, ()))
        old = current.get(stimulus.id)
        if old is not None and old.params == params and old.has_points:
            if old.qc_flags != flags:
                reflagged.append({"id": old.id, "qc_flags": flags})
            skipped += 1
            continue
        density = fixation_map(points, (stimulus.height, stimulus.width), params["sigma_px"])
        if old is not None:
            replaced.append(old.id)
        new_maps.append(FixationMap(
            stimulus_id=stimulus.id, params=params, n_participants=len(participants), n_points=len(points),
            participant_ids=participants, height=stimulus.height, width=stimulus.width,
            density=density.tobytes(), built_at=utcnow(), is_current=True, qc_flags=flags,
            points=_points_bytes(result.participant_id[rows], points, result.t_ms[rows]),
        ))
        built += 1
    if replaced:
        session.execute(update(FixationMap).where(FixationMap.id.in_(replaced)).values(is_current=False)
                        .execution_options(synchronize_session=False))
    if reflagged:
        session.execute(update(FixationMap).execution_options(synchronize_session=False), reflagged)
    session.add_all(new_maps)
    session.flush()
    excluded = sorted({f.participant_id for f in result.flags if f.excluded})
    summary = {
        "built": built, "skipped": skipped, "empty": empty,
        "kept_participants": len(result.kept), "excluded_participants": excluded,
        "flags": [f.as_dict() for f in result.flags], "seconds": round(time.perf_counter() - start, 3),
    }
    log.info("maps for %s: %d built, %d unchanged, %d without clicks", experiment.name, built, skipped, empty)
    return summary


def current_maps(session: Session, experiment: Experiment, arrays: bool = True) -> dict[int, FixationMap]:
    """{stimulus id: its current FixationMap} for the experiment (stimuli without one are absent).
    arrays=False leaves the density and points bytes unloaded until used (for listings)."""
    query = (select(FixationMap).join(Stimulus, Stimulus.id == FixationMap.stimulus_id)
             .where(Stimulus.experiment_id == experiment.id, FixationMap.is_current.is_(True)))
    if not arrays:
        query = query.options(defer(FixationMap.density), defer(FixationMap.points))
    return {m.stimulus_id: m for m in session.scalars(query)}


def current_map(session: Session, stimulus_id: int) -> FixationMap | None:
    """The stimulus' current FixationMap, or None before its first map."""
    return session.scalars(select(FixationMap).where(FixationMap.stimulus_id == stimulus_id,
                                                     FixationMap.is_current.is_(True))).first()


def recorded_flags(maps) -> tuple[list[dict], int]:
    """The QC flags stored with `maps` (FixationMaps), each once: experiment flags first, then
    by participant id; and how many of the maps predate stored flags (built before revision
    0003). A participant whose clicks are in no current map (all dropped) is not among them."""
    flags: dict[tuple, dict] = {}
    legacy = 0
    for built in maps:
        if built.qc_flags is None:
            legacy += 1
            continue
        for flag in built.qc_flags:
            flags.setdefault((flag["participant_id"], flag["reason"], flag["excluded"]), flag)
    order = sorted(flags, key=lambda k: (k[0] is not None, k[0] or 0))  # stable: QC's order per participant
    return [flags[k] for k in order], legacy


def _points_bytes(participant_ids: np.ndarray, points: np.ndarray, t_ms: np.ndarray) -> bytes:
    """FixationMap.points: (participant id, x, y, t_ms) rows as little-endian float64 bytes."""
    table = np.column_stack([participant_ids.astype(np.float64), points.astype(np.float64),
                             t_ms.astype(np.float64)])
    return np.ascontiguousarray(table, dtype=FixationMap.POINTS_DTYPE).tobytes()


def _points_hash(participant_ids: np.ndarray, points: np.ndarray) -> str:
    """A hash of the (participant, x, y) set, independent of order."""
    table = np.column_stack([participant_ids.astype(np.float64), points.astype(np.float64)])
    table = table[np.lexsort(table.T[::-1])]
    return hashlib.sha1(np.ascontiguousarray(table).tobytes()).hexdigest()
