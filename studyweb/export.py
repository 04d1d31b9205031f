"""Exports: the current fixation maps into a dataset directory, and tidy CSVs of everything.

Into a dataset (DESIGN.md §2): maps/PAIRID_side.npy (float32 density, sums to 1) and .png
(8-bit, max = 255), fixations/PAIRID_side.csv (participant_id, x, y, t_ms; image pixels, ms)
of the clicks that went into the map, read from the map (`FixationMap.points`: QC's decision
when the map was built, not a new QC run), and the pairs.csv columns x_map, y_map (the .npy
paths), n_observers_x, n_observers_y and kl_xy = KLD(Y map as prediction, X map as ground
truth), in nats (analysis.metrics.kld). Sides without a current map keep their columns.

An export never makes a dataset worse without being asked: a side whose pairs.csv
n_observers is greater than the new map's participants is not replaced unless force=True
(equal counts are replaced: a re-export or a rebuild with other settings). If any side is
refused, nothing is written (`FewerObservers`), so a dataset is never half-updated by a
refusal. kl_xy is recomputed for every pair touched from the maps in the dataset after the
export (the other side's .npy read from disk), and left empty when a side has no map. Files
get the dataset's usual mode, 0666 & ~umask.

CSVs for people to open (every CSV written here) are escaped against spreadsheet formula
injection (OWASP's CSV-injection rule): a text cell that begins with = + - @ tab or carriage
return gets a leading single quote ', so a spreadsheet shows it as text instead of running it;
a text cell that begins with ' gets one more, so the escape is always undone the same way.
Text cells are always in double quotes (so a tab, CR or newline inside one stays in its cell);
numbers (ints, floats, -3.5 included) are written bare, as numbers, unescaped. To read the
text back, drop the first character of every text cell that begins with '
(pandas: `column.str.replace(r"^'", "", regex=True)`); number columns need nothing.
"""
from __future__ import annotations

import csv
import datetime as dt
import json
import logging
import os
import secrets
from pathlib import Path

import cv2
import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from analysis.eval_pairs import pixel_digest
from analysis.metrics import kld
from datadir import Dataset, relative_path
from datadir.files import temp_file_beside
from datadir.maps import load_map, save_map
from studyweb.db.schema import Click, Event, Experiment, FixationMap, Participant, Response, Stimulus, Trial
from studyweb.experiments import stimulus_image_path
from studyweb.maps import current_maps
from studyweb.qc import run_qc
from studyweb.tasks import task_named

log = logging.getLogger(__name__)
FIXATION_COLUMNS = ["participant_id", "x", "y", "t_ms"]
# Text that a spreadsheet would run as a formula (or that looks like an escape): escaped.
ESCAPED_PREFIXES = ("=", "+", "-", "@", "\t", "\r", "'")


class FewerObservers(ValueError):
    """An export would replace dataset maps with maps from fewer observers. sides: a list of
    (pair id, side, n_observers in pairs.csv, participants in the new map)."""

    def __init__(self, sides: list[tuple[str, str, int, int]], experiment: str, dataset: Path):
        self.sides = sides
        super().__init__(f"refusing to export {experiment!r} into {dataset}: {self.summary}; nothing was"
                         f" written. To replace them anyway: gazelab study export {experiment} --to {dataset}"
                         " --force (or confirm on the admin page)")

    @property
    def summary(self) -> str:
        listed = ", ".join(f"{pair}_{side} {old} → {new}" for pair, side, old, new in self.sides[:10])
        more = f" and {len(self.sides) - 10} more" if len(self.sides) > 10 else ""
        return (f"{len(self.sides)} map(s) in the dataset have more observers than the new ones"
                f" (pairs.csv n_observers → new map's participants: {listed}{more})")


