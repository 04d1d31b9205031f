"""CodeCharts studies in the database: the settings, a participant's trials, and the answers.

A CodeCharts experiment (task "codecharts") shows each image at a fixed size: display_w =
min(display_width_px, natural width × max_upscale) CSS px, the height in proportion; the chart
(`studyweb.codecharts`) is generated at that size from a seed stored in the trial's spec, so the
server rebuilds exactly what the browser drew to check a typed code. The page draws the image and
chart smaller to fit a small window, but never with codes under codecharts.MIN_CODE_PX
(`least_shown_size`), and an image whose codes would be smaller at its shown size is refused when
the experiment is created (`check_stimuli`). A participant gets:

1. the tutorial (is_practice trials): 3 images (from pairs outside their own set where possible)
   and 3 sentinels, gated by `codecharts.tutorial_passed` (≤ 1 invalid code, no missed
   sentinel). A participant who fails is screened out (`screening.screen_out`: the
   screened-out page and code; their main trials are removed, so their slots go to others) and
   QC excludes them (an event 'tutorial_failed'). After each tutorial answer the page shows how
   it went (`tutorial_feedback`: the code at a sentinel's dot, say);
2. their K images with about one sentinel in `sentinel_every` trials between them
   (`codecharts.trial_plan`), each image shown for one of the experiment's image durations.

An answer to an image trial whose code is on the chart becomes one gaze point: a Click at the
code's position in image pixels of the natural size, at t_ms = the image duration, so the
fixation maps are built from gaze points exactly as from BubbleView's clicks. Every answer is
a Response row (question 'code'): the code as typed and normalised, valid, correct for
sentinels, the point, rt_ms. A sentinel is judged here from the trial's stored spec; the page
gets its screen as a picture, never its target's position (`codecharts.to_json`).
"""
from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from studyweb import codecharts
from studyweb.db.schema import Click, Event, Participant, Response, Stimulus, Trial, utcnow
from studyweb.screening import screen_out

log = logging.getLogger(__name__)
TASK = "codecharts"
DEFAULTS: dict[str, Any] = {
    "fixation_ms": 750, "image_ms": [2000], "chart_ms": 400, "sentinel_every": codecharts.SENTINEL_EVERY,
    "tutorial": True, "sentinel_radius_px": codecharts.SENTINEL_RADIUS_PX,
}
QC_DEFAULTS = {"min_clicks": 1, "iqr_k": None}  # one gaze point per trial: the click-count rules do not apply


def validate_settings(value: dict | None) -> dict[str, Any]:
    """The experiment's `codecharts` settings: DEFAULTS updated with `value`; ValueError names a
    bad key and what was expected."""
    value = dict(value or {})
    unknown = sorted(set(value) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"unknown codecharts settings {unknown}; expected some of {sorted(DEFAULTS)}")
    merged = {**DEFAULTS, **{k: v for k, v in value.items() if v is not None}}
    timing = codecharts.Timing.from_dict({k: merged[k] for k in ("fixation_ms", "image_ms", "chart_ms")})
    merged.update(timing.as_dict())
    merged["image_ms"] = list(timing.image_ms)  # JSON keeps lists
    every = merged["sentinel_every"]
    if not isinstance(every, int) or isinstance(every, bool) or every < 2:
        raise ValueError(f"codecharts.sentinel_every must be an integer >= 2 (trials per sentinel), got {every!r}")
    if not isinstance(merged["tutorial"], bool):
        raise ValueError(f"codecharts.tutorial must be true or false, got {merged['tutorial']!r}")
    radius = merged["sentinel_radius_px"]
    if isinstance(radius, bool) or not isinstance(radius, (int, float)) or not radius > 0:
        raise ValueError(f"codecharts.sentinel_radius_px must be a number > 0 (display px), got {radius!r}")
    return merged


def shown_size(width: int, height: int, settings: dict) -> tuple[float, float]:
    """The size (CSS px) a width x height image is shown at: display_width_px, but never more
    than max_upscale x its natural size; the height in proportion (rounded to 0.01 px)."""
    shown_w = min(float(settings["display_width_px"]), float(settings["max_upscale"]) * width)
    return round(shown_w, 2), round(shown_w * height / width, 2)


def least_shown_size(width: int, height: int, settings: dict) -> tuple[float, float]:
    """The smallest size (CSS px) the task page draws a width x height image at: its shown size,
    scaled down to fit the window only as far as codes MIN_CODE_PX high allow
    (`codecharts.least_scale`, static/codecharts.js `fitStage`)."""
    w, h = shown_size(width, height, settings)
    scale = codecharts.least_scale(h)
    return w * scale, h * scale


