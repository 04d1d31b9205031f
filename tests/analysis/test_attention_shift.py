"""analysis.attention_shift: known answers on constructed 20x30 maps, invariances, bad input."""
import math

import numpy as np
import pytest

from analysis import attention_shift as ash

SHAPE = (20, 30)
EPS = 2.2204e-16


def _block(rows, cols, shape=SHAPE):
    mask = np.zeros(shape, bool)
    mask[rows, cols] = True
    return mask


# 6x6 = 36 pixels, at least 5 px from every border (the 7x7 WFb window never reaches it).
BLOCK = _block(slice(7, 13), slice(5, 11))


# ---------------------------------------------------------------- GazeShiftNet saliency increase


def _levels(inside, outside, peak, mask=BLOCK):
    """A map with `inside` on the mask, `outside` elsewhere, and `peak` at pixel (0, 0)."""
    values = np.where(mask, inside, outside).astype(np.float64)
    values[0, 0] = peak
    return values


def test_saliency_increase_on_max_normalised_maps():
    # Both maxima 1: inside 0.2 -> 0.6, so +0.4 absolute and 0.4 / 0.2 = 2.0 relative.
    before, after = _levels(0.2, 0.2, 1.0), _levels(0.6, 0.2, 1.0)
    assert ash.saliency_increase(before, after, BLOCK) == pytest.approx(0.4)
    assert ash.relative_saliency_increase(before, after, BLOCK) == pytest.approx(2.0)
    # Max-normalised: before with maximum 2 has 0.1 inside, so +0.5 and 0.5 / 0.1 = 5.0.
    before = _levels(0.2, 0.2, 2.0)
    assert ash.saliency_increase(before, after, BLOCK) == pytest.approx(0.5)
    assert ash.relative_saliency_increase(before, after, BLOCK) == pytest.approx(5.0)
    # A decrease, and a 0/1 integer mask.
    assert ash.saliency_increase(after, before, BLOCK.astype(np.uint8)) == pytest.approx(-0.5)
    assert ash.relative_saliency_increase(after, before, BLOCK) == pytest.approx(-0.5 / 0.6)


def test_saliency_increase_ignores_each_maps_scale_and_the_background():
    before, after = _levels(0.2, 0.2, 1.0), _levels(0.6, 0.2, 1.0)
    other_background = _levels(0.6, 0.9, 1.0)
    for a in (7.0 * after, other_background):
        assert ash.saliency_increase(1e-3 * before, a, BLOCK) == pytest.approx(0.4)
        assert ash.relative_saliency_increase(1e-3 * before, a, BLOCK) == pytest.approx(2.0)


def test_relative_saliency_increase_is_nan_when_before_is_zero_in_the_mask():
    before, after = _levels(0.0, 0.2, 1.0), _levels(0.6, 0.2, 1.0)
    assert ash.saliency_increase(before, after, BLOCK) == pytest.approx(0.6)
    assert math.isnan(ash.relative_saliency_increase(before, after, BLOCK))


# ---------------------------------------------------------------- weighted F-beta


def test_weighted_fbeta_known_answers():
    assert ash.weighted_fbeta(BLOCK.astype(float), BLOCK) == pytest.approx(1.0, abs=1e-12)
    assert ash.weighted_fbeta(5.0 * BLOCK, BLOCK) == pytest.approx(1.0, abs=1e-12)  # max-normalised
    assert ash.weighted_fbeta(np.zeros(SHAPE), BLOCK) == 0.0
    assert ash.weighted_fbeta(1.0 - BLOCK, BLOCK) == pytest.approx(0.0, abs=1e-12)
    # A mask touching the border: zero padding leaves a little recall there, still near 0.
    assert ash.weighted_fbeta(1.0 - BLOCK, np.roll(BLOCK, (-7, -5), axis=(0, 1))) < 0.15


