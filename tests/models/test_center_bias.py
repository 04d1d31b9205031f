import numpy as np
import pytest

from analysis.fixations import fixation_map
from analysis.metrics import info_gain
from models.registry import PREDICTORS
from models.saliency.center_bias import CenterBias


def _maps(rng, centre, n=20, shape=(24, 32)):
    height, width = shape
    for _ in range(n):
        points = rng.normal([centre[0] * width, centre[1] * height], [3, 2], size=(30, 2))
        yield fixation_map(points, shape, 1.5)


def test_fit_recovers_the_centre_and_predicts_a_density_for_any_size():
    model = CenterBias.fit(_maps(np.random.default_rng(0), (0.3, 0.6)))
    assert model.mean == pytest.approx([0.3, 0.6], abs=0.03)
    for shape in ((24, 32), (48, 80)):
        density = model.predict(shape)
        assert density.shape == shape and density.sum() == pytest.approx(1.0, abs=1e-5)
        row, col = np.unravel_index(density.argmax(), shape)
        assert abs((col + 0.5) / shape[1] - 0.3) < 0.08 and abs((row + 0.5) / shape[0] - 0.6) < 0.08
    assert PREDICTORS.get("center_bias") is CenterBias


def test_centre_bias_is_a_useful_information_gain_baseline():
    rng = np.random.default_rng(1)
    model = CenterBias.fit(_maps(rng, (0.5, 0.5)))
    uniform = np.full((24, 32), 1 / (24 * 32))
    fixations = rng.normal([16, 12], [3, 2], size=(50, 2)).clip([0, 0], [31.9, 23.9])
    assert info_gain(model.predict((24, 32)), uniform, fixations) > 0.5


def test_save_load_round_trip_and_errors(tmp_path):
    model = CenterBias.fit(_maps(np.random.default_rng(2), (0.5, 0.4), n=5))
    loaded = CenterBias.load(model.save(tmp_path / "cb.json"))
    np.testing.assert_array_equal(loaded.predict((10, 12)), model.predict((10, 12)))
    (tmp_path / "other.json").write_text('{"format": "something else"}')
    with pytest.raises(ValueError, match="not a centre-bias fit"):
        CenterBias.load(tmp_path / "other.json")
    with pytest.raises(ValueError, match="empty"):
        CenterBias.fit([])
    with pytest.raises(ValueError, match=r"densities\[1\]"):
        CenterBias.fit([np.ones((4, 4)), -np.ones((4, 4))])