def check_stimuli(stimuli: list[Stimulus], settings: dict) -> None:
    """ValueError when an image would be shown too small to hold a legible chart: its codes
    (FONT_FRAC of the shown height) under codecharts.MIN_CODE_PX, or no chart at all."""
    least_h = math.ceil(codecharts.MIN_CODE_PX / codecharts.FONT_FRAC)
    for stimulus in stimuli:
        w, h = shown_size(stimulus.width, stimulus.height, settings)
        font = codecharts.FONT_FRAC * h
        try:
            codecharts.generate_chart(w, h, 0)
            if font < codecharts.MIN_CODE_PX:
                raise ValueError(f"its codes would be {font:.2f} px high, under the {codecharts.MIN_CODE_PX:g} px"
                                 f" minimum (a shown height of at least {least_h} px: display_width_px at least"
                                 f" {math.ceil(least_h * stimulus.width / stimulus.height)} and max_upscale at least"
                                 f" {math.ceil(100 * least_h / stimulus.height) / 100:g})")
        except ValueError as exc:
            raise ValueError(f"image {stimulus.image_path} ({stimulus.width}x{stimulus.height}) would be shown at"
                             f" {w:g}x{h:g} CSS px, too small for a code chart: {exc}; raise display_width_px"
                             " or max_upscale") from None


