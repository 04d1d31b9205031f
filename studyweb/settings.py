"""An experiment's settings (stored as JSON on the experiment): their defaults, their checks, and
the values read from them. Pure: no database.

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
  chart_ms, sentinel_every, tutorial, sentinel_radius_px (`studyweb.tasks.codecharts`); its
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
  study link, and the exclusion goes both ways (`studyweb.experiments.related_experiments`). A
  name may be of an experiment created later.

Experiments created before the fractions existed stored blur_sigma_px = bubble_radius_px = 30
(the old defaults); those are read as the explicit overrides they look like, so every
participant of a running study sees the same blur and bubbles. Settings missing from a stored
experiment (display_width_px, max_upscale) take their defaults from DEFAULT_SETTINGS, so old
experiments get the display-size rule too. Create a new experiment to use the fractions.
"""
from __future__ import annotations

import copy
import math
import re
import secrets
from typing import Any

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
    "codecharts": None,  # CodeCharts timing and sentinels (`studyweb.tasks.codecharts.DEFAULTS`)
    "design": None,  # a questionnaire's checked design (`studyweb.designs`)
    "conditions": None,  # {versions, layout}: Latin-square blocks of an attention design (`studyweb.designs`)
    "screenout_code": None,  # given to a screened-out participant (`studyweb.screening`)
    "screenout_url": None,  # or where they are sent
    "texts": None,  # a design's consent, instructions, debrief, screened_out (`studyweb.texts`)
    "comprehension": None,  # {questions, max_attempts}: asked after the instructions (`studyweb.designs`)
    "device": None,  # {min_window, phones, fullscreen}: checked before consent (`studyweb.screening`)
    "exclude_workers_of": [],  # experiments whose workers cannot take this one (`related_experiments`)
}
EXPERIMENT_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


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
        check_positive(key, merged[key])
    for key in ("blur_sigma_frac", "bubble_radius_frac"):
        check_positive(key, merged[key])
        if merged[key] > 1:
            raise ValueError(f"{key} is a fraction of the image width and must be in (0, 1], got {merged[key]!r}")
    check_positive("max_upscale", merged["max_upscale"])
    if merged["max_upscale"] < 1:
        raise ValueError(f"max_upscale must be a number >= 1 (1 = never enlarge), got {merged['max_upscale']!r}")
    for key in ("blur_sigma_px", "bubble_radius_px", "max_clicks", "px_per_degree", "sigma_px"):
        if merged[key] is not None:
            check_positive(key, merged[key])
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
        check_positive("qc.iqr_k", qc["iqr_k"])
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
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and EXPERIMENT_NAME.match(v) for v in value):
        raise ValueError(f"{key} must be a list of experiment names (1-64 of a-z 0-9 _ -), got {value!r}")
    return list(dict.fromkeys(value))


def setting(settings: dict[str, Any], key: str) -> Any:
    """settings[key], or its default for an experiment stored before `key` existed."""
    return settings.get(key, DEFAULT_SETTINGS[key])


def blur_sigma_image_px(settings: dict[str, Any], image_width: float) -> float:
    """The pre-blur's σ in image pixels for an image `image_width` pixels wide: the explicit
    blur_sigma_px if set, else blur_sigma_frac × image_width."""
    return _image_px(settings, "blur_sigma", image_width)


def bubble_radius_image_px(settings: dict[str, Any], image_width: float) -> float:
    """A bubble's radius in image pixels for an image `image_width` pixels wide: the explicit
    bubble_radius_px if set, else bubble_radius_frac × image_width."""
    return _image_px(settings, "bubble_radius", image_width)


def _image_px(settings: dict[str, Any], name: str, image_width: float) -> float:
    explicit = settings.get(f"{name}_px")
    if explicit is not None:
        return float(explicit)
    return float(setting(settings, f"{name}_frac")) * float(image_width)


def check_positive(key: str, value) -> None:
    """ValueError unless `value` is a finite number > 0, naming `key`."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
        raise ValueError(f"{key} must be a finite number > 0, got {value!r}")
