"""analysis.metrics: hand-worked values, properties, the MIT loop as reference, bad input."""
import cv2
import numpy as np
import pandas as pd
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from analysis import metrics as mt
from analysis import scoring

EPS = 2.2204e-16

# 3x3 map with values 1..9 row by row: mean 5, population variance (16+9+4+1+0+1+4+9+16)/9 = 20/3.
RAMP = np.arange(1.0, 10.0).reshape(3, 3)
RAMP_STD = np.sqrt(20 / 3)


def _centres(mask):
    """Pixel centres (x, y) of a binary map's nonzero pixels."""
    rows, cols = np.nonzero(mask)
    return np.stack([cols + 0.5, rows + 0.5], axis=1)


# ---------------------------------------------------------------- hand-worked values


def test_nss_hand_worked_with_points_repeats_and_binary_map():
    # Fixations on 9 (row 2, col 2) and 7 (row 2, col 0): z = 4/std and 2/std, mean 3/std = 1.16190.
    assert mt.nss(RAMP, [[2.5, 2.5], [0.2, 2.9]]) == pytest.approx(3 / RAMP_STD)
    mask = np.zeros((3, 3), bool)
    mask[2, 2] = mask[2, 0] = True
    assert mt.nss(RAMP, mask) == pytest.approx(3 / RAMP_STD)
    # Repeated points count again: 9, 9, 7 -> (4 + 4 + 2) / 3 / std = 1.29099.
    assert mt.nss(RAMP, [[2.5, 2.5], [2.1, 2.9], [0.5, 2.5]]) == pytest.approx(10 / 3 / RAMP_STD)


def test_cc_hand_worked():
    # a: one 1 among 3x3 zeros, b: two 1s covering it. sum(da*db) = 1 - 9*(1/9)*(2/9) = 7/9,
    # sum(da^2) = 1 - 1/9 = 8/9, sum(db^2) = 2 - 4/9 = 14/9 -> r = 7 / sqrt(112) = sqrt(7)/4.
    a = np.zeros((3, 3))
    a[0, 0] = 1
    b = a.copy()
    b[0, 1] = 1
    assert mt.cc(a, b) == pytest.approx(np.sqrt(7) / 4)
    assert mt.cc(a, -a) == pytest.approx(-1.0)


def test_sim_hand_worked():
    # a -> 0.5, 0.5 on (0,0), (0,1); b -> 0.25 on (0,0), 0.75 on (2,2). Minima: 0.25 + 0 + 0.
    a = np.array([[2.0, 2, 0], [0, 0, 0], [0, 0, 0]])
    b = np.array([[1.0, 0, 0], [0, 0, 0], [0, 0, 3]])
    assert mt.sim(a, b) == pytest.approx(0.25)


def test_kld_hand_worked():
    # Uniform prediction 1/9; gt 1/2 on two pixels: 2 * 0.5 * log(0.5 / (1/9)) = log(4.5) = 1.50408.
    gt = np.zeros((3, 3))
    gt[0, :2] = 1
    assert mt.kld(np.ones((3, 3)), gt) == pytest.approx(np.log(4.5))
    # All gt mass where the prediction is 0: 1 * log(EPS + 1 / EPS) = 36.04 nats, finite.
    pred, gt = np.zeros((3, 3)), np.zeros((3, 3))
    pred[2, 2] = gt[0, 0] = 1
    assert mt.kld(pred, gt) == pytest.approx(np.log(EPS + 1 / EPS))


def test_auc_judd_hand_worked():
    # Fixations on 9 and 5; 7 negatives. t = 9: tp 1/2, fp (1 - 1)/7 = 0. t = 5: 5 pixels >= 5,
    # tp 1, fp (5 - 2)/7. Curve (0,0) (0,.5) (3/7,1) (1,1): 3/7 * 0.75 + 4/7 * 1 = 25/28.
    assert mt.auc_judd(RAMP, [[2.5, 2.5], [1.5, 1.5]]) == pytest.approx(25 / 28)


