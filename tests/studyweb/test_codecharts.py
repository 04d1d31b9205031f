"""studyweb.codecharts: chart properties, code → position, sentinels, trial order, tutorial gate."""
import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from studyweb import codecharts as cc
from studyweb.codecharts import (
    Chart, Timing, code_position, from_seed, generate_chart, locate_sentinel_target, normalise_code,
    sentinel_chart, sentinel_correct, to_json, trial_plan, tutorial_passed, tutorial_plan,
)

FEW = settings(max_examples=50, deadline=None)
sizes = st.tuples(st.integers(320, 1920), st.integers(240, 1080))
seeds = st.integers(0, 2**53 - 1)
EPS = 1e-9


def grid(chart: Chart, values) -> np.ndarray:
    return np.asarray(values).reshape(chart.rows, chart.columns)


@FEW
@given(sizes, seeds)
def test_codes_are_unique_and_well_formed(size, seed):
    chart = generate_chart(*size, seed)
    assert len(chart.codes) == chart.rows * chart.columns == len(chart.xs) == len(chart.ys)
    assert len(set(chart.codes)) == len(chart.codes)
    for code in chart.codes:
        letter, d1, d2 = code
        assert letter in cc.LETTERS and letter not in "IO" and letter.isupper()
        assert d1 in "123456789" and d2 in "123456789" and d1 != d2


def test_code_alphabet_is_1728_codes():
    codes = {cc._code(i) for i in range(cc.N_CODES)}
    assert len(codes) == cc.N_CODES == 24 * 9 * 8
    assert all(c[0] not in "IO" and c[1] != c[2] and "0" not in c for c in codes)


@FEW
@given(sizes, seeds)
def test_every_code_box_is_inside_the_chart(size, seed):
    chart = generate_chart(*size, seed)
    xs, ys = np.array(chart.xs), np.array(chart.ys)
    half_w, half_h = 0.9 * chart.font_px, 0.5 * chart.font_px  # 3 chars × 0.6 font, 1 font tall
    assert (xs - half_w >= -EPS).all() and (xs + half_w <= chart.width + EPS).all()
    assert (ys - half_h >= -EPS).all() and (ys + half_h <= chart.height + EPS).all()


@FEW
@given(sizes, seeds)
def test_font_spacing_and_jitter_follow_the_design_values(size, seed):
    chart = generate_chart(*size, seed)
    assert chart.font_px == pytest.approx(0.0185 * chart.height)
    sx, sy = chart.spacing
    assert (sx, sy) == pytest.approx((6 * chart.font_px, 4 * chart.font_px))
    xs, ys = grid(chart, chart.xs), grid(chart, chart.ys)
    # Jitter ±¼ spacing: a column's xs (a row's ys) spread over at most half a spacing ...
    assert (np.ptp(xs, axis=0) <= sx / 2 + EPS).all() and (np.ptp(ys, axis=1) <= sy / 2 + EPS).all()
    # ... and neighbours stay at least half a spacing apart.
    assert (np.diff(xs, axis=1) >= sx / 2 - EPS).all() and (np.diff(ys, axis=0) >= sy / 2 - EPS).all()
    # The grid fills the chart: no empty band wider than a spacing at any edge.
    x_lo, y_lo = 0.9 * chart.font_px, 0.5 * chart.font_px
    assert xs.min() <= x_lo + sx and xs.max() >= chart.width - x_lo - sx
    assert ys.min() <= y_lo + sy and ys.max() >= chart.height - y_lo - sy


@FEW
@given(sizes, seeds)
def test_code_boxes_never_overlap_and_centres_are_spaced(size, seed):
    chart = generate_chart(*size, seed)
    xs, ys = np.array(chart.xs), np.array(chart.ys)
    dx = np.abs(xs[:, None] - xs[None, :])
    dy = np.abs(ys[:, None] - ys[None, :])
    apart = (dx >= 1.8 * chart.font_px) | (dy >= chart.font_px)
    np.fill_diagonal(apart, True)
    assert apart.all()
    dist = np.hypot(dx, dy)
    np.fill_diagonal(dist, np.inf)
    assert dist.min() >= min(chart.spacing) / 2 - EPS