def test_weighted_fbeta_hand_worked_recall_and_distance_weight():
    # 0.5 on the 36 mask pixels, 1.0 at one outside pixel 5 px right of the mask, 0 elsewhere.
    # E = 0.5 inside; outside pixels take the error of their nearest mask pixel (0.5), so the
    # 7x7 blur is 0.5 on the mask: Ew = 0.5 inside, R = 0.5, TPw = 36 - 18 = 18. Outside only
    # the bright pixel errs: E = 1, B = 2 - exp(ln(0.5) / 5 * 5) = 1.5, FPw = 1.5.
    # P = 18 / 19.5 = 12 / 13; Q = 2 * 0.5 * (12/13) / (0.5 + 12/13) = 12 / 18.5.
    values = 0.5 * BLOCK
    values[9, 15] = 1.0
    assert ash.weighted_fbeta(values, BLOCK) == pytest.approx(12 / 18.5, rel=1e-12)
    r, p = 0.5, 12 / 13
    assert ash.weighted_fbeta(values, BLOCK, beta2=0.3) == pytest.approx(1.3 * r * p / (r + 0.3 * p), rel=1e-12)
    # The same bright pixel 1 px from the mask weighs 2 - 0.5 ** 0.2 instead.
    values[9, 15], values[9, 11] = 0.0, 1.0
    p = 18 / (18 + 2 - 0.5**0.2)
    assert ash.weighted_fbeta(values, BLOCK) == pytest.approx(2 * r * p / (r + p), rel=1e-12)


def test_weighted_fbeta_hand_worked_error_dependency():
    # The mask with one missed pixel two pixels inside it: E = 1 there and 0 elsewhere. The
    # blur of E gives it the window's centre weight K_c = 1 / sum exp(-(x^2 + y^2) / 50)
    # (x, y in -3..3) < 1, which replaces its error; every other mask pixel keeps E = 0 (< EA).
    # R = 1 - K_c / 36, TPw = 36 - K_c, FPw = 0 so P = 1 (up to eps).
    values = BLOCK.astype(float)
    values[9, 7] = 0.0
    offsets = np.arange(-3, 4)
    k_centre = 1 / np.exp(-(offsets[:, None] ** 2 + offsets[None, :] ** 2) / 50).sum()
    r = 1 - k_centre / 36
    assert ash.weighted_fbeta(values, BLOCK) == pytest.approx(2 * r / (r + 1), rel=1e-12)


def test_weighted_fbeta_orders_maps_by_quality():
    blurred = np.where(BLOCK, 1.0, 0.3)
    assert ash.weighted_fbeta(BLOCK, BLOCK) > ash.weighted_fbeta(blurred, BLOCK) > ash.weighted_fbeta(1.0 - BLOCK, BLOCK)


# ---------------------------------------------------------------- CC to mask


def test_cc_to_mask_known_answers():
    assert ash.cc_to_mask(3.0 * BLOCK + 2.0, BLOCK) == pytest.approx(1.0)
    assert ash.cc_to_mask(1.0 - BLOCK, BLOCK) == pytest.approx(-1.0)
    assert ash.cc_to_mask(np.full(SHAPE, 0.5), BLOCK) == 0.0
    # The mask plus one outside pixel: phi = (n11 n00 - n10 n01) / sqrt(n1. n0. n.1 n.0) with
    # n11 = 36, n10 = 1, n01 = 0, n00 = 600 - 37: 36 * 563 / sqrt(37 * 563 * 36 * 564).
    values = BLOCK.astype(float)
    values[0, 0] = 1.0
    assert ash.cc_to_mask(values, BLOCK) == pytest.approx(36 * 563 / math.sqrt(37 * 563 * 36 * 564))


# ---------------------------------------------------------------- SaGIM C1 and C2

LABELS = np.zeros(SHAPE, np.uint8)
LABELS[2:6, 2:9] = 1
LABELS[10:16, 15:26] = 2
LABELS[14:18, 2:6] = 4


def _objects(values, background=0.05):
    """A map with the given mean (here: constant) value on each object of LABELS."""
    out = np.full(SHAPE, background)
    for object_id, value in values.items():
        out[LABELS == object_id] = value
    return out