def test_auc_judd_ties_and_constant_map():
    # Centre 1, rest 0; fixations on the centre and a 0-corner. t = 1: tp .5, fp 0. t = 0 (tied
    # with all 7 negatives): tp 1, fp 1. Area: 1 * (0.5 + 1) / 2 = 0.75.
    bump = np.zeros((3, 3))
    bump[1, 1] = 1
    assert mt.auc_judd(bump, [[1.5, 1.5], [0.5, 0.5]]) == pytest.approx(0.75)
    assert mt.auc_judd(np.full((4, 4), 3.0), [[1.5, 1.5], [0.5, 0.5]]) == 0.5


def test_auc_borji_hand_worked_expectation():
    # 4x4 zeros, 1 at the single fixation. A split's one random pixel is that pixel with
    # probability 1/16 (AUC 0.5: tp = fp = 1 at every threshold) and a 0 otherwise (AUC 1).
    # Expected 15/16 + 0.5/16 = 0.96875; with 4000 splits the sd of the mean is about 0.002.
    bump = np.zeros((4, 4))
    bump[1, 2] = 1
    assert mt.auc_borji(bump, [[2.5, 1.5]], n_splits=4000, rng=0) == pytest.approx(0.96875, abs=0.01)
    assert mt.auc_borji(np.ones((4, 4)), [[2.5, 1.5]], rng=0) == 0.5


def test_sauc_hand_worked():
    # RAMP normalised: (v - 1) / 8. Fixations on 9 -> 1.0 and 6 -> 0.625; other images' fixations
    # on 7 -> 0.75 and 1 -> 0.0. Two negatives for two positives: every split uses both.
    # Thresholds 1.0 .. 0.8: tp .5 fp 0; 0.7: tp .5 fp .5; 0.6 .. 0.1: tp 1 fp .5; 0: 1, 1.
    # Area: .5 * .5 + .5 * 1 = 0.75 (= Mann-Whitney 3 of 4 pairs).
    fixations = [[2.5, 2.5], [2.5, 1.5]]
    others = [[0.5, 2.5], [0.5, 0.5]]
    assert mt.sauc(RAMP, fixations, others) == pytest.approx(0.75)
    assert mt.sauc(RAMP, fixations, others, n_splits=3, rng=7) == pytest.approx(0.75)


def test_sauc_draws_as_many_negatives_as_fixations():
    # One fixation on 5 -> 0.5; other fixations on 1 -> 0.0 and 8 -> 0.875. A split draws one
    # of them: against 0.0 the AUC is 1, against 0.875 it is 0 (never 0.5, which both at once give).
    fixation, others = [[1.5, 1.5]], [[0.5, 0.5], [1.5, 2.5]]
    assert {mt.sauc(RAMP, fixation, others, n_splits=1, rng=seed) for seed in range(20)} == {0.0, 1.0}
    assert mt.sauc(RAMP, fixation, others, n_splits=400, rng=0) == pytest.approx(0.5, abs=0.1)
    assert mt.sauc(RAMP, fixation, others, n_splits=5, rng=9) == mt.sauc(RAMP, fixation, others, n_splits=5, rng=9)


def test_info_gain_hand_worked():
    # p: 2 in the centre, 1 elsewhere -> 0.2 and 0.1; baseline uniform 1/9. Fixations on the
    # centre and a corner: (log2(0.2*9) + log2(0.1*9)) / 2 = log2(1.62) / 2 = 0.34800 bits.
    pred = np.ones((3, 3))
    pred[1, 1] = 2
    assert mt.info_gain(pred, np.ones((3, 3)), [[1.5, 1.5], [0.0, 0.0]]) == pytest.approx(np.log2(1.62) / 2)


