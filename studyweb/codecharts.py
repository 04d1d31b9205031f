"""CodeCharts charts, sentinels, trial order and tutorial gate (pure Python and numpy, no Flask).

A CodeCharts trial (DESIGN.md §3; TurkEyes' CodeCharts, cited in papers/004…): a fixation cross
(750 ms), the image (2000 ms), then a code chart (400 ms), a jittered grid of codes; the
participant types the code seen last, and the centre of that code's position is taken as where
they looked when the image went away. A sentinel trial shows a target on a blank screen instead
of the image; the answer is correct when the typed code lies within 100 px of the target.

Units. A chart is generated in the coordinates of the image *as shown*: display (CSS) pixels,
origin at the image's top-left corner, x to the right, y down, `width` × `height` the shown size.
Fonts, spacing, jitter, sentinel targets and the sentinel radius are all display pixels.
`code_position(..., image_size=(w, h))` converts a position to pixels of the image's natural
size (x · w / width, y · h / height), which is what clicks and maps store.

Chart rules: font = 1.85% of the shown height; a grid with spacing 6 × font across and
4 × font down; each code moved by a uniform jitter in ±¼ of the spacing along each axis; codes
are a letter (A–Z without I and O) and two different digits 1–9 (24 × 72 = 1,728 codes), unique
within a chart. A code's text box is taken as 3 characters × 0.6 font wide and 1 font tall,
centred on its position (a monospace-like estimate); every box lies inside the chart. With
that jitter neighbouring centres stay at least half a spacing apart along one axis, so boxes
never overlap.

Code height (a code's font size, CSS px): FONT_FRAC of the shown height, and never under
MIN_CODE_PX = 10 px on the page. That is TurkEyes' practice (Newman et al., CHI 2020, the
CodeCharts code at github.com/turkeyes/codecharts): its codes are 1.85% of the chart's height
(generate_codecharts.py; 19 px on the 1920x1080 charts its notebook makes) and its page shows a
chart in a box of at most 1000 x 700 CSS px (assets/js/custom.js IMG_WIDTH, IMG_HEIGHT), so a
1920x1080 chart is shown 1000 x 562.5 px with codes of about 10 CSS px. (TurkEyes' 1.85% is the
height of the letters, drawn at a font size about 1.4 times that; here it is the font size, so
letters are about 0.73 x font_px tall.) An experiment whose images would be shown with smaller
codes is refused when it is created (`tasks.codecharts.check_stimuli`: a shown height of at least
541 px), and the task page draws a chart smaller than its shown size only as far as
`least_scale` allows, asking for a larger window beyond that (static/codecharts.js `fitStage`).
MIN_FONT_PX is the hard floor of `generate_chart`, which also rebuilds the charts of experiments
made before the minimum.

Reproducibility: the server stores only (seed, shown width, shown height, kind) per trial and
rebuilds the chart with `from_seed` to check an answer; the browser never rebuilds it, it gets
the chart as JSON from the server (`to_json`) and draws exactly those codes at those positions.

Sentinels are checked on the server only: a sentinel's JSON holds neither its target's position
nor its seed (from which `sentinel_chart` rebuilds the target), only the blank screen with the
target drawn, as a PNG (`sentinel_png`). A script reading the JSON cannot tell which code is at
the target; one that looks at the picture can (as a participant does, and as the simulated
participants do with `locate_sentinel_target`): sentinels catch inattention, not vision.
Only `Generator.random()` draws of numpy's PCG64 are used (choices and shuffles are done here),
so a chart depends on the bit generator's stream, not on numpy's sampling algorithms; a test
pins one chart so a change is caught.
"""
from __future__ import annotations

import base64
import math
import secrets
from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields
from numbers import Real

import numpy as np

LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"  # no I, O: read as 1, 0
DIGITS = "123456789"
N_CODES = len(LETTERS) * len(DIGITS) * (len(DIGITS) - 1)  # 1,728
FONT_FRAC = 0.0185  # of the shown height
SPACING_FONTS = (6.0, 4.0)  # grid spacing across, down, in fonts
JITTER_FRAC = 0.25  # of the spacing, each way
CODE_BOX_FONTS = (3 * 0.6, 1.0)  # a code's text box (width, height), in fonts
MIN_FONT_PX = 4.0  # smaller text cannot be drawn legibly at all: a shown height of >= 217 px
MIN_CODE_PX = 10.0  # the least font size a code is shown at, CSS px (TurkEyes' ~10 px: see above)
SENTINEL_RADIUS_PX = 100.0
SENTINEL_EVERY = 7
TUTORIAL_IMAGES = 3
TUTORIAL_SENTINELS = 3
TUTORIAL_MAX_INVALID = 1
TUTORIAL_MAX_MISSED_SENTINELS = 0
KINDS = ("image", "sentinel")


