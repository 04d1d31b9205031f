import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.targets import (
    global_scale, local_shift, sagim_reorder, sample_global_scale, sample_local_shift, select_gazeshift_mask,
)


def _density(seed=0, shape=(24, 32)):
    values = np.random.default_rng(seed).random(shape) + 0.05
    return values / values.sum()


def _labels(shape=(24, 32)):
    labels = np.zeros(shape, np.int64)
    labels[2:8, 2:10] = 1  # 48 px = 6.25 %
    labels[12:20, 14:26] = 2  # 96 px = 12.5 %
    labels[20:22, 2:4] = 3  # 4 px ≈ 0.5 %
    return labels


def _entropy(p):
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def _assert_density(p, shape=(24, 32)):
    assert p.shape == shape and p.dtype == np.float32
    assert p.min() >= 0 and p.sum(dtype=np.float64) == pytest.approx(1, abs=1e-5)


@pytest.mark.parametrize("sigma", [0.0, 2.0])
def test_local_shift_sign_raises_or_lowers_object_mass(sigma):
    density, mask = _density(), _labels() == 2
    before = density[mask].sum()
    up, down = local_shift(density, mask, 2.0, sigma), local_shift(density, mask, -2.0, sigma)
    _assert_density(up), _assert_density(down)
    assert up[mask].sum() > before + 0.2 and down[mask].sum() < before * 0.5
    assert local_shift(density, mask, 4.0, sigma)[mask].sum() > up[mask].sum()


def test_local_shift_zero_is_identity_and_matches_log_formula():
    density, mask = _density(1), _labels() == 1
    np.testing.assert_allclose(local_shift(density, mask, 0.0), density, rtol=1e-5)
    expected = np.exp(np.log(density) + 1.5 * mask)
    np.testing.assert_allclose(local_shift(density, mask, 1.5), expected / expected.sum(), rtol=1e-5)


def test_local_shift_keeps_zero_density_pixels_zero():
    density = np.zeros((4, 4))
    density[1:3, 1:3] = 0.25
    mask = np.zeros((4, 4), bool)
    mask[0, 0] = mask[1, 1] = True
    out = local_shift(density, mask, 3.0)
    assert out[0, 0] == 0 and out[1, 1] > 0.25


def test_sample_local_shift_draws_object_and_k_in_range():
    rng = np.random.default_rng(5)
    seen = set()
    for _ in range(30):
        target, info = sample_local_shift(rng, _density(), _labels())
        _assert_density(target)
        assert -4 <= info["k_sh"] <= 4 and info["mask_id"] in (1, 2, 3)
        seen.add(info["mask_id"])
        inside = _labels() == info["mask_id"]
        assert np.sign(target[inside].sum() - _density()[inside].sum()) == np.sign(info["k_sh"])
    assert seen == {1, 2, 3}


def test_global_scale_identity_sharpen_flatten():
    density = _density(2)
    np.testing.assert_allclose(global_scale(density, 1.0), density, rtol=1e-5)
    sharp, flat = global_scale(density, 2.0), global_scale(density, 0.5)
    _assert_density(sharp), _assert_density(flat)
    assert _entropy(sharp) < _entropy(density) < _entropy(flat)
    target, info = sample_global_scale(np.random.default_rng(0), density)
    assert 0.5 <= info["k_sc"] <= 2
    np.testing.assert_allclose(target, global_scale(density, info["k_sc"]), rtol=1e-6)


def test_sagim_reorder_swaps_most_and_least_salient():
    labels = _labels()
    density = np.full(labels.shape, 1.0)
    density[labels == 1] = 10.0  # most salient
    density[labels == 2] = 3.0
    density[labels == 3] = 0.5  # least salient
    density /= density.sum()
    result = sagim_reorder(density, labels)
    _assert_density(result.density)
    assert (result.most_salient_id, result.least_salient_id) == (1, 3)
    means = {i: result.density[labels == i].mean() for i in (1, 2, 3)}
    assert max(means, key=means.get) == 3 and min(means, key=means.get) == 1
    assert means[3] / means[1] == pytest.approx(10.0 / 0.5, rel=1e-4)  # exact swap of the means
    boosted = sagim_reorder(density, labels, rng=np.random.default_rng(0), extra_factor=(1.5, 2.0)).density
    assert boosted[labels == 3].mean() / boosted[labels == 1].mean() > 20 * 1.5 ** 2 * 0.999
    _assert_density(sagim_reorder(density, labels, blur_sigma_px=1.0).density)