def test_degenerate_constant_maps_get_documented_values():
    flat = np.full((4, 4), 0.25)
    assert mt.nss(flat, [[1.0, 1.0]]) == 0.0
    assert mt.cc(flat, RAMP) == 0.0
    assert mt.cc(RAMP, flat) == 0.0
    assert mt.sim(flat, flat) == pytest.approx(1.0)
    assert mt.kld(flat, flat) == pytest.approx(0.0, abs=1e-12)
    assert mt.sauc(flat, [[1.0, 1.0]], [[2.0, 2.0]]) == 0.5


# ---------------------------------------------------------------- properties

SHAPES = st.tuples(st.integers(2, 16), st.integers(2, 16))
FLOAT_MAPS = hnp.arrays(np.float64, SHAPES, elements=st.floats(0, 1, allow_subnormal=False))
# Integer-valued maps: strictly increasing transforms keep distinct values distinct.
INT_MAPS = hnp.arrays(np.int64, SHAPES, elements=st.integers(0, 255)).map(lambda a: a.astype(np.float64))
PROPERTY = settings(max_examples=40, deadline=None)


def _fixation_mask(data, shape):
    """A drawn binary fixation map with at least one fixated and one non-fixated pixel."""
    mask = data.draw(hnp.arrays(bool, shape))
    assume(mask.any() and not mask.all())
    return mask


def test_cc_of_maps_with_tiny_values_is_still_defined():
    """Found by hypothesis in CI: the product of the two squared norms underflowed to 0."""
    a = np.array([[2.98525477e-95, 0.0], [0.0, 0.0]])
    assert mt.cc(a, a) == pytest.approx(1.0)
    assert mt.cc(a, np.array([[0.0, 1e-300], [0.0, 0.0]])) == pytest.approx(-1 / 3)


@PROPERTY
@given(FLOAT_MAPS, st.data())
def test_cc_with_itself_is_one_and_symmetric(a, data):
    b = data.draw(hnp.arrays(np.float64, a.shape, elements=st.floats(0, 1, allow_subnormal=False)))
    assume(np.ptp(a) > 0)
    assert mt.cc(a, a) == pytest.approx(1.0)
    assert mt.cc(a, b) == pytest.approx(mt.cc(b, a), abs=1e-12)
    assert -1.0 <= mt.cc(a, b) <= 1.0


@PROPERTY
@given(FLOAT_MAPS, st.data())
def test_sim_in_unit_interval_and_one_for_identical(a, data):
    b = data.draw(hnp.arrays(np.float64, a.shape, elements=st.floats(0, 1, allow_subnormal=False)))
    assume(a.sum() > 0 and b.sum() > 0)
    assert 0.0 <= mt.sim(a, b) <= 1.0 + 1e-12
    assert mt.sim(a, a) == pytest.approx(1.0)
    assert mt.sim(a, 7 * a) == pytest.approx(1.0)


@PROPERTY
@given(FLOAT_MAPS, st.data())
def test_kld_nonnegative_and_zero_only_for_equal_densities(a, data):
    b = data.draw(hnp.arrays(np.float64, a.shape, elements=st.floats(0, 1, allow_subnormal=False)))
    assume(a.sum() > 0 and b.sum() > 0)
    assert mt.kld(a, a) == pytest.approx(0.0, abs=1e-12)
    # Pinsker: KL >= ||g - p||_1^2 / 2, so it is 0 only when the densities are equal.
    l1 = np.abs(a / a.sum() - b / b.sum()).sum()
    assert mt.kld(a, b) >= 0.5 * l1**2 - 1e-9


@PROPERTY
@given(INT_MAPS, st.data())
def test_aucs_in_unit_interval_and_judd_invariant_under_increasing_transforms(values, data):
    mask = _fixation_mask(data, values.shape)
    judd = mt.auc_judd(values, mask)
    for auc in (judd, mt.auc_borji(values, mask, n_splits=5, rng=1), mt.sauc(values, mask, ~mask, n_splits=5, rng=1)):
        assert 0.0 <= auc <= 1.0
    for transform in (np.sqrt, lambda v: np.exp(v / 64), lambda v: v**3 + v - 1000):
        assert mt.auc_judd(transform(values), mask) == pytest.approx(judd, abs=1e-12)