@dataclass(frozen=True)
class Timing:
    """Durations of one trial's screens in ms. image_ms holds one or more image durations: an
    experiment may show images for several durations (chosen per trial by the caller)."""

    fixation_ms: int = 750
    image_ms: tuple[int, ...] = (2000,)
    chart_ms: int = 400

    def __post_init__(self):
        image_ms = (self.image_ms,) if isinstance(self.image_ms, int) else tuple(self.image_ms)
        object.__setattr__(self, "image_ms", image_ms)
        if not image_ms:
            raise ValueError("image_ms must hold at least one duration, got ()")
        for name, value in (("fixation_ms", self.fixation_ms), ("chart_ms", self.chart_ms),
                            *(("image_ms", v) for v in image_ms)):
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"{name} must be a positive integer of milliseconds, got {value!r}")

    @classmethod
    def from_dict(cls, values: dict) -> Timing:
        """A Timing from experiment settings; unknown keys are refused, missing ones default."""
        unknown = set(values) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown timing keys {sorted(unknown)}; expected fixation_ms, image_ms, chart_ms")
        return cls(**values)

    def as_dict(self) -> dict:
        return {**asdict(self), "image_ms": list(self.image_ms)}


TIMING = Timing()


@dataclass(frozen=True)
class Chart:
    """One code chart in display px: codes[i] is centred at (xs[i], ys[i]); spacing = (across,
    down) of the grid before jitter; codes are listed row by row (rows × columns of them)."""

    width: float
    height: float
    seed: int
    font_px: float
    codes: tuple[str, ...]
    xs: tuple[float, ...]
    ys: tuple[float, ...]
    spacing: tuple[float, float]
    columns: int
    rows: int


@dataclass(frozen=True)
class SentinelTrial:
    """A sentinel: a target (x, y) in display px shown on a blank screen, then `chart`; at least
    one code of the chart lies within radius_px of the target."""

    chart: Chart
    target: tuple[float, float]
    radius_px: float


def new_seed() -> int:
    """A fresh random seed below 2**53, so it survives JSON in a browser (a JS number) unchanged."""
    return secrets.randbits(53)


def generate_chart(width: float, height: float, seed: int) -> Chart:
    """The chart for an image shown at width × height display px, from `seed` (int in [0, 2**63)).
    ValueError when the height gives a font under MIN_FONT_PX, when the width cannot hold one
    column of codes, or when the grid has more positions than the 1,728 distinct codes."""
    return _build_chart(width, height, seed)[0]


def least_scale(height: float) -> float:
    """The least a chart for an image shown `height` display px high may be scaled by on the page
    so that its codes stay MIN_CODE_PX high: in (0, 1], 1 when they are no taller than that."""
    return min(1.0, MIN_CODE_PX / (FONT_FRAC * height))


def sentinel_chart(width: float, height: float, seed: int,
                   radius_px: float = SENTINEL_RADIUS_PX) -> SentinelTrial:
    """A sentinel trial: the chart generate_chart(width, height, seed) and a target placed at a
    random code's centre moved by up to radius_px / 2 (uniform in that disc, kept where code
    centres may lie), so at least one code lies within radius_px of the target."""
    if not isinstance(radius_px, Real) or not radius_px > 0:
        raise ValueError(f"radius_px must be a positive number of display px, got {radius_px!r}")
    chart, rng = _build_chart(width, height, seed)
    k, u_r, u_angle = rng.random(3)
    i = min(int(k * len(chart.codes)), len(chart.codes) - 1)
    r, angle = radius_px / 2 * math.sqrt(u_r), 2 * math.pi * u_angle
    (x_lo, x_hi), (y_lo, y_hi) = _centre_bounds(chart.width, chart.height, chart.font_px)
    # Clipping into a box that holds the code's centre only brings the target closer to it.
    x = float(np.clip(chart.xs[i] + r * math.cos(angle), x_lo, x_hi))
    y = float(np.clip(chart.ys[i] + r * math.sin(angle), y_lo, y_hi))
    return SentinelTrial(chart=chart, target=(x, y), radius_px=float(radius_px))