def test_jitter_moves_codes_off_the_grid():
    chart = generate_chart(1000, 750, 3)
    xs, ys = grid(chart, chart.xs), grid(chart, chart.ys)
    assert np.ptp(xs, axis=0).min() > 0 and np.ptp(ys, axis=1).min() > 0


@FEW
@given(sizes, seeds)
def test_same_seed_same_chart_other_seed_other_chart(size, seed):
    chart = generate_chart(*size, seed)
    assert generate_chart(*size, seed) == chart
    other = generate_chart(*size, seed + 1)
    assert other.codes != chart.codes and other.xs != chart.xs


def test_a_chart_is_pinned_to_its_seed():
    """Charts are rebuilt from stored seeds: a numpy or code change that alters them must fail here."""
    chart = generate_chart(1000, 750, 12345)
    assert (chart.columns, chart.rows, chart.font_px) == (12, 13, 13.875)
    assert chart.codes[:5] == ("F51", "H65", "V24", "S32", "K48")
    assert chart.xs[:2] == pytest.approx((28.09860695869071, 111.46715390122975), abs=1e-9)
    assert chart.ys[:2] == pytest.approx((45.88817396234276, 52.937732097540156), abs=1e-9)
    assert sentinel_chart(1000, 750, 12345).target == pytest.approx((584.4691786895794, 206.39600231159247),
                                                                    abs=1e-9)


def test_the_page_scales_a_chart_down_only_as_far_as_codes_of_the_minimum_height():
    assert cc.MIN_CODE_PX == 10  # TurkEyes' codes: 1.85% of a 1920x1080 chart shown 1000 px wide
    assert cc.FONT_FRAC * 720 * cc.least_scale(720) == pytest.approx(cc.MIN_CODE_PX)
    assert cc.least_scale(541) == pytest.approx(cc.MIN_CODE_PX / (cc.FONT_FRAC * 541)) and cc.least_scale(541) < 1
    assert cc.least_scale(480) == 1.0  # codes already under the minimum (an older experiment): never smaller


def test_too_small_or_too_large_sizes_are_refused_with_the_value():
    with pytest.raises(ValueError, match=r"height 100 px gives a 1\.85 px font.*at least 217 px"):
        generate_chart(1000, 100, 1)
    with pytest.raises(ValueError, match=r"width 20 px cannot hold one row or column.*at least 21\.3 px"):
        generate_chart(20, 240, 1)
    with pytest.raises(ValueError, match=r"30000x1000 px chart has 3510 code positions, more than the 1728"):
        generate_chart(30000, 1000, 1)
    generate_chart(22, 240, 1)  # just wide enough: one column
    for bad in (0, -5, float("nan"), float("inf"), "800", True):
        with pytest.raises(ValueError, match="width must be a positive number"):
            generate_chart(bad, 600, 1)
    for bad in (-1, 2**63, 1.5, "7", None):
        with pytest.raises(ValueError, match="seed must be an integer"):
            generate_chart(800, 600, bad)


def test_code_position_round_trips_every_code():
    chart = generate_chart(800, 600, 7)
    for code, x, y in zip(chart.codes, chart.xs, chart.ys):
        assert code_position(chart, code) == (x, y)
        assert code_position(chart, f"  {code.lower()[0]} {code[1:]}\n") == (x, y)


def test_code_position_scales_to_the_natural_image_size():
    chart = generate_chart(800, 600, 7)
    code, x, y = chart.codes[10], chart.xs[10], chart.ys[10]
    assert code_position(chart, code, image_size=(1600, 1500)) == pytest.approx((2 * x, 2.5 * y))


