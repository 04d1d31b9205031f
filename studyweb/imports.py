"""Eye-tracker fixations (e.g. an EyeLink fixation report) into an experiment, stored as
participants with source='imported' and turned into maps like every other participant's clicks.

The CSV (UTF-8, header row; header names are matched without case or surrounding spaces) has
one fixation per row: `image, participant, x, y, t_ms` and optionally `duration_ms`; other
columns are ignored (and listed in the summary). x, y are image pixels at the stimulus' natural
size (x right, y down, pixel i covering [i, i + 1)), or screen pixels when a `DisplayGeometry`
says where the image was drawn; t_ms is the fixation's start in ms since the image appeared.

`image` names a stimulus of the experiment, tried in this order: the image path as stored
(`images/000001_x.png`, also with backslashes), a path ending in its file name
(`000001_x.png`, `C:\\stimuli\\000001_x.png`), or its label `PAIRID_side` — also as the stem
of another file name (`000001_x.bmp`: eye-tracking software often shows a converted copy). A
name that fits more than one stimulus is matched by none of them.

Storage, per distinct `participant` value: a Participant (source 'imported', recruit_source
'anonymous', recruit_id 'import:<value>', status 'complete') with one 'fixation_import' Event
(payload: the file's name and SHA-256, the participant value, the geometry); per (participant,
image) a saved, non-practice Trial (positions 1, 2, ... in the file's order; duration_ms the end
of its last fixation, max(t_ms + duration_ms)); per fixation inside the image a Click (x, y in
image pixels, t_ms). Click has no duration column, so with `duration_ms` each trial gets one
'fixation_durations' Event whose payload pairs them: {"click_ids": [...], "duration_ms": [...]}
(null for an empty cell). With a geometry, trials and clicks record the drawn size as
display_w/h and the participant the screen size.

Rows are dropped, counted and reported, never silently, for the first reason that applies:
bad values (x, y or t_ms not finite numbers, t_ms < 0, duration_ms given but not a number >= 0,
empty image or participant), an unknown image, a point outside the image (after conversion).
A file with a missing column, or with nothing left to store, is refused with a ValueError.

QC: imported participants go through `studyweb.qc` like the rest when maps are built — every
fixation counts as a click, so a trial with fewer than qc.min_clicks fixations is dropped (the
summary counts them beforehand), and the IQR rule compares mean fixations per trial with the
other participants' mean clicks per trial. An eye tracker records about 3 fixations per second,
so in an experiment that mixes imported participants with BubbleView clicks, compare the
summary's mean_fixations_per_trial with the clicks per trial before trusting the IQR rule.

Re-import: participants are recognised by recruit_id. Importing a participant this experiment
already imported is refused unless replace=True, which first deletes those participants (all of
their trials, clicks and events, from whichever file), so one participant's fixations belong
in one file.
"""
from __future__ import annotations

import hashlib
import io
import logging
import math
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from studyweb.db.engine import lock_experiment
from studyweb.db.schema import Click, Event, Experiment, Participant, SaveRecord, Stimulus, Trial, utcnow

log = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("image", "participant", "x", "y", "t_ms")
DURATION_COLUMN = "duration_ms"
RECRUIT_PREFIX = "import:"
IMPORT_EVENT = "fixation_import"
DURATIONS_EVENT = "fixation_durations"
MAX_PARTICIPANT_CHARS = 128 - len(RECRUIT_PREFIX)  # Participant.recruit_id is String(128)
EXAMPLES = 5  # unknown images and bad lines listed in the summary


