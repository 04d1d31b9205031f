"""`gazelab evaluate`'s LPIPS, diversity and FID against the reference libraries called directly on
the same 8-bit images: the values, not their presence (the networks are the test-only untrained
ones; the comparison is of the same network on the same pixels)."""
import itertools
import warnings

import cv2
import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")
lpips = pytest.importorskip("lpips")
fid_score = pytest.importorskip("pytorch_fid.fid_score")

from analysis import image_metrics as im  # noqa: E402
from analysis.attention_boxes import salggan_boxes  # noqa: E402
from analysis.eval_pairs import read_pairs  # noqa: E402
from gazelab.evaluation import evaluate, parse_methods  # noqa: E402

PAIRS = ["p0", "p1", "p2", "p3"]


@pytest.fixture(scope="module")
def reference_lpips():
    """The lpips package's own LPIPS v0.1 (alex, spatial), untrained trunk built as the metric
    module builds its test-only one (seeded with 0), linear layers from the wheel."""
    with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.manual_seed(0)
        model = lpips.LPIPS(net="alex", version="0.1", spatial=True, pnet_rand=True, verbose=False).eval()

    def distance_map(a, b):
        with torch.no_grad():
            return model(lpips.im2tensor(a).float(), lpips.im2tensor(b).float())[0, 0].double().numpy()

    return distance_map


@pytest.fixture
def sampler(tmp_path, data):
    """A folder method with 3 samples per input: Y with the edited object's colour shifted per sample."""
    folder = tmp_path / "sampler"
    (folder / "samples").mkdir(parents=True)
    for pair_id in PAIRS:
        y = cv2.imread(str(data / f"images/{pair_id}_y.png"))
        mask = cv2.imread(str(data / f"masks/{pair_id}_y.png"), cv2.IMREAD_UNCHANGED) == 1
        cv2.imwrite(str(folder / f"{pair_id}.png"), y)
        for k, shift in enumerate((0, 60, 120), start=1):
            sample = y.copy()
            sample[mask] = np.clip(sample[mask].astype(int) + shift, 0, 255).astype(np.uint8)
            cv2.imwrite(str(folder / f"samples/{pair_id}_{k}.png"), sample)
    return folder


def _rgb(path):
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def _box_mask(boxes, shape):
    mask = np.zeros(shape, bool)
    for x0, y0, x1, y1 in boxes:
        mask[y0:y1, x0:x1] = True
    return mask


def test_lpips_columns_equal_the_lpips_package_on_the_saved_images(data, sampler, tmp_path, reference_lpips):
    out = tmp_path / "eval"
    evaluate(data, parse_methods([f"sampler={sampler}"]), out, fid=False, progress=False, local_ds_region="edited-box",
             _random_weights_for_tests=True)
    table = pd.read_csv(out / "per_image.csv").set_index(["method", "pair_id"])
    pairs = {p.pair_id: p for p in read_pairs(data, "test")}
    for pair_id in PAIRS:
        x = _rgb(data / f"images/{pair_id}_x.png")
        output = _rgb(sampler / f"{pair_id}.png")
        expected = reference_lpips(output, x)
        row = table.loc[("sampler", pair_id)]
        assert row["lpips_x"] == pytest.approx(expected.mean(), rel=1e-5)
        assert row["lpips_x_fg"] == pytest.approx(expected[pairs[pair_id].region].mean(), rel=1e-5)
        assert row["lpips_x_bg"] == pytest.approx(expected[~pairs[pair_id].region].mean(), rel=1e-5)
        samples = [_rgb(sampler / f"samples/{pair_id}_{k}.png") for k in (1, 2, 3)]
        maps = [reference_lpips(a, b) for a, b in itertools.combinations(samples, 2)]
        assert row["lpips_diversity"] == pytest.approx(np.mean([m.mean() for m in maps]), rel=1e-5)
        rows, cols = np.nonzero(pairs[pair_id].region)
        box = _box_mask([(cols.min(), rows.min(), cols.max() + 1, rows.max() + 1)], x.shape[:2])
        assert row["lpips_local_diversity"] == pytest.approx(np.mean([m[box].mean() for m in maps]), rel=1e-5)
    assert table.loc[("input", "p0"), "lpips_x"] == 0