@PROPERTY
@given(INT_MAPS, st.data(), st.integers(1, 5), st.integers(-1000, 1000))
def test_borji_and_sauc_invariant_under_positive_affine_transforms(values, data, scale, offset):
    # Fixed thresholds on the [0, 1]-normalised map: only affine maps keep every value's place.
    mask = _fixation_mask(data, values.shape)
    moved = scale * values + offset
    assert mt.auc_borji(moved, mask, n_splits=5, rng=3) == pytest.approx(mt.auc_borji(values, mask, n_splits=5, rng=3))
    assert mt.sauc(moved, mask, ~mask, n_splits=5, rng=3) == pytest.approx(mt.sauc(values, mask, ~mask, n_splits=5, rng=3))


@PROPERTY
@given(INT_MAPS, st.data(), st.floats(0.1, 10), st.floats(-1000, 1000))
def test_nss_invariant_under_positive_affine_rescaling(values, data, scale, offset):
    mask = _fixation_mask(data, values.shape)
    assert mt.nss(scale * values + offset, mask) == pytest.approx(mt.nss(values, mask), rel=1e-9, abs=1e-9)


# ---------------------------------------------------------------- MIT's loops as references


def mit_auc_judd_loop(saliency_map, fixation_map):
    """MIT AUC_Judd.m (jitter off): a pass over the map per fixated value."""
    s = np.asarray(saliency_map, np.float64)
    s = ((s - s.min()) / (s.max() - s.min())).ravel()
    s_fix = s[fixation_map.ravel() > 0]
    n_fix, n_pix = len(s_fix), len(s)
    tp, fp = np.zeros(n_fix + 2), np.zeros(n_fix + 2)
    tp[-1] = fp[-1] = 1
    for i, thresh in enumerate(np.sort(s_fix)[::-1], start=1):
        above = np.sum(s >= thresh)
        tp[i] = i / n_fix
        fp[i] = (above - i) / (n_pix - n_fix)
    return np.sum(np.diff(fp) * (tp[1:] + tp[:-1]) / 2)


def mit_auc_borji_loop(saliency_map, fixation_map, n_splits, step, seed):
    """MIT AUC_Borji.m, drawing its random pixels with the same call as auc_borji."""
    s = np.asarray(saliency_map, np.float64)
    s = ((s - s.min()) / (s.max() - s.min())).ravel()
    s_fix = s[fixation_map.ravel() > 0]
    n_fix = len(s_fix)
    random_values = s[np.random.default_rng(seed).integers(0, len(s), size=(n_splits, n_fix))]
    aucs = []
    for cur in random_values:
        thresholds = step * np.arange(int(np.floor(max(s_fix.max(), cur.max()) / step + 1e-9)), -1, -1)
        tp = np.concatenate([[0], [np.sum(s_fix >= t) / n_fix for t in thresholds], [1]])
        fp = np.concatenate([[0], [np.sum(cur >= t) / n_fix for t in thresholds], [1]])
        aucs.append(np.sum(np.diff(fp) * (tp[1:] + tp[:-1]) / 2))
    return np.mean(aucs)


@pytest.mark.parametrize("seed", range(12))
def test_auc_judd_matches_the_mit_loop_on_random_maps(seed):
    rng = np.random.default_rng(seed)
    shape = tuple(rng.integers(5, 60, size=2))
    values = rng.random(shape).astype(np.float32 if seed % 2 else np.float64)
    mask = rng.random(shape) < rng.uniform(0.02, 0.5)
    mask.flat[0], mask.flat[-1] = True, False
    expected = mit_auc_judd_loop(values, mask)
    assert mt.auc_judd(values, mask) == pytest.approx(expected, abs=1e-12)
    jittered = _centres(mask) + rng.uniform(-0.49, 0.49, size=(mask.sum(), 2))
    assert mt.auc_judd(values, jittered) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("seed", range(4))
