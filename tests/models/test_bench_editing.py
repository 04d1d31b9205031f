"""benchmarks/bench_editing.py: its fixed-edit frontier on a toy predictor where the optimum is known.

The toy: the benchmark's own `LuminanceSaliency` (log-softmax of 4 × blurred luminance) both trains
and measures; each image is a grey ground, a bright grey box and a dim shaded brown box (the mask,
lit from above). Under a luminance predictor the density gained per unit of luminance is
proportional to the local density, so among the single knobs the best way to raise p(mask) is the
one that scales the mask's brightness, foreground exposure up (contrast puts its change on the
darker pixels, saturation keeps the luminance, background exposure pays for ten times the area);
and an edit that brightens only the brighter, upper half of the mask beats every knob at its size.
The same toy shows why a decrease row is read on Δp, not on the max-normalised Δsal. No training: fast.
"""
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmarks import _editing_references as refs
from models.editors import gazeshift_ops as ops

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_editing.py"
H, W = 48, 64


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_editing", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_editing"] = module  # dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop("bench_editing", None)


@pytest.fixture(scope="module")
def toy(bench):
    """Three toy cases (module docstring), their rule, and the fixed-edit grid the rule measures."""
    images, masks = [], []
    for i in range(3):
        image = torch.full((3, H, W), 0.4)
        y0, x0 = 8 + 4 * i, 6 + 5 * i
        shade = torch.linspace(1.1, 0.75, 14)[None, :, None]
        image[:, y0:y0 + 14, x0:x0 + 16] = torch.tensor([0.5, 0.3, 0.2])[:, None, None] * shade
        image[:, 28:40, 40:56] = 0.8
        mask = torch.zeros(1, H, W)
        mask[:, y0:y0 + 14, x0:x0 + 16] = 1
        images.append(image)
        masks.append(mask)
    rule = bench.LuminanceSaliency()
    images_t, masks_t = torch.stack(images), torch.stack(masks)
    with torch.no_grad():
        before = rule.density(images_t)
    cases = {"images": images_t, "masks": masks_t, "scene": np.arange(3), "before": before, "before_rule": before}
    return cases, rule, refs.fixed_edit_grid(cases, rule, rule)


def _path(grid, knob, sign):
    return next(path for path in grid["paths"] if path["knob"] == knob and path["sign"] == sign)


def test_a_fixed_foreground_exposure_is_gazeshiftnet_s_own_edit_with_an_identity_background(toy):
    cases, _, _ = toy
    images, masks = cases["images"], cases["masks"]
    fg = ops.identity_parameters(len(images), 8)
    fg["exposure"] = torch.full((len(images),), 1.5)
    params = {"fg": fg, "bg": ops.identity_parameters(len(images), 8)}
    expected = ops.apply_parameters(images, masks, params, mask_blur_px=refs.MASK_BLUR * H)
    assert torch.allclose(refs.fixed_edit(images, masks, "fg exposure", 1.5), expected, atol=1e-6)


def test_brighter_foreground_moves_attention_monotonically_and_saturation_not_at_all(toy):
    _, _, grid = toy
    exposure = _path(grid, "fg exposure", 1)
    assert exposure["strengths"].tolist() == pytest.approx(np.arange(1, 13) / 4)  # +0.25 … +3 stops
    # until every pixel of the box clips (+2.75 stops for its darkest channel), size and Δp both grow
    assert (np.diff(exposure["size"].mean(1)[:10]) > 0).all()
    assert (np.diff(exposure["dp"].mean(1)[:10]) > 0).all()
    for sign in (1, -1):  # saturation keeps the luminance: a visible edit, no gain
        saturation = _path(grid, "fg saturation", sign)
        assert saturation["size"].min() > 5e-4
        assert np.abs(saturation["dp"]).max() < 1e-5


def test_the_frontier_is_foreground_exposure_up_wherever_it_reaches(toy):
    _, _, grid = toy
    exposure = _path(grid, "fg exposure", 1)
    for case, frontier in enumerate(grid["frontiers"]["increase"]):
        on_it = [frontier.gain_at(size) for size in exposure["size"][:, case]]
        assert on_it == pytest.approx(exposure["dp"][:, case].tolist(), abs=1e-12)
    for size in (0.002, 0.01, 0.03, 0.05):
        knob, strength, dp = refs.best_fixed_at(grid, size, "increase")
        assert knob == "fg exposure" and strength > 0 and dp > 0
    # beyond the largest exposure edit the frontier stays at its best
    largest = exposure["size"].mean(1).max()
    assert refs.best_fixed_at(grid, largest + 0.1, "increase")[2] == pytest.approx(exposure["dp"].mean(1).max())


