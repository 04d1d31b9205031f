"""`analysis.report_figures`: the report's figures fit the page, keep labels large and share a colour scale per row."""
import struct

import numpy as np
import pytest

from gazelab.evaluation import evaluate, parse_methods
from analysis.report_figures import (DPI, FONT_PT, GRID_METHODS, PAGE_WIDTH_PX, box_plots, grid_figures, grid_plot,
                                     map_scale, scatter)
from analysis.report_tables import load_evaluation


@pytest.fixture
def evaluation(data, outputs, centre_bias, tmp_path):
    """Five methods (the grid needs two figures) scored with the centre bias as predictor: p0 and p3 are common."""
    sources = {"oracle": outputs["oracle"], "dim": outputs["dim"], "oracle_b": outputs["oracle"],
               "oracle_c": outputs["oracle"], "a_method_with_a_long_name": outputs["oracle"]}
    evaluate(data, parse_methods([f"{name}={folder}" for name, folder in sources.items()]), tmp_path / "eval",
             predictor=centre_bias, fid=False, progress=False)
    return load_evaluation(tmp_path / "eval")


def test_map_scale_runs_from_zero_to_the_largest_map_and_skips_missing_maps():
    assert map_scale([np.full((2, 2), 0.1), None, np.array([[0.0, 0.4]])]) == (0.0, pytest.approx(0.4))
    assert map_scale([None, np.zeros((2, 2))]) == (0.0, 1.0)  # nothing to scale: a valid norm all the same


def test_the_maps_of_one_grid_row_share_one_normalisation_and_a_colour_bar(evaluation):
    fig, colour_bars = grid_plot(evaluation, ["p0", "p3"], ["oracle", "dim"])
    assert colour_bars == 2
    for pair_id in ("p0", "p3"):
        images = [ax.images[0] for ax in fig.axes if ax.get_label().startswith(f"{pair_id} map") and ax.images]
        assert len(images) == 4  # X's, Y's (human), oracle's and dim's map
        limits = {image.get_clim() for image in images}
        assert len(limits) == 1  # one scale for the row ...
        low, high = limits.pop()
        # ... from 0 to the row's largest value (shown in units of 10^k per px)
        assert low == 0 and high == pytest.approx(max(float(np.max(image.get_array())) for image in images))
        assert 1 <= high < 10
        # Y's human map peaks on the object while the centre bias is flat: it sets the row's top
        assert np.max(images[1].get_array()) == pytest.approx(high)
        assert high > 2 * np.max(images[0].get_array())


def test_every_figure_fits_the_page_unscaled_with_labels_of_at_least_font_pt(evaluation):
    grids = grid_figures(evaluation)
    assert len(grids) == 2 and len(evaluation.edited_methods) == GRID_METHODS + 1
    assert [figure.colour_bars for figure in grids] == [2, 2]  # one per pair shown (p0, p3)
    assert "a_method_with_a_long_name" in grids[1].caption and "part 2 of 2" in grids[1].alt
    for figure in [*grids, box_plots(evaluation, None), scatter(evaluation, None, None)]:
        width, height = struct.unpack(">II", figure.png[16:24])  # the PNG's IHDR
        assert 300 < width <= PAGE_WIDTH_PX and height > 200
        assert figure.smallest_font_pt >= FONT_PT, figure.alt
        assert figure.caption and "test split" in figure.caption.replace("-split", " split")
    assert FONT_PT * DPI / 72 >= 12  # CSS px at the natural size, which the page never shrinks


def test_methods_at_one_place_of_the_scatter_share_one_label_instead_of_overprinting():
    from analysis.report_figures import _coincident

    groups = _coincident({"oracle": (0.5, 0.96), "oracle_b": (0.5001, 0.96), "dim": (0.5, 0.76), "far": (2.0, 0.9)})
    assert [names for names, _ in groups] == [["oracle", "oracle_b"], ["dim"], ["far"]]


def test_without_a_predictor_the_grid_shows_images_only_and_its_caption_says_why(data, outputs, tmp_path):
    evaluate(data, parse_methods([f"oracle={outputs['oracle']}"]), tmp_path / "eval", fid=False, progress=False)
    [figure] = grid_figures(load_evaluation(tmp_path / "eval"))
    assert figure.colour_bars == 0 and "no density maps" in figure.caption
    assert figure.smallest_font_pt >= FONT_PT and "p0, p1, p2, p3" in figure.caption