def test_auc_borji_matches_the_mit_loop_on_random_maps(seed):
    rng = np.random.default_rng(seed)
    values = rng.random((20, 30))
    mask = rng.random((20, 30)) < 0.1
    mask[0, 0] = True
    expected = mit_auc_borji_loop(values, mask, n_splits=20, step=0.1, seed=seed)
    assert mt.auc_borji(values, mask, n_splits=20, rng=seed) == pytest.approx(expected, abs=1e-12)


def mit_sauc_loop(saliency_map, fixation_map, other_map, n_splits, step, seed):
    """MIT AUC_shuffled.m: negatives drawn from the other images' fixated pixels as sauc draws
    them (a random subset of min(N, M) per split), a loop over splits and thresholds."""
    s = np.asarray(saliency_map, np.float64)
    s = ((s - s.min()) / (s.max() - s.min())).ravel()
    s_fix = s[fixation_map.ravel() > 0]
    others = np.flatnonzero(other_map)
    n_neg = min(len(s_fix), len(others))
    generator = np.random.default_rng(seed)
    aucs = []
    for _ in range(n_splits):
        cur = s[others[generator.choice(len(others), n_neg, replace=False)]]
        thresholds = step * np.arange(int(np.floor(max(s_fix.max(), cur.max()) / step + 1e-9)), -1, -1)
        tp = np.concatenate([[0], [np.sum(s_fix >= t) / len(s_fix) for t in thresholds], [1]])
        fp = np.concatenate([[0], [np.sum(cur >= t) / n_neg for t in thresholds], [1]])
        aucs.append(np.sum(np.diff(fp) * (tp[1:] + tp[:-1]) / 2))
    return np.mean(aucs)


@pytest.mark.parametrize("seed", range(4))
def test_sauc_matches_the_mit_loop_with_few_and_many_other_fixations(seed):
    rng = np.random.default_rng(seed)
    values = rng.random((20, 30)).astype(np.float32 if seed % 2 else np.float64)
    mask = rng.random((20, 30)) < 0.1
    mask[0, 0] = True
    # Few other fixated pixels (sorted out one by one) and many (marked on a map): one result.
    for share in (0.05, 0.6):
        others = rng.random((20, 30)) < share
        others[1, 1] = True
        expected = mit_sauc_loop(values, mask, others, n_splits=20, step=0.1, seed=seed)
        assert mt.sauc(values, mask, others, n_splits=20, rng=seed) == pytest.approx(expected, abs=1e-12)
        points = np.repeat(_centres(others), 2, axis=0)  # repeats count once
        assert mt.sauc(values, mask, points, n_splits=20, rng=seed) == pytest.approx(expected, abs=1e-12)


# ---------------------------------------------------------------- against whole-map float64 numpy

# Maps larger than one block of the metrics' float64 passes (8192 values), of a size that is not
# a multiple of it; the float32 maps are compared with float64 arithmetic on the same values.
BLOCKED_SHAPE = (131, 97)