@dataclass(frozen=True)
class DisplayGeometry:
    """Where each image was drawn on the eye tracker's screen, all in screen pixels: the
    screen's size and the drawn image's top-left corner and size. ValueError for sizes that
    are not positive or a rectangle that does not fit on the screen."""

    screen_w: float
    screen_h: float
    image_x: float
    image_y: float
    image_w: float
    image_h: float

    def __post_init__(self) -> None:
        values = asdict(self)
        for key, value in values.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"display geometry {key} must be a finite number, got {value!r}")
        for key in ("screen_w", "screen_h", "image_w", "image_h"):
            if values[key] <= 0:
                raise ValueError(f"display geometry {key} must be > 0, got {values[key]!r}")
        if (self.image_x < 0 or self.image_y < 0 or self.image_x + self.image_w > self.screen_w
                or self.image_y + self.image_h > self.screen_h):
            raise ValueError(f"image rectangle {self.image_x:g},{self.image_y:g},{self.image_w:g},{self.image_h:g}"
                             f" (X,Y,W,H) does not fit on the {self.screen_w:g}x{self.screen_h:g} screen")

    def to_image(self, x, y, width, height) -> tuple[np.ndarray, np.ndarray]:
        """Screen pixels (x, y) → image pixels of an image `width` x `height` at natural size
        (arrays broadcast): the drawn rectangle's origin subtracted, scaled by natural/drawn."""
        x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
        return ((x - self.image_x) * np.asarray(width, np.float64) / self.image_w,
                (y - self.image_y) * np.asarray(height, np.float64) / self.image_h)

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def import_fixations(session: Session, experiment: Experiment, csv_path, *,
                     geometry: DisplayGeometry | None = None, replace: bool = False) -> dict:
    """Store the fixations in the CSV at `csv_path` as imported participants of `experiment`
    (see the module doc for the file, the storage and the drop rules). Flushes; the caller
    commits. Nothing is ever half-stored: problems with the file (ValueError) are raised before
    anything is written, and an error while storing (the refused re-import without `replace`,
    a database error) rolls the session back, so run it in a session without other pending work.

    Returns {"experiment", "file", "rows", "participants", "trials", "fixations" (stored),
    "dropped": {"bad_values", "unknown_image", "outside_image"}, "unknown_images" and
    "bad_value_lines" (the first few; line 1 is the header), "images_matched", "stimuli",
    "replaced_participants", "min_clicks", "trials_below_min_clicks", "mean_fixations_per_trial",
    "has_durations", "ignored_columns", "geometry"}.
    """
    path = Path(csv_path)
    data = path.read_bytes()
    table, ignored = _read_table(data, path)
    rows = _parse_rows(table, path)
    bad = rows["bad"]

    stimuli = list(experiment.stimuli)
    index = _stimulus_index(stimuli)
    lookup = {name: _match(name, index) for name in pd.unique(rows["image"][~bad])}
    stimulus = np.array([None if is_bad else lookup[name] for name, is_bad in zip(rows["image"], bad)], dtype=object)
    unknown = ~bad & np.array([s is None for s in stimulus], bool)
    matched = ~bad & ~unknown
    if not matched.any():
        seen = ", ".join(repr(name) for name in list(dict.fromkeys(rows["image"][unknown]))[:EXAMPLES])
        example = stimuli[0] if stimuli else None
        expected = (f"e.g. {example.image_path!r}, {PurePosixPath(example.image_path).name!r} or {example.label!r}"
                    if example else "none: the experiment has no stimuli")
        raise ValueError(f"no image in {path} is a stimulus of experiment {experiment.name!r}: got {seen};"
                         f" expected {expected}")

    width = np.array([s.width if s is not None else 1 for s in stimulus], np.float64)
    height = np.array([s.height if s is not None else 1 for s in stimulus], np.float64)
    x, y = rows["x"], rows["y"]
    if geometry is not None:
        x, y = geometry.to_image(x, y, width, height)
    inside = matched & (x >= 0) & (x < width) & (y >= 0) & (y < height)
    outside = matched & ~inside
    if not inside.any():
        hint = ("check --screen and --image-rect" if geometry is not None
                else "if they are screen pixels, give the display geometry (--screen, --image-rect)")
        raise ValueError(f"all {int(matched.sum())} fixation(s) on the experiment's images in {path} lie outside"
                         f" the images; {hint}")
    too_long = [p for p in pd.unique(rows["participant"][matched]) if len(p) > MAX_PARTICIPANT_CHARS]
    if too_long:
        raise ValueError(f"participant {too_long[0][:40]!r}... in {path} is longer than {MAX_PARTICIPANT_CHARS}"
                         " characters")

    fixations = pd.DataFrame({
        "participant": rows["participant"][matched], "stimulus": stimulus[matched], "x": x[matched],
        "y": y[matched], "t_ms": rows["t_ms"][matched], "duration_ms": rows["duration_ms"][matched],
        "inside": inside[matched],
    })
    provenance = {"file": path.name, "sha256": hashlib.sha256(data).hexdigest(),
                  "geometry": geometry.as_dict() if geometry is not None else None}
    try:
        lock_experiment(session, experiment.id)  # two imports at once cannot both pass the check below
        previous = _previous_imports(session, experiment, fixations["participant"].unique())
        if previous and not replace:
            names = ", ".join(repr(r.removeprefix(RECRUIT_PREFIX)) for r in list(previous.values())[:EXAMPLES])
            raise ValueError(f"{len(previous)} participant(s) in {path.name} were already imported into experiment"
                             f" {experiment.name!r} ({names}); pass replace=True (--replace) to replace them")
        _delete_participants(session, list(previous))
        stored = _store(session, experiment, fixations, geometry, provenance, rows["has_durations"])
        session.flush()
    except Exception:
        session.rollback()
        raise

    min_clicks = int({"min_clicks": 2, **experiment.settings.get("qc", {})}["min_clicks"])
    per_trial = stored["fixations_per_trial"]
    summary = {
        "experiment": experiment.name, "file": str(path), "rows": len(bad),
        "participants": stored["participants"], "trials": len(per_trial), "fixations": int(sum(per_trial)),
        "dropped": {"bad_values": int(bad.sum()), "unknown_image": int(unknown.sum()),
                    "outside_image": int(outside.sum())},
        "unknown_images": list(dict.fromkeys(rows["image"][unknown]))[:EXAMPLES],
        "bad_value_lines": [int(i) + 2 for i in np.flatnonzero(bad)[:EXAMPLES]],
        "images_matched": len({s.id for s in stimulus[matched]}), "stimuli": len(stimuli),
        "replaced_participants": len(previous),
        "min_clicks": min_clicks, "trials_below_min_clicks": sum(n < min_clicks for n in per_trial),
        "mean_fixations_per_trial": round(float(np.mean(per_trial)), 2),
        "has_durations": rows["has_durations"], "ignored_columns": ignored,
        "geometry": provenance["geometry"],
    }
    log.info("imported %d fixations of %d participants from %s into %s (%s dropped)", summary["fixations"],
             summary["participants"], path, experiment.name, summary["dropped"])
    return summary