def test_the_line_search_finds_the_strength_of_the_same_mean_size(toy):
    cases, rule, grid = toy
    for size in (0.004, 0.02):
        knob, strength, dp = refs.best_fixed_at(grid, size, "increase")
        edited = refs.fixed_edit(cases["images"], cases["masks"], knob, strength)
        measured = refs.case_measures(edited, cases, rule, rule)
        assert measured["size"].mean() == pytest.approx(size, rel=0.03)
        assert measured["dp"].mean() == pytest.approx(dp, rel=0.05)


def test_the_decrease_frontier_darkens_the_foreground_and_keeps_the_sign(toy):
    _, _, grid = toy
    darkest = _path(grid, "fg exposure", -1)
    for size in (0.005, 0.01):
        knob, strength, dp = refs.best_fixed_at(grid, size, "decrease")
        assert knob == "fg exposure" and strength < 0 and dp < 0
    # past what darkening the box can change (all of it black), its best still counts: a brighter
    # ground of that size does less
    beyond = darkest["size"].mean(1).max() + 0.005
    assert refs.best_fixed_at(grid, beyond, "decrease")[:2] == ("fg exposure", -3.0)
    frontier = grid["frontiers"]["decrease"][0]
    assert frontier.gain_at(0.01) > 0  # gains are −Δp: a decrease frontier climbs too


def test_editors_are_called_above_or_below_their_cases_frontier(toy):
    cases, rule, grid = toy
    frontiers = grid["frontiers"]["increase"]
    # a fixed edit on the grid ties its own frontier: not above
    on_grid = refs.case_measures(refs.fixed_edit(cases["images"], cases["masks"], "fg exposure", 1.0), cases, rule,
                                 rule)
    assert not refs.per_case_above(frontiers, on_grid["size"], on_grid["dp"]).any()
    # the same edit's points nudged up or down by 0.005 of fixation mass
    assert refs.per_case_above(frontiers, on_grid["size"], on_grid["dp"] + 0.005).all()
    assert not refs.per_case_above(frontiers, on_grid["size"], on_grid["dp"] - 0.005).any()
    # the known better edit: the exposure on the mask's brighter, upper half only
    upper = cases["masks"].clone()
    for i in range(len(upper)):
        rows = torch.nonzero(upper[i, 0].sum(1)).flatten()
        upper[i, 0, (rows[0] + rows[-1]) // 2:] = 0
    for stops in (0.5, 1.5):
        better = refs.case_measures(refs.fixed_edit(cases["images"], upper, "fg exposure", stops), cases, rule, rule)
        assert refs.per_case_above(frontiers, better["size"], better["dp"]).all()
        # and the same edit asked to decrease attention is below the decrease frontier
        assert not refs.per_case_above(grid["frontiers"]["decrease"], better["size"], -better["dp"]).any()


def test_the_frontier_of_an_editor_s_own_size_holds_a_fixed_edit_between_grid_strengths_to_a_tie(toy):
    cases, rule, grid = toy
    between = refs.case_measures(refs.fixed_edit(cases["images"], cases["masks"], "fg exposure", 1.1), cases, rule,
                                 rule)
    frontiers = refs.matched_frontiers(cases, grid, between["size"], rule, rule, "increase")
    # the line search matches the size through interpolated strengths: a tie within 0.1 %
    at_size = [f.gain_at(size) for f, size in zip(frontiers, between["size"])]
    assert at_size == pytest.approx(between["dp"].tolist(), rel=1e-3)
    assert not refs.per_case_above(frontiers, between["size"], between["dp"]).any()
    upper = cases["masks"].clone()
    for i in range(len(upper)):
        rows = torch.nonzero(upper[i, 0].sum(1)).flatten()
        upper[i, 0, (rows[0] + rows[-1]) // 2:] = 0
    better = refs.case_measures(refs.fixed_edit(cases["images"], upper, "fg exposure", 1.1), cases, rule, rule)
    frontiers = refs.matched_frontiers(cases, grid, better["size"], rule, rule, "increase")
    assert refs.per_case_above(frontiers, better["size"], better["dp"]).all()


def test_a_flattened_background_lowers_p_mask_while_the_max_normalised_saliency_rises(toy):
    # why a decrease row is read on Δp: GazeShiftNet's contrast −1 on the background pulls its
    # highlights down and its large ground up, so the map's peak falls and every max-normalised
    # value rises, the mask's too, while the mask's share of the density falls
    cases, rule, _ = toy
    images, masks = cases["images"], cases["masks"]
    flat = ops.adjust_contrast(images, torch.full((len(images),), -1.0))
    measured = refs.case_measures(images + (1 - masks) * (flat - images), cases, rule, rule)
    assert (measured["dp"] < -0.001).all()
    assert (measured["sal"] > 0.05).all()


def test_the_last_lines_have_the_issue_s_form(bench):
    row = {"editor": "gazeshiftnet/decrease", "above": 0.254, "bg_ssim": 0.98765, "c2st": 0.5}
    assert bench.headline(row) == "editing gazeshiftnet/decrease above_frontier=0.25 bg_ssim=0.988 c2st=0.50"