def _reference_values(pred, gt, points, baseline):
    """NSS, CC, SIM, KLD and information gain as their definitions read, on whole float64 maps."""
    p, g, b = (np.asarray(m, np.float64) for m in (pred, gt, baseline))
    rows, cols = np.floor(points[:, 1]).astype(int), np.floor(points[:, 0]).astype(int)
    pn, gn, bn = p / p.sum(), g / g.sum(), b / b.sum()
    return {
        "nss": np.mean(((p - p.mean()) / p.std())[rows, cols]),
        "cc": np.corrcoef(p.ravel(), g.ravel())[0, 1],
        "sim": np.minimum(pn, gn).sum(),
        "kld": np.sum(gn * np.log(EPS + gn / (pn + EPS))),
        "info_gain": np.mean(np.log2(EPS + pn[rows, cols]) - np.log2(EPS + bn[rows, cols])),
    }


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("offset", [0.0, 1e3])
def test_blocked_float64_passes_equal_whole_map_numpy(dtype, offset):
    rng = np.random.default_rng(int(offset) + (dtype == np.float32))
    smooth = cv2.GaussianBlur(rng.random(BLOCKED_SHAPE), (0, 0), 4)
    pred = (offset + smooth + 0.1 * rng.random(BLOCKED_SHAPE)).astype(dtype)
    gt = (offset + cv2.GaussianBlur(rng.random(BLOCKED_SHAPE), (0, 0), 6)).astype(dtype)
    baseline = rng.random(BLOCKED_SHAPE).astype(dtype) + 0.5
    points = rng.random((60, 2)) * BLOCKED_SHAPE[::-1]
    expected = _reference_values(pred, gt, points, baseline)
    got = {"nss": mt.nss(pred, points), "cc": mt.cc(pred, gt), "sim": mt.sim(pred, gt), "kld": mt.kld(pred, gt),
           "info_gain": mt.info_gain(pred, baseline, points)}
    for name, value in expected.items():
        assert got[name] == pytest.approx(value, rel=1e-11, abs=1e-14), name
    # Resized first (bilinear, float64), then the same.
    small = cv2.resize(pred.astype(np.float64), (40, 30), interpolation=cv2.INTER_AREA).astype(dtype)
    resized = cv2.resize(small.astype(np.float64), BLOCKED_SHAPE[::-1], interpolation=cv2.INTER_LINEAR)
    assert mt.cc(small, gt) == pytest.approx(_reference_values(resized, gt, points, baseline)["cc"], rel=1e-11)
    assert mt.kld(small, gt) == pytest.approx(_reference_values(resized, gt, points, baseline)["kld"], rel=1e-11)

# ---------------------------------------------------------------- input forms and resizing


def test_points_and_binary_map_give_the_same_result():
    rng = np.random.default_rng(5)
    values = rng.random((12, 10))
    mask = rng.random((12, 10)) < 0.2
    points = _centres(mask) + rng.uniform(-0.5, 0.49, size=(mask.sum(), 2))
    others = rng.random((12, 10)) < 0.3
    baseline = rng.random((12, 10)) + 0.1
    for metric in (mt.nss, mt.auc_judd):
        assert metric(values, points) == pytest.approx(metric(values, mask))
    assert mt.auc_borji(values, points, rng=2) == pytest.approx(mt.auc_borji(values, mask, rng=2))
    assert mt.sauc(values, points, _centres(others), rng=2) == pytest.approx(mt.sauc(values, mask, others, rng=2))
    assert mt.info_gain(values, baseline, points) == pytest.approx(mt.info_gain(values, baseline, mask))


def test_a_smaller_prediction_is_resized_bilinearly_to_the_ground_truth():
    rng = np.random.default_rng(1)
    small, gt = rng.random((3, 4)), rng.random((6, 8))
    mask = rng.random((6, 8)) < 0.3
    mask[0, 0], mask[5, 7] = True, False
    resized = cv2.resize(small, (8, 6), interpolation=cv2.INTER_LINEAR)
    assert mt.nss(small, mask) == pytest.approx(mt.nss(resized, mask))
    assert mt.cc(small, gt) == pytest.approx(mt.cc(resized, gt))
    assert mt.kld(small, gt) == pytest.approx(mt.kld(resized, gt))
    expected = scoring.score(resized, gt, mask, rng=0)
    got = scoring.score(small, gt, _centres(mask), rng=0)
    assert got == pytest.approx(expected)


def test_points_without_a_ground_truth_use_the_prediction_shape():
    pred = np.array([[0.0, 0, 0, 1], [0, 0, 0, 0]])  # 2 rows, 4 columns
    mask = np.zeros((2, 4), bool)
    mask[:, 3] = True
    assert mt.nss(pred, [[3.5, 0.5], [3.2, 1.9]]) == pytest.approx(mt.nss(pred, mask))
    with pytest.raises(ValueError, match=r"fixations\[0\] = \(x=1, y=2\) lies outside.*0 <= y < 2"):
        mt.nss(pred, [[1.0, 2.0]])