def _read_table(data: bytes, path: Path) -> tuple[pd.DataFrame, list[str]]:
    """The CSV as strings, with normalised header names; ValueError naming the missing columns."""
    try:
        table = pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise ValueError(f"cannot read {path} as a UTF-8 CSV with a header row: {str(exc).splitlines()[0]}") from exc
    table.columns = [str(c).strip().lower() for c in table.columns]
    missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"{path} lacks column(s) {', '.join(missing)}; expected {', '.join(REQUIRED_COLUMNS)}"
                         f" (and optionally {DURATION_COLUMN}), found {', '.join(table.columns) or 'none'}")
    if table.empty:
        raise ValueError(f"{path} has a header but no fixation rows")
    known = (*REQUIRED_COLUMNS, DURATION_COLUMN)
    return table, [c for c in table.columns if c not in known]


def _parse_rows(table: pd.DataFrame, path: Path) -> dict:
    """Columns as arrays (numbers as float64, NaN where not a number) and the `bad` row mask;
    ValueError when every row is bad."""
    def number(column: str) -> np.ndarray:
        return pd.to_numeric(table[column].str.strip(), errors="coerce").to_numpy(np.float64, na_value=np.nan)

    image = table["image"].str.strip().to_numpy(object)
    participant = table["participant"].str.strip().to_numpy(object)
    x, y, t_ms = number("x"), number("y"), number("t_ms")
    bad = ~(np.isfinite(x) & np.isfinite(y) & np.isfinite(t_ms)) | (image == "") | (participant == "")
    bad |= np.isfinite(t_ms) & (t_ms < 0)
    has_durations = DURATION_COLUMN in table.columns
    duration = np.full(len(table), np.nan)
    if has_durations:
        duration = number(DURATION_COLUMN)
        given = (table[DURATION_COLUMN].str.strip() != "").to_numpy(bool)
        bad |= given & ~(np.isfinite(duration) & (np.nan_to_num(duration, nan=-1.0) >= 0))
    if bad.all():
        lines = ", ".join(str(i + 2) for i in range(min(EXAMPLES, len(bad))))
        raise ValueError(f"no row of {path} has an image, a participant and numeric x, y, t_ms >= 0"
                         f" (lines {lines}, ...)")
    return {"image": image, "participant": participant, "x": x, "y": y, "t_ms": t_ms,
            "duration_ms": duration, "has_durations": has_durations, "bad": bad}


def _stimulus_index(stimuli: list[Stimulus]) -> dict[str, Stimulus | None]:
    """{name: stimulus} for each stimulus' stored path, file name and label; a name shared by
    two stimuli maps to None (ambiguous)."""
    index: dict[str, Stimulus | None] = {}
    for stimulus in stimuli:
        path = stimulus.image_path.replace("\\", "/")
        for name in {stimulus.image_path, path, PurePosixPath(path).name, stimulus.label}:
            index[name] = stimulus if index.get(name, stimulus) is stimulus else None
    return index