def test_unknown_or_malformed_codes_have_no_position():
    chart = generate_chart(800, 600, 7)
    absent = next(c for c in map(cc._code, range(cc.N_CODES)) if c not in chart.codes)
    for typed in (absent, "O12", "A11", "A10", "", "   ", "A1", "A123", "12A", "ÄB1", "A1²", None, 47):
        assert code_position(chart, typed) is None, typed


def test_normalise_code_checks_the_shape_only():
    assert normalise_code(" b 47\t") == "B47"
    assert normalise_code("o12") == "O12"  # shaped like a code: stored as an invalid answer
    for bad in ("", "AB1", "A1", "A1234", "1A2", "A-12", "A١٢", "É12", None, 123):
        assert normalise_code(bad) is None, bad


@FEW
@given(sizes, seeds)
def test_a_sentinel_has_a_code_within_the_radius_of_its_target(size, seed):
    trial = sentinel_chart(*size, seed)
    chart, (tx, ty) = trial.chart, trial.target
    assert chart == generate_chart(*size, seed)
    assert 0 <= tx <= chart.width and 0 <= ty <= chart.height
    dist = np.hypot(np.array(chart.xs) - tx, np.array(chart.ys) - ty)
    assert dist.min() <= 50 + EPS  # placed within radius / 2 of a code
    near = [c for c, d in zip(chart.codes, dist) if d <= 100]
    far = [c for c, d in zip(chart.codes, dist) if d > 100]
    assert near and all(sentinel_correct(chart, trial.target, c) for c in near)
    assert not any(sentinel_correct(chart, trial.target, c) for c in far)


def test_sentinel_correct_is_within_100_px_inclusive():
    chart = Chart(width=800.0, height=600.0, seed=0, font_px=11.1, codes=("A12", "B34", "C56"),
                  xs=(100.0, 400.0, 500.0), ys=(300.0, 400.0, 300.0), spacing=(66.6, 44.4), columns=3, rows=1)
    target = (400.0, 300.0)
    assert sentinel_correct(chart, target, "b34")  # exactly 100 px
    assert not sentinel_correct(chart, target, "A12")  # 300 px
    assert sentinel_correct(chart, target, "C56")
    assert not sentinel_correct(chart, target, "C56", radius_px=99.5)
    assert not sentinel_correct(chart, target, "Z98")  # invalid answer
    assert not sentinel_correct(chart, (400.0, 299.5), "B34")  # 100.5 px


def test_sentinel_radius_must_be_positive():
    with pytest.raises(ValueError, match="radius_px must be a positive number"):
        sentinel_chart(800, 600, 1, radius_px=0)


def test_json_carries_exactly_the_chart_the_server_checks():
    trial = sentinel_chart(800, 600, 99)
    data = json.loads(json.dumps(to_json(trial)))
    assert data["kind"] == "sentinel" and "target" not in data and "seed" not in data  # only the server knows
    assert locate_sentinel_target(data["sentinel_png"], data["width"]) == pytest.approx(trial.target, abs=0.2)
    for item in data["codes"]:
        assert code_position(trial.chart, item["code"]) == (item["x"], item["y"])
    image = json.loads(json.dumps(to_json(generate_chart(800, 600, 99))))
    assert image["kind"] == "image" and "target" not in image and "sentinel_png" not in image
    assert from_seed(image["width"], image["height"], image["seed"]) == generate_chart(800, 600, 99)
    assert image["codes"] == data["codes"] and image["font_px"] == pytest.approx(11.1)
    with pytest.raises(ValueError, match="kind must be one of"):
        from_seed(800, 600, 99, kind="bubble")


def test_new_seeds_survive_a_browser_and_build_charts():
    seed = cc.new_seed()
    assert 0 <= seed < 2**53
    assert generate_chart(640, 480, seed).seed == seed


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 400), seeds)
def test_trial_plan_spreads_about_one_sentinel_in_seven(n_images, seed):
    plan = trial_plan(n_images, seed)
    assert plan == trial_plan(n_images, seed)
    assert plan.count("image") == n_images
    n_sentinels = plan.count("sentinel")
    assert n_sentinels == math.floor(n_images / 6 + 0.5)
    assert all(not (a == b == "sentinel") for a, b in zip(plan, plan[1:]))
    if n_images >= 60:
        assert abs(n_sentinels / len(plan) - 1 / 7) < 0.01
        runs = "".join("s" if k == "sentinel" else "i" for k in plan).split("s")
        assert max(len(r) for r in runs) <= 2 * 7


