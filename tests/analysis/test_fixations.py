import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.ndimage import gaussian_filter

from analysis.fixations import fixation_map, fixation_points_from_csv, sigma_from_visual_angle
from datadir.maps import load_map, save_map, to_density


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.tuples(st.floats(0, 31.99), st.floats(0, 23.99)), min_size=1, max_size=30),
    st.floats(0.0, 6.0),
)
def test_fixation_map_is_a_density(points, sigma):
    density = fixation_map(np.array(points), (24, 32), sigma)
    assert density.dtype == np.float32 and density.shape == (24, 32)
    assert density.min() >= 0
    assert density.sum(dtype=np.float64) == pytest.approx(1.0, abs=1e-5)


def test_lone_point_peaks_at_its_pixel():
    density = fixation_map(np.array([[7.6, 3.2]]), (10, 12), 1.5)
    assert np.unravel_index(density.argmax(), density.shape) == (3, 7)


def test_centred_point_gives_a_symmetric_map():
    density = fixation_map(np.array([[5.5, 4.5]]), (9, 11), 2.0)
    np.testing.assert_allclose(density, density[::-1, :], atol=1e-9)
    np.testing.assert_allclose(density, density[:, ::-1], atol=1e-9)


def test_repeats_count_and_weights_scale():
    repeated = fixation_map(np.array([[1.0, 1.0], [1.0, 1.0], [8.0, 8.0]]), (10, 10), 0)
    weighted = fixation_map(np.array([[1.0, 1.0], [8.0, 8.0]]), (10, 10), 0, weights=[2, 1])
    assert repeated[1, 1] == pytest.approx(2 / 3)
    np.testing.assert_allclose(repeated, weighted)


def test_matches_scipy_zero_padded_gaussian():
    rng = np.random.default_rng(1)
    points = rng.uniform(0, [64, 48], size=(40, 2))
    counts = np.zeros((48, 64))
    np.add.at(counts, (points[:, 1].astype(int), points[:, 0].astype(int)), 1)
    reference = gaussian_filter(counts, 3.0, mode="constant")
    np.testing.assert_allclose(fixation_map(points, (48, 64), 3.0), reference / reference.sum(), atol=1e-6)


def test_points_outside_are_dropped():
    inside = fixation_map(np.array([[2.0, 2.0]]), (5, 5), 1.0)
    with_outside = fixation_map(np.array([[2.0, 2.0], [-1.0, 2.0], [5.0, 0.0], [0.0, 7.0]]), (5, 5), 1.0)
    np.testing.assert_allclose(inside, with_outside)


@pytest.mark.parametrize(
    "points, match",
    [
        (np.zeros((0, 2)), "points is empty"),
        (np.array([[np.nan, 1.0]]), "points contains 1 NaN"),
        (np.array([[1.0, 2.0, 3.0]]), r"points has shape \(1, 3\)"),
        (np.array([[-5.0, -5.0]]), "none of the 1 points"),
    ],
)
def test_fixation_map_bad_points(points, match):
    with pytest.raises(ValueError, match=match):
        fixation_map(points, (5, 5), 1.0)


def test_fixation_map_bad_sigma_and_shape():
    with pytest.raises(ValueError, match="sigma_px"):
        fixation_map(np.array([[1.0, 1.0]]), (5, 5), -1)
    with pytest.raises(ValueError, match="shape"):
        fixation_map(np.array([[1.0, 1.0]]), (0, 5), 1)


def test_sigma_from_visual_angle():
    assert sigma_from_visual_angle(1.0, 24.0) == 24.0
    with pytest.raises(ValueError, match="px_per_degree"):
        sigma_from_visual_angle(1.0, 0)


def test_to_density_and_bad_maps():
    np.testing.assert_allclose(to_density(np.array([[1.0, 3.0]])), [[0.25, 0.75]])
    for bad, match in [
        (np.zeros((2, 2)), "all zeros"),
        (np.array([[1.0, -1.0]]), "negative"),
        (np.array([[np.inf, 1.0]]), "NaN or infinite"),
        (np.ones(3), "2-D"),
    ]:
        with pytest.raises(ValueError, match=match):
            to_density(bad)


def test_save_and_load_round_trip(tmp_path):
    density = fixation_map(np.array([[3.0, 2.0], [9.0, 6.0]]), (8, 12), 1.0)
    npy = save_map(tmp_path / "m.npy", density)
    png = save_map(tmp_path / "m.png", density)
    np.testing.assert_allclose(load_map(npy), density, rtol=1e-6)
    as_png = load_map(png)
    assert as_png.max() == 255 and as_png.shape == (8, 12)
    np.testing.assert_allclose(as_png / 255, density / density.max(), atol=1 / 255)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.npy", "m.png"]


def test_save_and_load_errors(tmp_path):
    with pytest.raises(ValueError, match="suffix"):
        save_map(tmp_path / "m.jpg2", np.ones((2, 2)))
    (tmp_path / "junk.png").write_text("not an image")
    with pytest.raises(ValueError, match="not a readable image"):
        load_map(tmp_path / "junk.png")
    with pytest.raises(ValueError, match="does not exist"):
        load_map(tmp_path / "none.npy")


def test_fixation_points_from_csv(tmp_path):
    path = tmp_path / "fix.csv"
    path.write_text("image,x,y,participant,t_ms\na.png,1,2,p1,10\nb.png,3.5,4,p1,20\na.png,5,6,p2,30\n")
    points = fixation_points_from_csv(path)
    assert list(points) == ["a.png", "b.png"]
    np.testing.assert_array_equal(points["a.png"], [[1, 2], [5, 6]])
    (tmp_path / "bad.csv").write_text("image,x\na.png,1\n")
    with pytest.raises(ValueError, match=r"lacks columns \['y'\]"):
        fixation_points_from_csv(tmp_path / "bad.csv")
    (tmp_path / "nan.csv").write_text("image,x,y\na.png,1,2\na.png,oops,3\n")
    with pytest.raises(ValueError, match="line 3"):
        fixation_points_from_csv(tmp_path / "nan.csv")