def test_sagim_reorder_needs_two_objects():
    with pytest.raises(ValueError, match="1 object"):
        sagim_reorder(_density(), (_labels() == 1).astype(np.int64))


def test_select_gazeshift_mask_rules():
    labels = _labels()
    density = np.ones(labels.shape)
    density[labels == 2] = 20.0  # object 2 is the most salient: never chosen
    density /= density.sum()
    rng = np.random.default_rng(0)
    chosen = {int(labels[select_gazeshift_mask(density, labels, rng)].max()) for _ in range(20)}
    assert chosen == {1}  # 3 is too small (0.5 % < 1 %)
    assert select_gazeshift_mask(density, labels, rng, min_area=0.001) is not None
    assert select_gazeshift_mask(density, labels, rng, max_area=0.05) is None  # 1 is 6.25 %
    assert select_gazeshift_mask(density, (labels == 1).astype(int), rng) is None  # one object
    assert select_gazeshift_mask(density, np.zeros_like(labels), rng) is None
    mask = select_gazeshift_mask(density, labels, rng)
    assert mask.dtype == bool and mask.shape == labels.shape and mask.sum() == 48


def test_select_gazeshift_mask_none_when_objects_tie_for_most_salient():
    labels = _labels()
    uniform = np.full(labels.shape, 1.0 / labels.size)
    assert select_gazeshift_mask(uniform, labels, np.random.default_rng(0), min_area=0) is None


@pytest.mark.parametrize("call, match", [
    (lambda d, m: local_shift(d * 2, m, 1.0), "saliency_density sums to 2"),
    (lambda d, m: local_shift(-d, m, 1.0), "saliency_density has negative"),
    (lambda d, m: local_shift(d, m[:10], 1.0), "object_mask has shape"),
    (lambda d, m: local_shift(d, np.zeros_like(m), 1.0), "object_mask is empty"),
    (lambda d, m: local_shift(d, m, float("nan")), "k_sh must be finite"),
    (lambda d, m: global_scale(d, 0.0), "k_sc must be > 0"),
    (lambda d, m: global_scale(d[None], 1.0), "saliency_density has shape"),
    (lambda d, m: sagim_reorder(d, m.astype(float) + 0.5), "label_mask must hold integer"),
    (lambda d, m: select_gazeshift_mask(d, m[:, :5], np.random.default_rng(0)), "label_mask has shape"),
    (lambda d, m: select_gazeshift_mask(d, m, np.random.default_rng(0), min_area=0.6), "min_area"),
])
def test_bad_inputs_name_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call(_density(), _labels())


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**16), k=st.floats(-4, 4), sigma=st.floats(0, 3))
def test_local_shift_property(seed, k, sigma):
    density, mask = _density(seed, (8, 10)), np.zeros((8, 10), bool)
    mask[2:5, 3:7] = True
    out = local_shift(density, mask, k, sigma)
    _assert_density(out, (8, 10))
    change = out[mask].sum() - density[mask].sum()
    assert change > -1e-6 if k >= 0 else change < 1e-6


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**16), k=st.floats(0.5, 2))
def test_global_scale_property(seed, k):
    density = _density(seed, (8, 10))
    out = global_scale(density, k)
    _assert_density(out, (8, 10))
    assert np.argmax(out) == np.argmax(density)  # scaling keeps the order of pixels
    if k > 1.01:
        assert _entropy(out) < _entropy(density)
    elif k < 0.99:
        assert _entropy(out) > _entropy(density)