def from_seed(width: float, height: float, seed: int, kind: str = "image",
              radius_px: float = SENTINEL_RADIUS_PX) -> Chart | SentinelTrial:
    """Rebuild what a trial showed from what the server stored: a Chart for kind 'image', a
    SentinelTrial for kind 'sentinel'."""
    if kind == "image":
        return generate_chart(width, height, seed)
    if kind == "sentinel":
        return sentinel_chart(width, height, seed, radius_px)
    raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")


def to_json(item: Chart | SentinelTrial) -> dict:
    """A JSON-ready dict of a chart or sentinel for the browser, all lengths in display px:
    {kind, width, height, font_px, spacing_px: [across, down], columns, rows, codes: [{code, x,
    y}, ...]} plus, for an image's chart, its seed, and for a sentinel, sentinel_png: the
    sentinel's screen (`sentinel_png`, a data: URL) the page draws over width x height. Each code is
    drawn centred on (x, y) (text-anchor middle, baseline central) at font_px. A sentinel's
    target and seed are left out: only the server knows where its target is."""
    sentinel = isinstance(item, SentinelTrial)
    chart = item.chart if sentinel else item
    out = {
        "kind": "sentinel" if sentinel else "image",
        "width": chart.width, "height": chart.height, "font_px": chart.font_px,
        "spacing_px": list(chart.spacing), "columns": chart.columns, "rows": chart.rows,
        "codes": [{"code": c, "x": x, "y": y} for c, x, y in zip(chart.codes, chart.xs, chart.ys)],
    }
    if sentinel:
        png = sentinel_png(chart.width, chart.height, item.target, chart.font_px)
        out["sentinel_png"] = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
    else:
        out["seed"] = chart.seed
    return out


def sentinel_png(width: float, height: float, target: tuple[float, float], font_px: float) -> bytes:
    """A sentinel's screen as PNG bytes, one image pixel per display px (rounded): a red dot
    ringed in dark red (so it shows on any screen; the radius max(6, 0.6 font_px) px) centred
    on `target` on white. Encoded run-length (a few ms: the screen is nearly all white)."""
    import cv2

    w, h = max(1, round(width)), max(1, round(height))
    image = np.full((h, w, 3), 255, np.uint8)
    radius = max(6.0, font_px * 0.6)
    ring = max(1.5, radius / 4)
    sub = 16  # cv2's sub-pixel positions (shift=4); its pixel centres are at whole numbers, a canvas' at +0.5
    centre = (round((target[0] * w / width - 0.5) * sub), round((target[1] * h / height - 0.5) * sub))
    for r, bgr in ((radius + ring / 2, (0, 0, 0x80)), (radius - ring / 2, (0, 0, 0xE0))):  # #800000, #e00000
        cv2.circle(image, centre, round(r * sub), bgr, thickness=-1, lineType=cv2.LINE_AA, shift=4)
    ok, png = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE])
    if not ok:
        raise ValueError(f"could not encode a {w}x{h} sentinel image as PNG")
    return png.tobytes()


