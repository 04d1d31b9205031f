"""CodeCharts studies (TurkEyes: Newman et al., CHI 2020) in the database: the settings, a
participant's trials, and the answers; the task's plug-in (`CodeCharts`). The charts themselves
are `studyweb.codecharts` (pure: no database). The page: templates/tasks/codecharts.html,
static/codecharts_flow.js and static/codecharts.js.

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
from studyweb.design_checks import MAX_CHOICES, MAX_COUNT, MAX_MS
from studyweb.screening import screen_out
from studyweb.settings import DEFAULT_QC
from studyweb.tasks.attention import AttentionTask
from studyweb.tasks.registry import register
from studyweb.tasks.wording import about_images, count

log = logging.getLogger(__name__)
TASK = "codecharts"
DEFAULTS: dict[str, Any] = {
    "fixation_ms": 750, "image_ms": [2000], "chart_ms": 400, "sentinel_every": codecharts.SENTINEL_EVERY,
    "tutorial": True, "sentinel_radius_px": codecharts.SENTINEL_RADIUS_PX,
}
QC_DEFAULTS = {"min_clicks": 1, "iqr_k": None}  # one gaze point per trial: the click-count rules do not apply
PAGE_MARGINS = (24, 64)  # static/codecharts_flow.js MARGIN_W, MARGIN_H: padding and status line, CSS px


@register
class CodeCharts(AttentionTask):
    """The CodeCharts task (module doc): its settings under the experiment's `codecharts`."""

    name = study = TASK
    block_keys = frozenset({"name", "task", "image", "codecharts", "display_width_px", "max_upscale"})
    answer_shape = "code"
    has_tutorial = True
    settings_key = "codecharts"
    template = "tasks/codecharts.html"
    scripts = ("codecharts_flow.js", "codecharts.js")
    answer_s = 3.0

    def check_settings(self, checker, block: dict, path: tuple) -> dict:
        """The block's `codecharts` settings, checked (`validate_settings` fills the defaults)."""
        settings, path = block.get("codecharts"), path + ("codecharts",)
        if settings is None:
            return {}
        if not isinstance(settings, dict):
            checker.fail(path, f"expected a mapping of {sorted(DEFAULTS)}, got {settings!r}")
        checker.known(settings, set(DEFAULTS), path)
        for key in ("fixation_ms", "chart_ms"):
            if key in settings:
                checker.integer(path + (key,), settings[key], 1, MAX_MS)
        if isinstance(settings.get("image_ms"), list):  # one drawn per trial
            durations = checker.listed(path + ("image_ms",), settings["image_ms"], 1, MAX_CHOICES, "durations in ms")
            for k, ms in enumerate(durations):
                checker.integer(path + ("image_ms", k), ms, 1, MAX_MS)
        elif "image_ms" in settings:
            checker.integer(path + ("image_ms",), settings["image_ms"], 1, MAX_MS)
        if "sentinel_every" in settings:
            checker.integer(path + ("sentinel_every",), settings["sentinel_every"], 2, MAX_COUNT)
        if "tutorial" in settings and not isinstance(settings["tutorial"], bool):
            checker.fail(path + ("tutorial",), f"expected true or false, got {settings['tutorial']!r}")
        if "sentinel_radius_px" in settings:  # display pixels
            checker.number(path + ("sentinel_radius_px",), settings["sentinel_radius_px"], 0, 1000, above=True)
        return {"codecharts": settings}

    def prepare_settings(self, settings: dict) -> dict:
        """QC counts one gaze point per trial (QC_DEFAULTS) unless qc says otherwise; the
        `codecharts` settings with their defaults (`validate_settings`)."""
        qc = {**DEFAULT_QC, **QC_DEFAULTS, **(settings.get("qc") or {})}
        return {**settings, "qc": qc, "codecharts": validate_settings(settings.get("codecharts"))}

    def check_stimuli(self, stimuli: list, settings: dict) -> None:
        check_stimuli(stimuli, settings)

    def needed_window(self, session, experiment) -> tuple[int, int]:
        """The window (CSS px, rounded up) the task page needs: its largest image at the least
        size the page draws it at (`least_shown_size`: shrunk to fit the window down to codes
        codecharts.MIN_CODE_PX high) plus the page's margins, so the device check asks for
        exactly what the task page needs and a participant it admits never meets the page's own
        "window too small"."""
        sizes = session.execute(select(Stimulus.width, Stimulus.height)
                                .where(Stimulus.experiment_id == experiment.id).distinct()).all()
        shown = [least_shown_size(w, h, experiment.settings) for w, h in sizes] or [(0.0, 0.0)]
        return (math.ceil(max(w for w, _ in shown) + PAGE_MARGINS[0]),
                math.ceil(max(h for _, h in shown) + PAGE_MARGINS[1]))

    def consent_text(self, settings: dict) -> tuple[str, str]:
        what = (f"In this study you will look at {about_images(settings)} for a few seconds each. After each image,"
                " a grid of short codes (a letter and two digits) flashes up, and you type the code you were"
                " looking at.")
        if (settings.get(TASK) or {}).get("tutorial", True):
            what += " A short tutorial comes first; if its codes are not typed as asked, the study ends there."
        return what, "the codes you type, when you type them"

    def instructions_text(self, settings: dict, counts: dict) -> str:
        tutorial = ""
        if counts["practice"]:
            tutorial = (f", after a short tutorial of {counts['practice']} screens that tells you after each one"
                        " how it went (if the tutorial codes are not typed as asked, the study ends there, with"
                        " our thanks)")
        return ("Each image is shown for a few seconds after a cross in the middle of the screen: look at the"
                " cross, then look at the image freely. Then a grid of codes (a letter and two digits, like"
                " **B47**) flashes for a moment. Type the code you were looking at last.\n\n"
                "Sometimes there is no image, only a red dot: look at the dot and type the code you see closest"
                " to it.\n\n"
                f"You will see {count(counts['images'], 'image')} and {count(counts['sentinels'], 'red-dot screen')}"
                f"{tutorial}. Please make your browser window large, or full screen.")

    def debrief_text(self, settings: dict) -> str:
        return ("This study measures where people look in images. The code you typed after each image tells us"
                " where you were looking when it ended; your codes will be combined with other people's into"
                " maps of where people look.")

    def shown_trials(self, participant, shown, stimuli, settings, rng) -> list[Trial]:
        """The tutorial, then the shown images with sentinels between them (`build_trials`); an
        image trial's spec carries its labels (a design's block and condition)."""
        trials = build_trials(participant, [s for s, _ in shown], list(stimuli), settings, rng)
        labels = iter(shown)
        for trial in trials:
            if not trial.is_practice and trial.spec["kind"] == "image":
                _, label = next(labels)
                if label:
                    trial.spec = {**trial.spec, **label}
        return trials

    def trial_summary(self, trial) -> dict:
        return {"kind": trial.spec["kind"]}  # finished ones too: the page counts images, not sentinels

    def trial_json(self, trial, participant, settings, url_for, stimulus_of) -> dict:
        stim = trial.stimulus
        return {**trial_json(trial, settings), "natural_w": stim.width if stim else None,
                "natural_h": stim.height if stim else None,
                "image_url": url_for("tasks.image", trial_id=trial.id, kind="sharp", t=participant.token)
                if stim else None,
                "chart_url": url_for("api.chart", trial_id=trial.id),
                "answer_url": url_for("api.answer", trial_id=trial.id)}

    def chart_json(self, trial, settings: dict) -> dict:
        return codecharts.to_json(chart_of(trial, settings))

    def record_answer(self, session, participant, trial, body: dict, key: str) -> dict:
        return record_answer(session, participant, trial, body, key)

    def tutorial_feedback(self, session, trial) -> dict | None:
        return tutorial_feedback(session, trial)

    def simulate_trial(self, trial: dict, participant) -> tuple[str, dict, int]:
        """The chart fetched as the page does; for an image, the code nearest a gaze point drawn
        from the participant's saliency (display px); for a sentinel, the code nearest its target,
        found on the sentinel's screen (a participant who did look; the JSON does not say where it
        is), or, failing the tutorial or the sentinels on purpose, the code farthest from it."""
        miss_sentinel = ("tutorial" if trial["is_practice"] else "sentinel") in participant.fail
        chart = participant.get(trial["chart_url"]).json()
        codes = chart["codes"]
        if chart["kind"] == "sentinel":
            gaze_x, gaze_y = codecharts.locate_sentinel_target(chart["sentinel_png"], chart["width"])
        else:
            width, height = trial["natural_w"], trial["natural_h"]
            point = participant.sample_clicks(participant.density(trial), 1)[0]
            gaze_x, gaze_y = point["x"] * chart["width"] / width, point["y"] * chart["height"] / height
        distance = lambda c: (c["x"] - gaze_x) ** 2 + (c["y"] - gaze_y) ** 2  # noqa: E731
        nearest = max(codes, key=distance) if miss_sentinel and chart["kind"] == "sentinel" \
            else min(codes, key=distance)
        body = {"idempotency_key": participant.key(), "code": nearest["code"],
                "rt_ms": float(participant.rng.uniform(800, 2500))}
        return trial["answer_url"], body, int(chart["kind"] == "image")

    def failure_kinds(self, settings: dict) -> list[str]:
        return ["sentinel", "tutorial"] if settings[TASK]["tutorial"] else ["sentinel"]

    def excluding_failures(self, settings: dict) -> list[str]:
        """A failed tutorial screens out (sentinel misses after it exclude no one by themselves)."""
        return ["tutorial"] if settings[TASK]["tutorial"] else []

    def seconds_per_trial(self, settings: dict) -> float:
        cc = settings[TASK]
        image_ms = sum(cc["image_ms"]) / len(cc["image_ms"])
        return (cc["fixation_ms"] + image_ms + cc["chart_ms"]) / 1000 + self.answer_s


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
    sentinels, tutorial the gate's verdict ({passed, reason}) when this answer ended it; status
    the participant's after it (`_advance`)."""
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
