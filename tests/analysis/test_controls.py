"""analysis.controls: the centre-bias and shuffle controls flag a predictor without image information."""
import numpy as np
import pytest

from analysis.controls import centre_bias, control_verdicts, shuffle_partners, with_controls
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


def test_shuffle_partners_are_never_from_the_same_scene_and_are_seeded():
    items = _items(lambda gt: gt)
    for item in items:  # three scenes of two images each, like the X and Y of three pairs
        item["scene"] = f"pair{int(item['name'][2:]) // 2}"
    scenes = {item["name"]: item["scene"] for item in items}
    for seed in range(20):
        table = with_controls(items, metrics=["cc"], rng=seed)
        shuffle = table[table["model"] == "shuffle"]
        assert all(scenes[name] != scenes[partner] for name, partner in zip(shuffle["name"], shuffle["partner"]))
        assert sorted(shuffle["partner"]) == sorted(scenes)  # a permutation: each image is a partner once
    again = with_controls(items, metrics=["cc"], rng=7)
    assert again["partner"].tolist() == with_controls(items, metrics=["cc"], rng=7)["partner"].tolist()
    partners = [shuffle_partners(["a", "a", "b", "b", "c", "c"], np.random.default_rng(s)) for s in range(30)]
    assert len({tuple(p) for p in partners}) > 5  # drawn, not one fixed rotation


def test_a_control_that_cannot_be_scored_is_not_beaten():
    items = _items(lambda gt: gt)
    for item in items[:4]:
        item["scene"] = "one"  # 4 of 6 images of one scene: no pairing across scenes exists
    table = with_controls(items, metrics=["cc"], rng=0)
    assert table.loc[table["model"] == "shuffle", "cc"].isna().all()
    assert shuffle_partners(["one"] * 4 + ["two", "three"], 0) is None
    (verdict,) = control_verdicts(table)
    assert "beats both" not in verdict and "not checked against the shuffle" in verdict
    assert "other scenes' maps not scored" in verdict


def test_the_verdict_names_the_control_that_was_not_beaten():
    rng = np.random.default_rng(1)
    items = _items(lambda gt: centre_bias(gt.shape) * 0.5 + rng.random(gt.shape) * 1e-6)  # a centre bias, near enough
    (verdict,) = control_verdicts(with_controls(items, metrics=["cc"], rng=0))
    assert "beats both" not in verdict and ("does not beat a centre bias" in verdict or "neither" in verdict)