def test_local_ds_is_measured_in_salggans_attention_boxes_by_default(data, sampler, centre_bias, tmp_path,
                                                                       reference_lpips):
    out = tmp_path / "eval"
    record = evaluate(data, parse_methods([f"sampler={sampler}"]), out, predictor=centre_bias, fid=False,
                      progress=False, _random_weights_for_tests=True)
    assert record["local_ds_region"] == "attention-boxes"
    table = pd.read_csv(out / "per_image.csv").set_index(["method", "pair_id"])
    pairs = {p.pair_id: p for p in read_pairs(data, "test")}
    for pair_id in PAIRS:
        before = np.load(out / f"maps/input/{pair_id}.npy").astype(np.float64)
        boxes = salggan_boxes(before, pairs[pair_id].target)
        assert boxes, "the target map peaks elsewhere than the centre bias: B_a is not empty"
        inside = _box_mask(boxes, before.shape)
        samples = [_rgb(sampler / f"samples/{pair_id}_{k}.png") for k in (1, 2, 3)]
        expected = np.mean([reference_lpips(a, b)[inside].mean() for a, b in itertools.combinations(samples, 2)])
        assert table.loc[("sampler", pair_id), "lpips_local_diversity"] == pytest.approx(expected, rel=1e-5)
    from analysis.report import build_report

    page = build_report(out, tmp_path / "report").read_text()
    assert "Local DS: LPIPS between samples inside SalG-GAN&#x27;s attention boxes B_a" in page


def test_fid_features_through_evaluate_equal_pytorch_fids_own_pipeline(data, outputs, tmp_path, monkeypatch):
    """evaluate's FID statistics come from the same pool3 features as pytorch-fid's
    `get_activations` on the same PNG files (it reads them in [0, 1]); the distance is then
    `frechet_distance` of those features (checked by hand below)."""
    seen = []
    real = im.frechet_distance

    def recording(features_a, features_b):
        seen.append((features_a, features_b))
        return real(features_a[:, :3], features_b[:, :3])  # the 2048-d square root is not what is tested here

    monkeypatch.setattr(im, "frechet_distance", recording)
    out = tmp_path / "eval"
    evaluate(data, parse_methods([f"oracle={outputs['oracle']}"]), out, progress=False, _random_weights_for_tests=True)
    model = im._inception("cpu", None, random_weights=True)
    expected_x, expected_y = (fid_score.get_activations([str(data / f"images/{p}_{side}.png") for p in PAIRS], model,
                                                        batch_size=4, dims=2048, device="cpu", num_workers=0)
                              for side in "xy")
    (input_a, input_b), (oracle_a, oracle_b) = seen  # methods input, oracle; each against Y of the common pairs
    np.testing.assert_allclose(input_a, expected_x, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(input_b, expected_y, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(oracle_a, expected_y, rtol=1e-4, atol=1e-6)  # the oracle's outputs are the Y images
    fid = pd.read_csv(out / "set_metrics.csv").query("metric == 'fid'").set_index("method")
    assert fid.loc["oracle", "value"] == pytest.approx(0, abs=1e-6) and fid.loc["input", "value"] > 0


def test_frechet_distance_by_hand():
    rng = np.random.default_rng(3)
    a = rng.normal(0, 1, (60, 3)) @ np.array([[1.0, 0.3, 0], [0, 0.8, 0.2], [0, 0, 0.5]]) + [1, 2, 3]
    b = rng.normal(0, 1, (40, 3)) * [0.5, 1.5, 1.0] + [0, 2.5, 3]
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    values, vectors = np.linalg.eigh(s_a)
    root_a = vectors @ np.diag(np.sqrt(values)) @ vectors.T
    # Tr((S_a S_b)^½) = Tr((S_a^½ S_b S_a^½)^½): the sum of the square roots of a symmetric matrix's eigenvalues
    cross = np.sqrt(np.linalg.eigvalsh(root_a @ s_b @ root_a)).sum()
    by_hand = np.sum((mu_a - mu_b) ** 2) + np.trace(s_a) + np.trace(s_b) - 2 * cross
    assert im.frechet_distance(a, b) == pytest.approx(by_hand, rel=1e-9)
    assert im.frechet_distance(a, a) == pytest.approx(0, abs=1e-9)
    with pytest.raises(ValueError, match=r"shapes \(60, 3\) and \(40, 2\)"):
        im.frechet_distance(a, b[:, :2])