def export_to_dataset(session: Session, experiment: Experiment, dataset_dir=None, force: bool = False) -> dict:
    """Write the experiment's current maps and their clicks into the dataset at `dataset_dir`
    (default: the experiment's own dataset) and fill its map columns. Run build_maps first.

    force: replace maps whose pairs.csv n_observers is greater than the new map's participants
    (else FewerObservers, a ValueError, and nothing is written). Returns {"maps": files written
    per side, "pairs": pairs updated, "dataset": path, "replaced_fewer": [(pair, side, old
    n_observers, new), ...] forced}. ValueError when there is no current map, a pair id is not
    in the dataset, or the other side's map of a pair cannot be read for kl_xy."""
    import pandas as pd

    dataset = Dataset.open(Path(dataset_dir) if dataset_dir is not None else Path(experiment.dataset_path))
    maps = current_maps(session, experiment)
    if not maps:
        raise ValueError(f"experiment {experiment.name!r} has no fixation maps yet; run"
                         f" `gazelab study build-maps {experiment.name}` first")
    stimuli = {s.id: s for s in session.scalars(select(Stimulus).where(Stimulus.id.in_(list(maps))))}
    unknown = sorted({s.pair_id for s in stimuli.values()} - set(dataset.pairs["pair_id"]))
    if unknown:
        raise ValueError(f"pairs {unknown[:5]} of experiment {experiment.name!r} are not in dataset {dataset.path}")
    sides = sorted((((stimuli[sid].pair_id, stimuli[sid].side), m) for sid, m in maps.items()
                    if stimuli[sid].side in ("x", "y")), key=lambda item: item[0])
    pairs = dataset.pairs.set_index("pair_id")

    fewer = []
    for (pair, side), fixation_map in sides:
        observers = pairs.loc[pair, f"n_observers_{side}"]
        if not pd.isna(observers) and int(observers) > fixation_map.n_participants:
            fewer.append((pair, side, int(observers), fixation_map.n_participants))
    if fewer and not force:
        raise FewerObservers(fewer, experiment.name, dataset.path)
    # Everything is read and checked before the first file is written.
    new_maps = dict(sides)
    kl_xy = {pair: _kl_xy(dataset, pairs.loc[pair], pair, new_maps) for pair in sorted({p for p, _ in new_maps})}
    fixations = _fixations(session, experiment, sides)

    # All or nothing: every file goes to a temporary name first, then pairs.csv is updated (one
    # atomic write), and only then are the files renamed into place. A failure before the update
    # leaves the dataset as it was, so its observer counts always describe the maps it holds.
    rows: dict[str, dict] = {}
    staged: list[tuple[Path, Path]] = []
    try:
        for (pair, side), fixation_map in sides:
            density = fixation_map.density_array()
            for kind in ("map_npy", "map"):
                target = dataset.path_of(pair, kind, side)
                staged.append((save_map(_staging(target), density), target))
            target = dataset.path_of(pair, "fixations", side)
            staged.append((write_csv(_staging(target), FIXATION_COLUMNS, fixations[pair, side]), target))
            row = rows.setdefault(pair, {"pair_id": pair, "kl_xy": kl_xy[pair]})
            row[f"{side}_map"] = relative_path(pair, "map_npy", side)
            row[f"n_observers_{side}"] = fixation_map.n_participants
        dataset.update_pairs(list(rows.values()))
    except BaseException:
        for temporary, _ in staged:
            temporary.unlink(missing_ok=True)
        raise
    for temporary, target in staged:
        os.replace(temporary, target)
    for pair, side, old, new in fewer:
        log.warning("replaced the map of %s_%s (%d observers) with one of %d participants (forced)",
                    pair, side, old, new)
    log.info("exported %d maps of %s into %s", len(sides), experiment.name, dataset.path)
    return {"maps": len(sides), "pairs": len(rows), "dataset": str(dataset.path), "replaced_fewer": fewer}