BEFORE = _objects({1: 0.8, 2: 0.1, 4: 0.4})  # O_high = 1, O_low = 2


def test_object_saliency_is_the_mean_over_each_object():
    values = BEFORE.copy()
    values[2, 2] = 0.0  # one of object 1's 28 pixels
    means = ash.object_saliency(values, LABELS)
    assert list(means) == [1, 2, 4]
    assert means[1] == pytest.approx(0.8 * 27 / 28)
    assert means[2] == pytest.approx(0.1) and means[4] == pytest.approx(0.4)


@pytest.mark.parametrize("after, c1, c2", [
    ({1: 0.2, 2: 0.7, 4: 0.4}, True, True),      # the order of O_low and O_high flips
    ({1: 0.5, 2: 0.3, 4: 0.4}, False, True),     # both move the right way, no flip
    ({1: 0.01, 2: 0.05, 4: 0.4}, True, False),   # a flip, but O_low lost saliency
    ({1: 0.8, 2: 0.9, 4: 0.4}, True, False),     # O_high did not lose any (strict)
    ({1: 0.8, 2: 0.1, 4: 0.4}, False, False),    # unchanged
])
def test_sagim_c1_c2_known_answers(after, c1, c2):
    assert ash.sagim_c1(BEFORE, _objects(after), LABELS) is c1
    assert ash.sagim_c2(BEFORE, _objects(after), LABELS) is c2


def test_sagim_c1_compares_within_after_but_c2_compares_scales():
    after = _objects({1: 0.5, 2: 0.6, 4: 0.4})
    assert ash.sagim_c1(BEFORE, after, LABELS) and ash.sagim_c2(BEFORE, after, LABELS)
    assert ash.sagim_c1(10 * BEFORE, 0.01 * after, LABELS)
    assert not ash.sagim_c2(BEFORE, 0.01 * after, LABELS)


def test_sagim_ties_for_o_high_go_to_the_smaller_id():
    before = _objects({1: 0.8, 2: 0.1, 4: 0.8})  # O_high = 1 (not 4), O_low = 2
    after = _objects({1: 0.1, 2: 0.5, 4: 0.9})
    assert ash.sagim_c1(before, after, LABELS) and ash.sagim_c2(before, after, LABELS)


# ---------------------------------------------------------------- Gatys: p_obj and entropy

QUARTER = _block(slice(0, 6), slice(0, 10))  # 60 of the 600 pixels


def _density(mass_inside, mask=QUARTER):
    inside = mask.sum()
    return np.where(mask, mass_inside / inside, (1 - mass_inside) / (mask.size - inside))


def test_delta_p_object_known_answers():
    before, after = _density(0.25), _density(0.5)
    assert ash.fixation_probability(before, QUARTER) == pytest.approx(0.25)
    assert ash.delta_p_object(before, after, QUARTER) == pytest.approx((0.25, 1.0))
    assert ash.delta_p_object(after, before, QUARTER) == pytest.approx((-0.25, -0.5))
    # Densities are sum-normalised inside: scale does not matter.
    assert ash.fixation_probability(1e3 * before, QUARTER.astype(np.int64)) == pytest.approx(0.25)
    assert ash.delta_p_object(4 * before, 1e-2 * after, QUARTER) == pytest.approx((0.25, 1.0))


def test_delta_p_object_relative_is_nan_when_nothing_was_fixated_inside():
    absolute, relative = ash.delta_p_object(_density(0.0), _density(0.3), QUARTER)
    assert absolute == pytest.approx(0.3) and math.isnan(relative)


def test_fixation_entropy_known_answers():
    for k in (0, 4, 9):
        uniform = np.zeros((32, 32))
        uniform.flat[: 2**k] = 1.0
        assert ash.fixation_entropy(uniform) == pytest.approx(k, abs=1e-12)
        assert ash.fixation_entropy(17 * uniform) == pytest.approx(k, abs=1e-12)
    assert ash.fixation_entropy(np.ones(SHAPE)) == pytest.approx(math.log2(600))
    # p = (1/2, 1/4, 1/4): 1/2 * 1 + 2 * 1/4 * 2 = 1.5 bits.
    assert ash.fixation_entropy(np.array([[2.0, 1.0, 1.0, 0.0]])) == pytest.approx(1.5)