# ---------------------------------------------------------------- score and score_many


def test_score_default_metrics_are_those_computable_from_the_inputs():
    rng = np.random.default_rng(3)
    pred, gt = rng.random((6, 6)), rng.random((6, 6))
    points = rng.random((5, 2)) * 6
    result = scoring.score(pred, gt, points, rng=0)
    assert list(result) == ["nss", "cc", "sim", "kld", "auc_judd", "auc_borji"]
    assert result["cc"] == pytest.approx(mt.cc(pred, gt))
    assert result["auc_judd"] == pytest.approx(mt.auc_judd(pred, points))
    assert list(scoring.score(pred, gt)) == ["cc", "sim", "kld"]
    full = scoring.score(pred, gt, points, other_fixations=rng.random((9, 2)) * 6, baseline=gt, rng=0)
    assert list(full) == list(mt.METRICS)
    assert full["info_gain"] == pytest.approx(mt.info_gain(pred, gt, points))
    assert scoring.score(pred, gt, points, metrics="kld") == {"kld": pytest.approx(mt.kld(pred, gt))}


def test_score_many_one_row_per_item_and_other_items_as_sauc_negatives():
    # Two 3x3 items with two fixated pixels each: sAUC draws min(2, 2) = 2 negatives, i.e.
    # all of the other item's pixels, so every split is the same and the value is exact.
    fix_a = np.array([[2.5, 2.5], [2.5, 1.5]])
    fix_b = np.array([[0.5, 2.5], [0.5, 0.5]])
    items = [("a", RAMP, RAMP, fix_a), {"name": "b", "pred": RAMP[::-1], "gt_map": RAMP, "fixations": fix_b}]
    table = scoring.score_many(items, rng=0)
    assert isinstance(table, pd.DataFrame)
    assert list(table.columns) == ["name", "nss", "cc", "sim", "kld", "auc_judd", "auc_borji", "sauc"]
    assert list(table["name"]) == ["a", "b"]
    assert table.loc[0, "sauc"] == pytest.approx(0.75)
    assert table.loc[0, "sauc"] == pytest.approx(mt.sauc(RAMP, fix_a, fix_b))
    assert table.loc[1, "sauc"] == pytest.approx(mt.sauc(RAMP[::-1], fix_b, fix_a))
    assert table.loc[1, "cc"] == pytest.approx(mt.cc(RAMP[::-1], RAMP))


def test_score_many_rescales_other_items_fixations_to_each_size():
    rng = np.random.default_rng(4)
    items = [("small", rng.random((4, 6)), None, rng.random((5, 2)) * [6, 4]),
             ("large", rng.random((40, 60)), None, rng.random((7, 2)) * [60, 40])]
    table = scoring.score_many(items, metrics=["sauc", "nss"], rng=1)
    assert list(table.columns) == ["name", "nss", "sauc"]
    assert table["sauc"].between(0, 1).all()


# ---------------------------------------------------------------- bad input

GOOD = RAMP
POINTS = [[0.5, 0.5], [2.5, 2.5]]


def _with(value, row=0, col=0):
    bad = RAMP.copy()
    bad[row, col] = value
    return bad