def export_csv(session: Session, experiment: Experiment, out_dir) -> dict[str, Path]:
    """Tidy CSVs of the experiment in `out_dir`: participants.csv (PARTICIPANT_COLUMNS: the QC
    decision as stored when it was made, `studyweb.qc.decide_qc`; never a new QC run),
    trials.csv, clicks.csv (x, y in image pixels, t_ms since trial start, late: after the
    trial's time limit, left out by QC), events.csv (payload as JSON), responses.csv (DESIGN.md
    §2: `response_rows`) and stimuli.csv (every image shown: `stimulus_rows`, with the digest of
    its pixels); one row per record, ids to join on, times ISO 8601 UTC, text escaped as in the
    module doc. `source` says human, simulated or imported (SOURCES) in every file."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    in_experiment = select(Participant.id).where(Participant.experiment_id == experiment.id)
    stored = [Participant.id if c == "participant_id" else getattr(Participant, c) for c in PARTICIPANT_COLUMNS]
    source = PARTICIPANT_COLUMNS.index("source")
    tables = {
        "participants": (PARTICIPANT_COLUMNS, (
            [*row[:source], SOURCES.get(row[source], row[source]), *row[source + 1:]] for row in session.execute(
                select(*stored).where(Participant.experiment_id == experiment.id).order_by(Participant.id)))),
        "trials": (["id", "participant_id", "stimulus_id", "pair_id", "side", "method", "task", "block", "block_index",
                    "condition", "position", "is_practice", "status", "started_at", "ended_at", "duration_ms",
                    "display_w", "display_h", "response_text"],
                   (_trial_row(row, experiment.task) for row in session.execute(
                       select(Trial.id, Trial.participant_id, Trial.stimulus_id, Stimulus.pair_id, Stimulus.side,
                              Stimulus.method, Trial.task, Trial.spec, Trial.position, Trial.is_practice, Trial.status,
                              Trial.started_at, Trial.ended_at, Trial.duration_ms, Trial.display_w, Trial.display_h,
                              Trial.response_text)
                       .outerjoin(Stimulus, Stimulus.id == Trial.stimulus_id)
                       .where(Trial.participant_id.in_(in_experiment)).order_by(Trial.participant_id,
                                                                                Trial.position)))),
        "clicks": (["id", "trial_id", "participant_id", "stimulus_id", "x", "y", "t_ms", "display_w", "display_h",
                    "late"],
                   session.execute(
                       select(Click.id, Click.trial_id, Trial.participant_id, Trial.stimulus_id, Click.x, Click.y,
                              Click.t_ms, Click.display_w, Click.display_h, Click.late)
                       .join(Trial, Trial.id == Click.trial_id)
                       .where(Trial.participant_id.in_(in_experiment)).order_by(Click.id))),
        "events": (["id", "participant_id", "trial_id", "kind", "t_ms", "payload", "created_at"],
                   session.execute(
                       select(Event.id, Event.participant_id, Event.trial_id, Event.kind, Event.t_ms, Event.payload,
                              Event.created_at)
                       .where(Event.participant_id.in_(in_experiment)).order_by(Event.id))),
    }
    written = {name: write_csv(out / f"{name}.csv", columns, result) for name, (columns, result) in tables.items()}
    written["responses"] = write_csv(out / "responses.csv", RESPONSE_COLUMNS, response_rows(session, experiment))
    written["stimuli"] = write_csv(out / "stimuli.csv", STIMULUS_COLUMNS, stimulus_rows(session, experiment))
    return written


STIMULUS_COLUMNS = ["stimulus_id", "pair_id", "side", "method", "width", "height", "pixel_sha256", "image"]


def stimulus_rows(session: Session, experiment: Experiment):
    """The rows of stimuli.csv: each image of the experiment with `analysis.eval_pairs.pixel_digest`
    of its file as it is now (the file participants were served; empty when it cannot be read), so
    `gazelab report` can check that a method's images are the ones its evaluation scored."""
    stimuli = session.scalars(select(Stimulus).where(Stimulus.experiment_id == experiment.id).order_by(Stimulus.id))
    for stimulus in stimuli:
        path = stimulus_image_path(stimulus)
        pixels = cv2.imread(str(path), cv2.IMREAD_COLOR)
        digest = pixel_digest(cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB)) if pixels is not None else None
        yield [stimulus.id, stimulus.pair_id, stimulus.side, stimulus.method or "original", stimulus.width,
               stimulus.height, digest, str(path)]


# DESIGN.md §2: one row per questionnaire or CodeCharts response (and BubbleView description),
# then the documented extra columns.
RESPONSE_COLUMNS = ["experiment", "participant_id", "source", "block", "trial_id", "task", "question", "stimulus_id",
                    "pair_id", "side", "condition", "method", "shown_methods", "choice", "rating", "text", "x", "y",
                    "valid", "rt_ms", "created_at", "coord_space", "is_practice", "is_catch", "correct"]
# DESIGN.md §2: participant_id, source and status, the QC decision as stored; then the rest.
PARTICIPANT_COLUMNS = ["participant_id", "source", "status", "qc_status", "qc_reason", "qc_decided_at",
                       "recruit_source", "recruit_id", "study_id", "session_id", "user_agent", "screen_w", "screen_h",
                       "window_w", "window_h", "assignment_seed", "created_at", "last_seen_at", "completed_at",
                       "completion_code"]
SOURCES = {"real": "human"}  # the study export's names (human | simulated | imported) for Participant.source
DESCRIBE_QUESTION = "describe"  # BubbleView's 'describe' mode: the description typed after the bubbles