def test_trial_plan_order_depends_on_the_seed():
    plans = {trial_plan(70, seed) for seed in range(10)}
    assert len(plans) > 1
    assert trial_plan(0, 1) == () and trial_plan(2, 1) == ("image", "image")
    assert trial_plan(20, 1, sentinel_every=3).count("sentinel") == 10
    with pytest.raises(ValueError, match="sentinel_every must be an integer >= 2, got 1"):
        trial_plan(10, 1, sentinel_every=1)
    with pytest.raises(ValueError, match="n_images must be an integer >= 0, got -1"):
        trial_plan(-1, 1)


def test_tutorial_plan_is_3_images_and_3_sentinels_never_adjacent():
    plans = {tutorial_plan(seed) for seed in range(60)}
    assert len(plans) == 4  # every order with no two sentinels adjacent
    for plan in plans:
        assert plan.count("image") == 3 and plan.count("sentinel") == 3
        assert all(not (a == b == "sentinel") for a, b in zip(plan, plan[1:]))


def tutorial(invalid_images=0, missed_sentinels=0, invalid_sentinels=0):
    images = [("image", i >= invalid_images, None) for i in range(3)]
    sentinels = [("sentinel", i >= invalid_sentinels, i >= missed_sentinels + invalid_sentinels) for i in range(3)]
    return images + sentinels


def test_tutorial_gate():
    assert tutorial_passed(tutorial()) == (True, "passed: 0 invalid codes, 0 of 3 sentinels missed")
    assert tutorial_passed(tutorial(invalid_images=1))[0]
    passed, reason = tutorial_passed(tutorial(invalid_images=2))
    assert not passed and reason == "failed: 2 invalid codes (at most 1 allowed)"
    passed, reason = tutorial_passed(tutorial(missed_sentinels=1))
    assert not passed and reason == "failed: 1 of 3 sentinels missed (at most 0 allowed)"
    # An invalid code on a sentinel is also a missed sentinel.
    passed, reason = tutorial_passed(tutorial(invalid_images=1, invalid_sentinels=1))
    assert not passed and "2 invalid codes" in reason and "1 of 3 sentinels missed" in reason


def test_tutorial_gate_refuses_results_it_cannot_judge():
    with pytest.raises(ValueError, match="no sentinel trial"):
        tutorial_passed([("image", True, None)] * 3)
    with pytest.raises(ValueError, match="trial kind must be one of"):
        tutorial_passed([("practice", True, None)])
    with pytest.raises(ValueError, match="cannot be correct and invalid"):
        tutorial_passed([("sentinel", False, True)])


def test_timing_defaults_and_validation():
    assert cc.TIMING == Timing(fixation_ms=750, image_ms=(2000,), chart_ms=400)
    several = Timing(image_ms=[500, 2000, 5000])
    assert several.image_ms == (500, 2000, 5000)
    assert Timing.from_dict(several.as_dict()) == several
    assert json.loads(json.dumps(several.as_dict()))["image_ms"] == [500, 2000, 5000]
    with pytest.raises(ValueError, match="image_ms must hold at least one duration"):
        Timing(image_ms=())
    with pytest.raises(ValueError, match="chart_ms must be a positive integer of milliseconds, got 0"):
        Timing(chart_ms=0)
    with pytest.raises(ValueError, match="image_ms must be a positive integer of milliseconds, got 1.5"):
        Timing(image_ms=(1000, 1.5))
    with pytest.raises(ValueError, match=r"unknown timing keys \['mask_ms'\]"):
        Timing.from_dict({"mask_ms": 100})