def build_trials(participant: Participant, chosen: list[Stimulus], all_stimuli: list[Stimulus],
                 settings: dict, rng: np.random.Generator) -> list[Trial]:
    """A participant's trials: the tutorial (practice) and then `chosen` (already in order) with
    sentinels between them. Not added to a session."""
    cc = settings[TASK]
    new_seed = lambda: int(rng.integers(0, 2**53))  # noqa: E731 — exact in a JSON number, as the browser reads it
    plan_seed = new_seed()
    sizes = [shown_size(s.width, s.height, settings) for s in chosen] or [(800.0, 600.0)]
    typical = sizes[len(sizes) // 2]
    trials: list[Trial] = []

    def add(kind: str, stimulus: Stimulus | None, tutorial: bool, size: tuple[float, float]) -> None:
        spec = {"kind": kind, "seed": new_seed(), "image_ms": int(rng.choice(cc["image_ms"])),
                "tutorial": tutorial, "display_w": size[0], "display_h": size[1]}
        trials.append(Trial(participant_id=participant.id, stimulus_id=stimulus.id if stimulus else None,
                            position=len(trials), is_practice=tutorial, task=TASK, spec=spec))

    main_plan = codecharts.trial_plan(len(chosen), plan_seed, cc["sentinel_every"])
    if cc["tutorial"]:
        pool = _tutorial_images(all_stimuli, chosen, codecharts.TUTORIAL_IMAGES, rng)
        images = iter(pool)
        tutorial_plan = codecharts.tutorial_plan(plan_seed)
        k = 0
        while main_plan[:1] == ("sentinel",) and tutorial_plan[-1] == "sentinel":
            k += 1  # never two sentinels in a row where the tutorial meets the main trials
            tutorial_plan = codecharts.tutorial_plan(plan_seed + k)
        for kind in tutorial_plan:
            stimulus = next(images) if kind == "image" else None
            add(kind, stimulus, True, shown_size(stimulus.width, stimulus.height, settings) if stimulus else typical)
    images = iter(chosen)
    for kind in main_plan:
        stimulus = next(images) if kind == "image" else None
        add(kind, stimulus, False, shown_size(stimulus.width, stimulus.height, settings) if stimulus else typical)
    return trials


def chart_of(trial: Trial, settings: dict) -> codecharts.Chart | codecharts.SentinelTrial:
    """What the trial's chart screen showed (rebuilt from its spec)."""
    spec = trial.spec
    return codecharts.from_seed(spec["display_w"], spec["display_h"], spec["seed"], spec["kind"],
                                settings[TASK]["sentinel_radius_px"])


def trial_json(trial: Trial, settings: dict) -> dict:
    """What the task page needs for a CodeCharts trial (besides the URLs the API adds)."""
    cc = settings[TASK]
    spec = trial.spec
    return {"task": TASK, "kind": spec["kind"], "tutorial": spec["tutorial"], "display_w": spec["display_w"],
            "display_h": spec["display_h"], "min_code_px": codecharts.MIN_CODE_PX, "fixation_ms": cc["fixation_ms"],
            "image_ms": spec["image_ms"], "chart_ms": cc["chart_ms"]}


def record_answer(session: Session, participant: Participant, trial: Trial, answer: dict, key: str) -> dict:
    """Store a typed code for `trial` (answer: {code, rt_ms}); the trial ends. The caller has
    claimed `key` and commits. Returns {valid, correct, status, tutorial}: correct for
    sentinels, tutorial the gate's verdict ({passed, reason}) when this answer ended it."""
    settings = participant.experiment.settings
    spec = trial.spec
    item = chart_of(trial, settings)
    chart = item.chart if isinstance(item, codecharts.SentinelTrial) else item
    code = codecharts.normalise_code(answer["code"])
    stimulus = trial.stimulus
    point = codecharts.code_position(chart, code, image_size=(stimulus.width, stimulus.height) if stimulus else None)
    correct = None
    if isinstance(item, codecharts.SentinelTrial):
        correct = codecharts.sentinel_correct(chart, item.target, code, item.radius_px)
    now = utcnow()
    session.add(Response(
        participant_id=participant.id, trial_id=trial.id, task=TASK, question="code", choice=code,
        text=answer["code"], x=point[0] if point else None, y=point[1] if point else None, valid=point is not None,
        correct=correct, rt_ms=answer["rt_ms"], idempotency_key=key, created_at=now,
        payload={"kind": spec["kind"], "tutorial": spec["tutorial"], "units": "image px" if stimulus else "display px"},
    ))
    if point is not None and stimulus is not None:
        session.add(Click(trial_id=trial.id, x=point[0], y=point[1], t_ms=spec["image_ms"],
                          display_w=spec["display_w"], display_h=spec["display_h"], idempotency_key=key))
    trial.status, trial.ended_at = "done", now
    trial.started_at = trial.started_at or now
    trial.display_w, trial.display_h = spec["display_w"], spec["display_h"]
    trial.duration_ms = spec["image_ms"]
    session.flush()
    verdict = _advance(session, participant, trial)
    return {"valid": point is not None, "correct": correct, "status": participant.status, "tutorial": verdict}


def tutorial_feedback(session: Session, trial: Trial) -> dict | None:
    """What the answer to a tutorial trial showed, for the page to tell the participant: {kind,
    code (as typed, normalised), valid (on the chart), correct (sentinels: within the radius of
    the dot), expected (sentinels: the code nearest the dot)}; None before it is answered."""
    response = session.scalars(select(Response).where(Response.trial_id == trial.id, Response.question == "code")
                               ).first()
    if response is None:
        return None
    feedback = {"kind": trial.spec["kind"], "code": response.choice, "valid": bool(response.valid),
                "correct": response.correct, "expected": None}
    item = chart_of(trial, trial.participant.experiment.settings)
    if isinstance(item, codecharts.SentinelTrial):
        chart, (tx, ty) = item.chart, item.target
        nearest = min(range(len(chart.codes)), key=lambda i: (chart.xs[i] - tx) ** 2 + (chart.ys[i] - ty) ** 2)
        feedback["expected"] = chart.codes[nearest]
    return feedback


def _advance(session: Session, participant: Participant, trial: Trial) -> dict | None:
    """Move the participant on after a trial ended: the tutorial's last answer applies the gate
    (pass: the main trials; fail: screened out, main trials removed, an event for QC); the last
    main trial leads to the debrief."""
    open_trials = session.execute(
        select(Trial.is_practice, func.count()).where(Trial.participant_id == participant.id, Trial.status != "done")
        .group_by(Trial.is_practice)).all()
    open_by_kind = {bool(practice): n for practice, n in open_trials}
    verdict = None
    if trial.is_practice and not open_by_kind.get(True):
        passed, reason = codecharts.tutorial_passed(_tutorial_results(session, participant))
        verdict = {"passed": passed, "reason": reason}
        if not passed:
            session.execute(delete(Trial).where(Trial.participant_id == participant.id, Trial.status != "done",
                                                Trial.is_practice.is_(False)))
            session.add(Event(participant_id=participant.id, kind="tutorial_failed", payload={"reason": reason}))
            screen_out(session, participant, "tutorial", reason)
            return verdict
    if participant.status in ("instructions", "practice", "trials"):
        if not open_by_kind.get(False) and not open_by_kind.get(True):
            participant.status = "debrief"
        elif not open_by_kind.get(True):
            participant.status = "trials"
    return verdict


def _tutorial_results(session: Session, participant: Participant) -> list[tuple[str, bool, bool | None]]:
    rows = session.execute(
        select(Response.payload, Response.valid, Response.correct).join(Trial, Trial.id == Response.trial_id)
        .where(Response.participant_id == participant.id, Trial.is_practice.is_(True), Response.task == TASK)
    ).all()
    return [(payload["kind"], bool(valid), correct) for payload, valid, correct in rows]


def _tutorial_images(stimuli: list[Stimulus], chosen: list[Stimulus], n: int, rng) -> list[Stimulus]:
    """n stimuli for the tutorial, from pairs the participant will not see where possible
    (tutorial answers never enter a map), then any others, repeating if there are too few."""
    pairs = {s.pair_id for s in chosen}
    mine = {s.id for s in chosen}
    elsewhere = [s for s in stimuli if s.pair_id not in pairs] or [s for s in stimuli if s.id not in mine] or stimuli
    order = [elsewhere[i] for i in rng.permutation(len(elsewhere))]
    return [order[i % len(order)] for i in range(n)]