def response_rows(session: Session, experiment: Experiment):
    """The rows of responses.csv (RESPONSE_COLUMNS), one per answer in answer order, then one per
    BubbleView description (Trial.response_text: task 'bubbleview', question 'describe'; no
    rt_ms, the page does not time it). Per row:
    - stimulus_id, pair_id, side: the image the trial showed (the trial's stimulus; a catch
      trial's image or, choose_best, its input; empty where none of the study's images was
      shown: a CodeCharts sentinel, a BubbleView practice image the page draws itself);
    - block: the design block's name (questionnaires); empty for CodeCharts and BubbleView
      studies, which are a design's only block (a Latin-square block of a design with conditions
      is trials.csv's block_index);
    - method: the version shown ('original' for the input image), or the one the answer chose
      (`Task.response_method`: choose_best's candidate); shown_methods the versions shown,
      |-joined in display order;
    - rt_ms: the answer's own time, from its question appearing (the trial's when the page sent
      one time for all); created_at ISO 8601 UTC;
    - coord_space: the space of x, y, 'image' (pixels of the natural size) or 'display' (CSS px
      of a sentinel's chart), empty without a point; is_practice (tutorial and practice
      trials), is_catch (catch trials and sentinels: a known answer) and correct."""
    stimuli = {s.id: s for s in session.scalars(select(Stimulus).where(Stimulus.experiment_id == experiment.id))}
    answers = session.execute(
        select(Response, Participant.source, Trial.task, Trial.spec, Trial.stimulus_id, Trial.is_practice)
        .join(Participant, Participant.id == Response.participant_id)
        .join(Trial, Trial.id == Response.trial_id)
        .where(Participant.experiment_id == experiment.id).order_by(Response.id))
    for response, source, task, spec, stimulus_id, is_practice in answers:
        spec = spec or {}
        shown = _shown_stimulus(stimuli, stimulus_id, spec)
        method = task_named(response.task).response_method(response, _version(shown, spec))
        shown_methods = response.shown_methods or ([method] if shown is not None else [])
        sentinel = spec.get("kind") == "sentinel"
        coord_space = None if response.x is None else "display" if sentinel else "image"
        yield [experiment.name, response.participant_id, SOURCES.get(source, source),
               _block(task or experiment.task, spec),
               response.trial_id, response.task, response.question, *_where(shown, spec), spec.get("condition"),
               method, "|".join(shown_methods), response.choice, response.rating, response.text, response.x,
               response.y, response.valid, response.rt_ms, response.created_at, coord_space, is_practice,
               bool(spec.get("catch")) or sentinel, response.correct]
    described = session.execute(
        select(Trial, Participant.source)
        .join(Participant, Participant.id == Trial.participant_id)
        .where(Participant.experiment_id == experiment.id, Trial.response_text.is_not(None)).order_by(Trial.id))
    for trial, source in described:
        spec = trial.spec or {}
        shown = _shown_stimulus(stimuli, trial.stimulus_id, spec)
        method = _version(shown, spec)
        yield [experiment.name, trial.participant_id, SOURCES.get(source, source),
               _block(trial.task or experiment.task, spec), trial.id,
               trial.task or experiment.task, DESCRIBE_QUESTION, *_where(shown, spec), spec.get("condition"), method,
               method, None, None, trial.response_text, None, None, bool(trial.response_text.strip()), None,
               trial.ended_at, None, trial.is_practice, False, None]


def _shown_stimulus(stimuli: dict[int, Stimulus], stimulus_id: int | None, spec: dict) -> Stimulus | None:
    """The image a trial showed: its stimulus; a catch trial (no stimulus: it counts for nobody's
    observers) the image of its spec, or for choose_best its input; None for a sentinel."""
    shown = stimulus_id or spec.get("image") or (spec.get("reference") or {}).get("input")
    return stimuli.get(shown) if shown is not None else None


def _where(shown: Stimulus | None, spec: dict) -> list:
    """stimulus_id, pair_id, side of the shown image (the spec's pair without one)."""
    if shown is None:
        return [None, spec.get("pair_id"), None]
    return [shown.id, shown.pair_id, shown.side]


def _version(shown: Stimulus | None, spec: dict) -> str | None:
    """The version of the image shown: its method, 'original' for the input (as stimuli.csv)."""
    if spec.get("method"):
        return spec["method"]
    return (shown.method or "original") if shown is not None else None