def test_entropy_change_in_bits():
    narrow, wide = np.zeros(SHAPE), np.zeros(SHAPE)
    narrow[:4, :4] = 1.0   # 16 pixels: 4 bits
    wide[:8, :8] = 3.0     # 64 pixels: 6 bits
    assert ash.entropy_change(narrow, wide) == pytest.approx(2.0)
    assert ash.entropy_change(wide, narrow) == pytest.approx(-2.0)
    assert ash.entropy_change(narrow, narrow) == 0.0


# ---------------------------------------------------------------- saliency KLD


def test_saliency_kld_is_kl_of_target_from_achieved():
    half = np.zeros(SHAPE)
    half[:, :15] = 1.0
    uniform = np.ones(SHAPE)
    assert ash.saliency_kld(uniform, 3 * uniform) == pytest.approx(0.0, abs=1e-12)
    # KL(target || achieved): target 1/300 on half the pixels, achieved 1/600 everywhere:
    # 300 * (1/300) * ln(2) = ln 2 nats. The other order sends mass where the target has none.
    assert ash.saliency_kld(half, uniform) == pytest.approx(math.log(2))
    assert ash.saliency_kld(uniform, half) > 10


# ---------------------------------------------------------------- bad input

MAP = np.ones(SHAPE)


def _calls(first=MAP, second=MAP, mask=BLOCK):
    """One call per function that takes (map, map, mask) or fewer, on the given arguments."""
    return {
        "saliency_increase": lambda: ash.saliency_increase(first, second, mask),
        "relative_saliency_increase": lambda: ash.relative_saliency_increase(first, second, mask),
        "weighted_fbeta": lambda: ash.weighted_fbeta(first, mask),
        "cc_to_mask": lambda: ash.cc_to_mask(first, mask),
        "fixation_probability": lambda: ash.fixation_probability(first, mask),
        "delta_p_object": lambda: ash.delta_p_object(first, second, mask),
    }


MASK_FUNCTIONS = list(_calls())


@pytest.mark.parametrize("name", MASK_FUNCTIONS)
def test_empty_mask_is_rejected(name):
    with pytest.raises(ValueError, match="the mask is empty: no pixel is inside"):
        _calls(mask=np.zeros(SHAPE, bool))[name]()


@pytest.mark.parametrize("name", MASK_FUNCTIONS)
@pytest.mark.parametrize("mask, message", [
    (BLOCK[:, :-1], r"mask has shape \(20, 29\); expected the maps' shape \(20, 30\)"),
    (np.where(BLOCK, 2, 0), "mask has values other than 0 and 1"),
    (np.where(BLOCK, np.nan, 0.0), "mask contains 36 NaN values"),
    (np.full(SHAPE, "a"), "mask has dtype"),
])
def test_bad_masks_are_rejected(name, mask, message):
    with pytest.raises(ValueError, match=message):
        _calls(mask=mask)[name]()


@pytest.mark.parametrize("name", MASK_FUNCTIONS)
def test_nan_and_negative_maps_are_rejected(name):
    with_nan, negative = MAP.copy(), MAP.copy()
    with_nan[3, 4] = np.nan
    negative[3, 4] = -0.5
    with pytest.raises(ValueError, match="contains 1 NaN values"):
        _calls(first=with_nan)[name]()
    with pytest.raises(ValueError, match=r"has negative values \(min -0.5\)"):
        _calls(first=negative)[name]()
    with pytest.raises(ValueError, match=r"has shape \(30,\)"):
        _calls(first=np.ones(30))[name]()