def _match(name: str, index: dict[str, Stimulus | None]) -> Stimulus | None:
    """The stimulus `name` refers to (see the module doc), or None (also when the first form
    of it that is known is ambiguous: a shorter form must not pick one of the candidates)."""
    path = name.replace("\\", "/").removeprefix("./")
    file_name = PurePosixPath(path).name
    for candidate in (name, path, file_name, PurePosixPath(file_name).stem):
        if candidate in index:
            return index[candidate]
    return None


def _previous_imports(session: Session, experiment: Experiment, participants) -> dict[int, str]:
    """{participant id: recruit id} of this experiment's imported participants with these values."""
    recruit_ids = [RECRUIT_PREFIX + p for p in participants]
    return dict(session.execute(
        select(Participant.id, Participant.recruit_id)
        .where(Participant.experiment_id == experiment.id, Participant.source == "imported",
               Participant.recruit_id.in_(recruit_ids))
        .order_by(Participant.id)).all())


def _delete_participants(session: Session, participant_ids: list[int]) -> None:
    """Delete participants and everything of theirs, child tables first (so it does not depend
    on the database enforcing ON DELETE CASCADE)."""
    if not participant_ids:
        return
    trial_ids = select(Trial.id).where(Trial.participant_id.in_(participant_ids)).scalar_subquery()
    for statement in (delete(Click).where(Click.trial_id.in_(trial_ids)),
                      delete(Event).where(Event.participant_id.in_(participant_ids)),
                      delete(SaveRecord).where(SaveRecord.participant_id.in_(participant_ids)),
                      delete(Trial).where(Trial.participant_id.in_(participant_ids)),
                      delete(Participant).where(Participant.id.in_(participant_ids))):
        session.execute(statement.execution_options(synchronize_session=False))
    session.expire_all()  # ORM objects loaded before may point at deleted rows


def _store(session: Session, experiment: Experiment, fixations: pd.DataFrame, geometry: DisplayGeometry | None,
           provenance: dict, has_durations: bool) -> dict:
    """Add the participants, trials, clicks and events (module doc); the number of participants
    and the stored fixations per trial."""
    now = utcnow()
    drawn = (geometry.image_w, geometry.image_h) if geometry is not None else (None, None)
    screen = (int(geometry.screen_w), int(geometry.screen_h)) if geometry is not None else (None, None)
    per_trial: list[int] = []
    n_participants = 0
    for value, rows in fixations.groupby("participant", sort=False):
        participant = Participant(
            experiment_id=experiment.id, source="imported", recruit_source="anonymous",
            recruit_id=RECRUIT_PREFIX + value, status="complete", completed_at=now, last_seen_at=now,
            screen_w=screen[0], screen_h=screen[1])
        session.add(participant)
        session.flush()
        session.add(Event(participant_id=participant.id, kind=IMPORT_EVENT,
                          payload={**provenance, "participant": value}))
        trials: list[tuple[Trial, list[Click], list[float | None]]] = []
        for position, (_, views) in enumerate(rows.groupby(rows["stimulus"].map(id), sort=False), start=1):
            views = views.sort_values("t_ms", kind="stable")
            end = float((views["t_ms"] + views["duration_ms"].fillna(0.0)).max())
            trial = Trial(participant_id=participant.id, stimulus_id=views["stimulus"].iloc[0].id,
                          position=position, is_practice=False, status="done", duration_ms=end,
                          display_w=drawn[0], display_h=drawn[1])
            kept = views[views["inside"]]
            clicks = [Click(x=float(r.x), y=float(r.y), t_ms=float(r.t_ms), display_w=drawn[0], display_h=drawn[1])
                      for r in kept.itertuples(index=False)]
            trial.clicks = clicks
            session.add(trial)
            durations = [None if math.isnan(d) else float(d) for d in kept["duration_ms"]]
            trials.append((trial, clicks, durations))
            per_trial.append(len(clicks))
        session.flush()
        if has_durations:
            session.add_all(
                Event(participant_id=participant.id, trial_id=trial.id, kind=DURATIONS_EVENT,
                      payload={"click_ids": [c.id for c in clicks], "duration_ms": durations})
                for trial, clicks, durations in trials if clicks)
        n_participants += 1
    return {"participants": n_participants, "fixations_per_trial": per_trial}