def _block(task: str, spec: dict) -> str | None:
    """The design block's name (`Task.block_name`): questionnaire trials keep it in their spec; a
    codecharts or bubbleview study is a design's only block (its spec's block, where there is
    one, is the Latin-square block's index, not a name)."""
    return task_named(task).block_name(spec)


def _trial_row(row, experiment_task: str) -> list:
    """A trials.csv row: the version shown ('original' for the input), the trial's task (the
    experiment's when empty), the design block's name, block_index (`Task.block_index`: the
    block's place among the participant's: the design's order in a questionnaire, the
    Latin-square block in a design with conditions) and the condition."""
    head, (method, task, spec), tail = row[:5], row[5:8], row[8:]
    spec = spec or {}
    own = task or experiment_task
    return [*head, (method or "original") if row[2] is not None else None, task, _block(own, spec),
            task_named(own).block_index(spec), spec.get("condition"), *tail]


def spreadsheet_cell(value):
    """`value` as a CSV cell a spreadsheet shows and never runs: None → '', dict and list →
    JSON text, a datetime → ISO 8601 UTC text (naive ones are UTC, as every DateTime column
    holds them), text escaped as in the module doc, numbers (and everything else) as they are."""
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        value = json.dumps(value)
    if isinstance(value, dt.datetime):
        value = (value.replace(tzinfo=dt.timezone.utc) if value.tzinfo is None else value
                 .astimezone(dt.timezone.utc)).isoformat()
    if isinstance(value, str) and value.startswith(ESCAPED_PREFIXES):
        return "'" + value
    return value


def write_csv(path: Path, header: list[str], rows) -> Path:
    """Write a CSV of `rows` (sequences of values) with every cell through `spreadsheet_cell`,
    text quoted and numbers bare (module doc), atomically (temp file + rename: a crash never
    leaves half a table), mode 0666 & ~umask."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = temp_file_beside(path)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            # QUOTE_NONNUMERIC: with lineterminator "\n", QUOTE_MINIMAL leaves a bare CR unquoted.
            writer = csv.writer(handle, lineterminator="\n", quoting=csv.QUOTE_NONNUMERIC)
            writer.writerow([spreadsheet_cell(v) for v in header])
            writer.writerows([spreadsheet_cell(v) for v in row] for row in rows)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _staging(target: Path) -> Path:
    """A hidden temporary name beside `target`, with its suffix (save_map picks the format by it)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    return target.with_name(f".{target.stem}.{secrets.token_hex(4)}.staged{target.suffix}")


def _kl_xy(dataset, row, pair: str, new_maps: dict) -> float | None:
    """KLD(Y, X) of the pair's maps after the export: the new map of a side written now, else
    the side's map file in pairs.csv; None when a side has no map."""
    maps = {}
    for side in ("x", "y"):
        if (pair, side) in new_maps:
            maps[side] = new_maps[pair, side].density_array()
        elif row[f"{side}_map"]:
            try:
                maps[side] = load_map(dataset.path / row[f"{side}_map"])
            except ValueError as exc:
                raise ValueError(f"pair {pair}: cannot recompute kl_xy: {exc}; fix or clear its {side}_map"
                                 " column in pairs.csv") from exc
        else:
            return None
    return kld(maps["y"], maps["x"])


def _fixations(session: Session, experiment: Experiment, sides) -> dict[tuple[str, str], list]:
    """{(pair, side): fixations CSV rows} from each map's stored points; maps built before
    points were stored (revision 0003) get theirs from a new QC run, which says so in the log."""
    out = {}
    qc = None
    for (pair, side), fixation_map in sides:
        points = fixation_map.points_array()
        if points is None:
            if qc is None:
                qc = run_qc(session, experiment)
            log.warning("the map of %s_%s (built %s) predates stored points: its fixations come from a new QC"
                        " run, which may differ from the map; run `gazelab study build-maps %s` to store them",
                        pair, side, fixation_map.built_at, experiment.name)
            points = _points_from_qc(qc, fixation_map)
        out[pair, side] = [(int(p), x, y, t) for p, x, y, t in points.tolist()]
    return out


def _points_from_qc(qc, fixation_map: FixationMap) -> np.ndarray:
    keep = (qc.stimulus_id == fixation_map.stimulus_id) & np.isin(qc.participant_id, fixation_map.participant_ids)
    return np.column_stack([qc.participant_id[keep], qc.x[keep], qc.y[keep], qc.t_ms[keep]]).astype(np.float64)