@pytest.mark.parametrize("call", [
    lambda b, a: ash.saliency_increase(b, a, BLOCK),
    lambda b, a: ash.delta_p_object(b, a, BLOCK),
    lambda b, a: ash.entropy_change(b, a),
    lambda b, a: ash.sagim_c1(b, a, LABELS),
    lambda b, a: ash.sagim_c2(b, a, LABELS),
])
def test_after_must_match_before(call):
    with pytest.raises(ValueError, match=r"after has shape \(10, 30\); expected before's shape \(20, 30\)"):
        call(MAP, MAP[:10])
    negative = MAP.copy()
    negative[0, 0] = -1.0
    with pytest.raises(ValueError, match="after has negative values"):
        call(MAP, negative)


def test_maps_without_mass_or_maximum_are_rejected():
    zeros = np.zeros(SHAPE)
    with pytest.raises(ValueError, match="before is all zeros"):
        ash.saliency_increase(zeros, MAP, BLOCK)
    with pytest.raises(ValueError, match="after is all zeros"):
        ash.relative_saliency_increase(MAP, zeros, BLOCK)
    with pytest.raises(ValueError, match="density is all zeros"):
        ash.fixation_probability(zeros, BLOCK)
    with pytest.raises(ValueError, match="after is all zeros"):
        ash.delta_p_object(MAP, zeros, BLOCK)
    with pytest.raises(ValueError, match="density is all zeros"):
        ash.fixation_entropy(zeros)
    with pytest.raises(ValueError, match="before is all zeros"):
        ash.entropy_change(zeros, MAP)


def test_saliency_kld_bad_input_names_its_arguments():
    with pytest.raises(ValueError, match="target is all zeros"):
        ash.saliency_kld(np.zeros(SHAPE), MAP)
    with pytest.raises(ValueError, match=r"achieved has shape \(20, 29\); expected target's shape"):
        ash.saliency_kld(MAP, MAP[:, 1:])
    with pytest.raises(ValueError, match="achieved has negative values"):
        ash.saliency_kld(MAP, -MAP)


@pytest.mark.parametrize("beta2", [0, -1.0, float("nan"), "1"])
def test_weighted_fbeta_rejects_bad_beta2(beta2):
    with pytest.raises(ValueError, match="beta2 must be a finite number > 0"):
        ash.weighted_fbeta(BLOCK, BLOCK, beta2=beta2)


@pytest.mark.parametrize("labels, message", [
    (LABELS[:, 1:], r"labels has shape \(20, 29\); expected the maps' shape \(20, 30\)"),
    (LABELS.astype(np.int64) - 1, r"labels has negative ids \(min -1\)"),
    (LABELS + 0.5, "labels has NaN, infinite or non-integer values"),
    (np.zeros(SHAPE, np.uint8), "labels has no object"),
    ((LABELS == 1).astype(np.uint8), r"labels has 1 object \(ids \[1\]\); SaGIM's C1 and C2 need at least 2"),
])
def test_bad_labels_are_rejected(labels, message):
    for function in (ash.sagim_c1, ash.sagim_c2):
        with pytest.raises(ValueError, match=message):
            function(BEFORE, BEFORE, labels)


def test_sagim_rejects_before_where_every_object_ties():
    flat = _objects({1: 0.3, 2: 0.3, 4: 0.3})
    for function in (ash.sagim_c1, ash.sagim_c2):
        with pytest.raises(ValueError, match="every object has the same mean saliency in before"):
            function(flat, BEFORE, LABELS)
    with pytest.raises(ValueError, match="labels has no object"):
        ash.object_saliency(MAP, np.zeros(SHAPE, int))


def test_sagim_equal_means_are_not_higher():
    # Objects of 28, 66 and 16 pixels at one value: their float means may differ in the last
    # bits, which must not count as a flip (C1) or a gain (C2).
    flat = _objects({1: 0.3, 2: 0.3, 4: 0.3}, background=0.3)
    assert not ash.sagim_c1(BEFORE, flat, LABELS)
    assert not ash.sagim_c2(BEFORE, _objects({1: 0.1, 2: 0.1, 4: 0.4}), LABELS)
