"""analysis.controls: the centre-bias and shuffle controls flag a predictor without image information."""
import numpy as np
import pytest

from analysis.controls import centre_bias, control_verdicts, with_controls
from analysis.fixations import fixation_map


def _items(pred_of):
    """6 images of 24x32 with fixations clustered at a different place in each."""
    rng = np.random.default_rng(0)
    items = []
    for i in range(6):
        centre = np.array([4 + 4.5 * i, 4 + 3 * (i % 3)])
        points = np.clip(centre + rng.normal(0, 1.5, (40, 2)), 0, [31.9, 23.9])
        gt = fixation_map(points, (24, 32), 2.0)
        items.append({"name": f"im{i}", "pred": pred_of(gt), "gt_map": gt, "fixations": points})
    return items


def test_centre_bias_is_a_centred_density():
    density = centre_bias((24, 32))
    assert density.sum() == pytest.approx(1.0) and np.unravel_index(density.argmax(), density.shape) in [(11, 15),
                                                                                                          (12, 16),
                                                                                                          (11, 16),
                                                                                                          (12, 15)]


def test_a_constant_predictor_is_flagged_by_the_shuffle():
    table = with_controls(_items(lambda gt: np.ones_like(gt) / gt.size), metrics=["cc", "nss"], rng=0)
    assert set(table["model"]) == {"predictor", "centre_bias", "shuffle"} and len(table) == 18
    verdicts = control_verdicts(table)
    assert len(verdicts) == 2 and all("no image-specific information" in line for line in verdicts)


def test_a_predictor_that_knows_each_image_beats_both_controls():
    table = with_controls(_items(lambda gt: gt), metrics=["cc", "kld"], rng=0)
    assert all(line.endswith("it beats both controls.") for line in control_verdicts(table))
    predictor = table[table["model"] == "predictor"]["cc"].mean()
    assert predictor > table[table["model"] == "shuffle"]["cc"].mean() + 0.5


def test_the_shuffle_needs_two_images():
    with pytest.raises(ValueError, match="at least 2 images, got 1"):
        with_controls(_items(lambda gt: gt)[:1])


def test_with_too_few_images_the_verdict_says_so_instead_of_judging():
    table = with_controls(_items(lambda gt: gt)[:4], metrics=["cc"], rng=0)
    (verdict,) = control_verdicts(table)
    assert "too few images (4) to tell" in verdict and "no image-specific" not in verdict
