"""BubbleView (Kim et al., TOCHI 2017): the image is shown blurred, and each click reveals a
bubble of it sharply; the clicks are the gaze points. A BubbleView study is a design's only
block, or an experiment made from a dataset (`studyweb.experiments.create_experiment`). Its
trials are saved as they go (POST /api/v1/trials/<id>/save, clicks in image px), not answered;
a trial's clicks after the experiment's time_limit_s are stored late (`studyweb.api`). The page:
templates/tasks/bubbleview.html, static/flow.js and static/bubbleview.js.
"""
from __future__ import annotations

from studyweb.db.schema import Trial
from studyweb.design_checks import MAX_COUNT, MAX_SECONDS
from studyweb.settings import MODES, blur_sigma_image_px, bubble_radius_image_px, setting
from studyweb.tasks.attention import AttentionTask
from studyweb.tasks.registry import register
from studyweb.tasks.wording import about_images, count

PRACTICE_SIZE = (480, 360)  # the practice image the page draws itself (static/bubbleview.js), px


@register
class BubbleView(AttentionTask):
    name = study = "bubbleview"
    block_keys = frozenset({"name", "task", "image", "mode", "time_limit_s", "max_clicks", "blur_sigma_frac",
                            "bubble_radius_frac", "display_width_px", "max_upscale"})
    template = "tasks/bubbleview.html"
    scripts = ("flow.js", "bubbleview.js")
    answer_s = 4.0

    def check_settings(self, checker, block: dict, path: tuple) -> dict:
        """The block's BubbleView settings, checked (`studyweb.settings.validate_settings` repeats
        the checks)."""
        out = {}
        if "mode" in block and block["mode"] not in MODES:
            checker.fail(path + ("mode",), f"expected one of {list(MODES)}, got {block['mode']!r}")
        if "time_limit_s" in block:
            out["time_limit_s"] = checker.number(path + ("time_limit_s",), block["time_limit_s"], 0, MAX_SECONDS,
                                                 above=True)
        if block.get("max_clicks") is not None:
            out["max_clicks"] = checker.integer(path + ("max_clicks",), block["max_clicks"], 1, MAX_COUNT)
        for key in ("blur_sigma_frac", "bubble_radius_frac"):  # fractions of the image width
            if key in block:
                out[key] = checker.number(path + (key,), block[key], 0, 1, above=True)
        return out

    def consent_text(self, settings: dict) -> tuple[str, str]:
        seconds = settings.get("time_limit_s")
        limit = f" for {seconds:g} seconds" if seconds else ""
        what = (f"In this study you will see {about_images(settings)}, each blurred{limit}. Clicking on an image"
                " shows a small part of it sharply.")
        if settings.get("mode") == "describe":
            what += " After each image you describe it in a few words."
        recorded = "where and when you click on the images" + (
            " and what you write" if settings.get("mode") == "describe" else "")
        return what, recorded

    def instructions_text(self, settings: dict, counts: dict) -> str:
        seconds = float(settings.get("time_limit_s", 10.0))
        if settings.get("mode") == "describe":
            text = ("Each image is shown blurred. Click anywhere on it to see that region sharply, then describe"
                    " the image in the text box and press *Done*.")
        else:
            text = (f"Each image is shown blurred for {seconds:g} seconds. Click anywhere on it to see that region"
                    " sharply. Look at whatever you find interesting.")
        practice = ", after one practice image" if counts["practice"] else ""
        return text + f"\n\nYou will see {count(counts['images'], 'image')}{practice}."

    def debrief_text(self, settings: dict) -> str:
        return ("This study measures which parts of an image people look at first. Your clicks will be combined"
                " with other people's into maps of attention.")

    def shown_trials(self, participant, shown, stimuli, settings, rng) -> list[Trial]:
        """The practice trial (position 0), then one trial per shown stimulus, its spec the labels
        (a design's block and condition) or None."""
        trials = [_practice_trial(participant, [s for s in stimuli if not s.method], [s for s, _ in shown])]
        trials += [Trial(participant_id=participant.id, stimulus_id=s.id, position=i + 1, spec=labels or None)
                   for i, (s, labels) in enumerate(shown)]
        return trials

    def trial_json(self, trial, participant, settings, url_for, stimulus_of) -> dict:
        """Sizes in image px (the practice image the page draws is 480x360), display_width_px in
        CSS px, times in ms; the clicks saved so far, to resume a reloaded trial."""
        stim = trial.stimulus
        time_limit_s = settings.get("time_limit_s")
        natural_w = stim.width if stim else PRACTICE_SIZE[0]
        image = lambda kind: url_for("tasks.image", trial_id=trial.id, kind=kind, t=participant.token)  # noqa: E731
        return dict(
            natural_w=natural_w, natural_h=stim.height if stim else PRACTICE_SIZE[1],
            blurred_url=image("blurred") if stim else None,
            sharp_url=image("sharp") if stim else None,
            save_url=url_for("api.save_trial", trial_id=trial.id),
            mode=settings.get("mode", "free"),
            time_limit_ms=None if time_limit_s is None else float(time_limit_s) * 1000,
            click_cap=settings.get("max_clicks"),
            bubble_radius=bubble_radius_image_px(settings, natural_w),
            blur_sigma=blur_sigma_image_px(settings, natural_w),
            display_width_px=float(setting(settings, "display_width_px")),
            max_upscale=float(setting(settings, "max_upscale")),
            clicks_saved=[{"x": c.x, "y": c.y, "t_ms": c.t_ms} for c in trial.clicks],
            elapsed_ms=trial.duration_ms or 0.0,
        )

    def late_limit_ms(self, time_limit_s: float | None) -> float | None:
        return None if time_limit_s is None else float(time_limit_s) * 1000

    def simulate_trial(self, trial: dict, participant) -> tuple[str, dict, int]:
        """One save of clicks drawn from the participant's saliency, done."""
        width, height = trial["natural_w"], trial["natural_h"]
        density = participant.density(trial)
        time_limit = float(trial.get("time_limit_ms") or 10_000.0)
        clicks = participant.sample_clicks(density, int(participant.rng.integers(*participant.clicks_per_trial,
                                                                                 endpoint=True)), time_limit)
        body = {"idempotency_key": participant.key(), "clicks": clicks, "display_w": width * 1.5,
                "display_h": height * 1.5, "done": True, "elapsed_ms": time_limit}
        return trial["save_url"], body, len(clicks)

    def seconds_per_trial(self, settings: dict) -> float:
        return float(settings["time_limit_s"]) + self.answer_s


def _practice_trial(participant, stimuli, shown) -> Trial:
    """The practice trial (position 0) on the first of `stimuli` from a pair none of `shown` (the
    participant's main stimuli) belongs to; without one, on no stimulus: the page then draws its
    own practice image (`static/bubbleview.js` practiceImages), never one the participant sees
    again as a main trial."""
    pairs = {s.pair_id for s in shown}
    practice = next((s for s in stimuli if s.pair_id not in pairs), None)
    return Trial(participant_id=participant.id, stimulus_id=practice.id if practice else None, position=0,
                 is_practice=True)