def locate_sentinel_target(data_url: str, width: float) -> tuple[float, float]:
    """Where a sentinel's screen (`to_json`'s sentinel_png, shown `width` display px wide) has its
    dot: the centre of its non-white pixels, in display px. What a participant who looked saw;
    for the simulated participants and tests."""
    import cv2

    encoded = data_url.split(",", 1)[1]
    image = cv2.imdecode(np.frombuffer(base64.b64decode(encoded), np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError("the sentinel image is not a PNG")
    weight = 255.0 - image.min(axis=2)  # 0 on white
    total = weight.sum()
    if not total > 0:
        raise ValueError("the sentinel image shows no target")
    ys, xs = np.indices(weight.shape)
    scale = image.shape[1] / width  # image px per display px
    return (float((xs * weight).sum() / total + 0.5) / scale, float((ys * weight).sum() / total + 0.5) / scale)


def normalise_code(text: object) -> str | None:
    """The canonical form (upper case, no whitespace) of a typed answer shaped like a code, a
    letter and two digits ('b 47 ' -> 'B47'); None for any other shape. Only the shape is
    checked: 'O12' or 'A11' pass, and are stored as invalid answers by code_position."""
    if not isinstance(text, str):
        return None
    code = "".join(text.split()).upper()
    if len(code) == 3 and "A" <= code[0] <= "Z" and code[1:].isascii() and code[1:].isdigit():
        return code
    return None


def code_position(chart: Chart, typed: object,
                  image_size: tuple[float, float] | None = None) -> tuple[float, float] | None:
    """The centre of the typed code's position: display px, or pixels of the image's natural
    size when image_size = (natural width, natural height) is given. None when the answer is
    not shaped like a code or not on this chart (an invalid answer)."""
    code = normalise_code(typed)
    if code is None or code not in chart.codes:
        return None
    i = chart.codes.index(code)
    x, y = chart.xs[i], chart.ys[i]
    if image_size is None:
        return (x, y)
    return (x * image_size[0] / chart.width, y * image_size[1] / chart.height)


def sentinel_correct(chart: Chart, target: tuple[float, float], typed: object,
                     radius_px: float = SENTINEL_RADIUS_PX) -> bool:
    """Whether the typed code's centre lies within radius_px (display px, inclusive) of the
    sentinel's target; False for an invalid answer."""
    position = code_position(chart, typed)
    if position is None:
        return False
    return math.hypot(position[0] - target[0], position[1] - target[1]) <= radius_px


def trial_plan(n_images: int, seed: int, sentinel_every: int = SENTINEL_EVERY) -> tuple[str, ...]:
    """The order of a participant's trials: n_images 'image' entries (the i-th shows the i-th
    image, in the caller's order) and round(n_images / (sentinel_every - 1)) 'sentinel' entries,
    about one trial in sentinel_every. Sentinels go into distinct gaps between images, one
    random gap from each of equal stretches of the sequence, so two are never adjacent."""
    if not isinstance(n_images, int) or isinstance(n_images, bool) or n_images < 0:
        raise ValueError(f"n_images must be an integer >= 0, got {n_images!r}")
    if not isinstance(sentinel_every, int) or isinstance(sentinel_every, bool) or sentinel_every < 2:
        raise ValueError(f"sentinel_every must be an integer >= 2, got {sentinel_every!r}")
    n_sentinels = math.floor(n_images / (sentinel_every - 1) + 0.5)
    rng = _rng(seed)
    strata = np.array_split(np.arange(n_images + 1), n_sentinels) if n_sentinels else []
    gaps = [int(s[min(int(u * len(s)), len(s) - 1)]) for s, u in zip(strata, rng.random(n_sentinels))]
    return _interleave(n_images, gaps)


def tutorial_plan(seed: int) -> tuple[str, ...]:
    """The tutorial's order: 3 images and 3 sentinels, no two sentinels adjacent (one of the 4
    such orders, chosen by seed)."""
    gaps = _sample_distinct(TUTORIAL_IMAGES + 1, TUTORIAL_SENTINELS, _rng(seed))
    return _interleave(TUTORIAL_IMAGES, gaps)


def tutorial_passed(results: Iterable[tuple[str, bool, bool | None]],
                    max_invalid: int = TUTORIAL_MAX_INVALID,
                    max_missed_sentinels: int = TUTORIAL_MAX_MISSED_SENTINELS) -> tuple[bool, str]:
    """The tutorial gate over every tutorial trial's (kind, valid, correct): valid = the typed
    code was on the chart; correct = a sentinel was answered within the radius (ignored for
    images). Passed when at most max_invalid answers are invalid and at most
    max_missed_sentinels sentinels are missed; the reason names the rule(s) that failed.
    ValueError for an unknown kind, a correct-but-invalid answer, or no sentinel at all."""
    n_invalid = n_missed = n_sentinels = 0
    for kind, valid, correct in results:
        if kind not in KINDS:
            raise ValueError(f"trial kind must be one of {KINDS}, got {kind!r}")
        if kind == "sentinel" and correct and not valid:
            raise ValueError("a sentinel answer cannot be correct and invalid")
        n_invalid += not valid
        if kind == "sentinel":
            n_sentinels += 1
            n_missed += not correct
    if n_sentinels == 0:
        raise ValueError("the tutorial results hold no sentinel trial; cannot gate on them")
    failed = []
    if n_invalid > max_invalid:
        failed.append(f"{n_invalid} invalid codes (at most {max_invalid} allowed)")
    if n_missed > max_missed_sentinels:
        failed.append(f"{n_missed} of {n_sentinels} sentinels missed (at most {max_missed_sentinels} allowed)")
    if failed:
        return False, "failed: " + "; ".join(failed)
    return True, f"passed: {n_invalid} invalid codes, {n_missed} of {n_sentinels} sentinels missed"


# --- helpers -------------------------------------------------------------------------------

def _rng(seed: int) -> np.random.Generator:
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or not 0 <= seed < 2**63:
        raise ValueError(f"seed must be an integer in [0, 2**63), got {seed!r}")
    return np.random.Generator(np.random.PCG64(int(seed)))


def _build_chart(width: float, height: float, seed: int) -> tuple[Chart, np.random.Generator]:
    """The chart and the generator after drawing it (sentinels continue drawing from it)."""
    for name, value in (("width", width), ("height", height)):
        if not isinstance(value, Real) or isinstance(value, bool) or not math.isfinite(value) or value <= 0:
            raise ValueError(f"{name} must be a positive number of display px, got {value!r}")
    width, height = float(width), float(height)
    font = FONT_FRAC * height
    if font < MIN_FONT_PX:
        raise ValueError(f"height {height:g} px gives a {font:.2f} px font (1.85% of the height); codes need at "
                         f"least {MIN_FONT_PX:g} px, a shown height of at least {math.ceil(MIN_FONT_PX / FONT_FRAC)} px")
    rng = _rng(seed)
    spacing = (SPACING_FONTS[0] * font, SPACING_FONTS[1] * font)
    (x_lo, x_hi), (y_lo, y_hi) = _centre_bounds(width, height, font)
    col_x = _grid_line(width, x_lo, x_hi, spacing[0], "width", height)
    row_y = _grid_line(height, y_lo, y_hi, spacing[1], "height", height)
    n = len(col_x) * len(row_y)
    if n > N_CODES:
        raise ValueError(f"a {width:g}x{height:g} px chart has {n} code positions, more than the "
                         f"{N_CODES} distinct codes")
    codes = tuple(_code(i) for i in _sample_distinct(N_CODES, n, rng))
    grid_x, grid_y = np.meshgrid(col_x, row_y)  # row by row
    jitter = (2 * rng.random((2, n)) - 1) * JITTER_FRAC
    # The margins already leave room for the jitter; clipping only absorbs float rounding.
    xs = np.clip(grid_x.ravel() + jitter[0] * spacing[0], x_lo, x_hi)
    ys = np.clip(grid_y.ravel() + jitter[1] * spacing[1], y_lo, y_hi)
    chart = Chart(width=width, height=height, seed=int(seed), font_px=font, codes=codes,
                  xs=tuple(float(v) for v in xs), ys=tuple(float(v) for v in ys),
                  spacing=spacing, columns=len(col_x), rows=len(row_y))
    return chart, rng


def _centre_bounds(width: float, height: float, font: float) -> tuple[tuple[float, float], tuple[float, float]]:
    """Where a code's centre may lie so its text box stays inside the chart: (x range, y range)."""
    half_w, half_h = CODE_BOX_FONTS[0] * font / 2, CODE_BOX_FONTS[1] * font / 2
    return (half_w, width - half_w), (half_h, height - half_h)


def _grid_line(length: float, lo: float, hi: float, spacing: float, name: str, height: float) -> np.ndarray:
    """Grid centres along one axis, centred, at least a jitter's reach inside [lo, hi]."""
    reach = JITTER_FRAC * spacing
    usable = (hi - reach) - (lo + reach)
    if usable < 0:
        raise ValueError(f"{name} {length:g} px cannot hold one row or column of codes at a shown height of "
                         f"{height:g} px; it needs at least {length - usable:.1f} px")
    n = math.floor(usable / spacing) + 1
    return (length - (n - 1) * spacing) / 2 + spacing * np.arange(n)


def _sample_distinct(population: int, k: int, rng: np.random.Generator) -> list[int]:
    """k distinct integers from range(population) in random order (a partial Fisher–Yates)."""
    pool = list(range(population))
    for i, u in enumerate(rng.random(k)):
        j = min(i + int(u * (population - i)), population - 1)
        pool[i], pool[j] = pool[j], pool[i]
    return pool[:k]


def _code(index: int) -> str:
    """The index-th of the 1,728 codes: letter, then an ordered pair of different digits."""
    letter, pair = divmod(index, len(DIGITS) * (len(DIGITS) - 1))
    first, second = divmod(pair, len(DIGITS) - 1)
    second += second >= first  # skip the first digit
    return LETTERS[letter] + DIGITS[first] + DIGITS[second]


def _interleave(n_images: int, gaps: list[int]) -> tuple[str, ...]:
    """Images in order with a sentinel in each gap g (before image g; g == n_images: at the end)."""
    gaps = set(gaps)
    plan = []
    for g in range(n_images + 1):
        if g in gaps:
            plan.append("sentinel")
        if g < n_images:
            plan.append("image")
    return tuple(plan)