@pytest.mark.parametrize("call, message", [
    (lambda: mt.nss(_with(np.nan), POINTS), r"saliency_map contains 1 NaN"),
    (lambda: mt.auc_judd(_with(np.inf), POINTS), r"saliency_map .*1 infinite"),
    (lambda: mt.auc_borji(np.ones((3, 3, 3)), POINTS), r"saliency_map has shape \(3, 3, 3\)"),
    (lambda: mt.sauc(np.ones(9), POINTS, POINTS), r"saliency_map has shape \(9,\)"),
    (lambda: mt.cc(_with(np.nan), GOOD), r"map_a contains"),
    (lambda: mt.cc(GOOD, np.array([["a"]])), r"map_b has dtype"),
    (lambda: mt.sim(_with(-1.0), GOOD), r"map_a has negative values \(min -1\)"),
    (lambda: mt.sim(GOOD, np.zeros((3, 3))), r"map_b is all zeros"),
    (lambda: mt.kld(_with(-0.5), GOOD), r"pred has negative values"),
    (lambda: mt.kld(GOOD, np.zeros((3, 3))), r"gt is all zeros"),
    (lambda: mt.info_gain(GOOD, _with(-2.0), POINTS), r"baseline_density has negative"),
    (lambda: mt.info_gain(np.zeros((3, 3)), GOOD, POINTS), r"pred_density is all zeros"),
    (lambda: mt.nss(GOOD, np.zeros((0, 2))), r"fixations is empty"),
    (lambda: mt.auc_judd(GOOD, np.zeros((3, 3), bool)), r"fixations has no fixated pixel"),
    (lambda: mt.nss(GOOD, [[3.0, 0.5]]), r"fixations\[0\] = \(x=3, y=0.5\) lies outside.*0 <= x < 3"),
    (lambda: mt.nss(GOOD, [[0.5, 0.5], [1.0, -0.1]]), r"fixations\[1\] .*outside"),
    (lambda: mt.nss(GOOD, [[np.nan, 1.0]]), r"fixations contains 1 NaN"),
    (lambda: mt.nss(GOOD, np.ones((3, 3, 2))), r"fixations has shape \(3, 3, 2\)"),
    (lambda: mt.auc_judd(np.ones((4, 4)), np.ones((4, 4), bool)), r"fixations cover all 16 pixels"),
    (lambda: mt.sauc(GOOD, POINTS, np.zeros((0, 2))), r"other_fixations is empty"),
    (lambda: mt.sauc(GOOD, POINTS, [[9.0, 1.0]]), r"other_fixations\[0\] .*outside"),
    (lambda: mt.auc_borji(GOOD, POINTS, n_splits=0), r"n_splits must be an integer >= 1, got 0"),
    (lambda: mt.auc_borji(GOOD, POINTS, step=0), r"step must be a number in \(0, 1\], got 0"),
    (lambda: mt.auc_borji(GOOD, POINTS, rng="seed"), r"rng must be a numpy Generator"),
    (lambda: scoring.score(GOOD, GOOD, POINTS, metrics=["sauc"]), r"metric 'sauc' needs other_fixations"),
    (lambda: scoring.score(GOOD, GOOD, POINTS, metrics=["info_gain"]), r"metric 'info_gain' needs baseline"),
    (lambda: scoring.score(GOOD, fixations=POINTS, metrics=["cc"]), r"metric 'cc' needs gt_map"),
    (lambda: scoring.score(GOOD, GOOD, metrics=["nss"]), r"metric 'nss' needs fixations"),
    (lambda: scoring.score(GOOD, GOOD, POINTS, metrics=["auc"]), r"unknown metric 'auc'"),
    (lambda: scoring.score(_with(-1.0), GOOD, POINTS), r"pred has negative values"),
    (lambda: scoring.score(GOOD, np.zeros((3, 3)), POINTS), r"gt_map is all zeros"),
    (lambda: scoring.score(GOOD, GOOD, np.ones((4, 4), bool)), r"fixations is a map of shape \(4, 4\); expected shape \(3, 3\)"),
    (lambda: scoring.score_many([("a", GOOD)]), r"items\[0\] must be"),
])
def test_bad_input_raises_value_error_naming_the_argument(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_metrics_registry_names_every_metric():
    assert list(mt.METRICS) == ["nss", "cc", "sim", "kld", "auc_judd", "auc_borji", "sauc", "info_gain"]
    assert all(callable(f) for f in mt.METRICS.values())
