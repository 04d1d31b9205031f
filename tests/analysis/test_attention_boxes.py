"""analysis.attention_boxes: SalG-GAN's B_a on arrays, the same boxes the editor trains with."""
import numpy as np
import pytest

from analysis.attention_boxes import attention_boxes, difference_map, salggan_boxes, saliency_adjustment
from analysis.fixations import fixation_map


def _maps():
    source = fixation_map(np.array([[10.0, 10.0], [12, 9]]), (48, 64), 3.0)
    target = fixation_map(np.array([[10.0, 10.0], [50, 40], [52, 38]]), (48, 64), 3.0)
    return source, target


def test_boxes_surround_where_attention_changes_and_nowhere_else():
    source, target = _maps()
    boxes = salggan_boxes(source, target)
    assert len(boxes) >= 1
    x0, y0, x1, y1 = boxes[0]
    assert x0 <= 50 < x1 and y0 <= 38 < y1  # the new fixation cluster
    assert salggan_boxes(source, source) == []  # no change, no box
    assert attention_boxes(np.zeros((8, 8))) == []


def test_saf_is_min_max_normalised_and_zero_for_a_constant_map():
    source, _ = _maps()
    adjusted = saliency_adjustment(source)
    assert adjusted.min() == 0 and adjusted.max() == pytest.approx(1)
    assert not saliency_adjustment(np.ones((4, 4))).any()
    with pytest.raises(ValueError, match="source has shape"):
        difference_map(source, source[:10])


def test_the_editor_draws_the_same_boxes():
    torch = pytest.importorskip("torch")
    from models.editors.salggan import SalGGAN, SalGGANConfig

    source, target = _maps()
    from analysis import attention_boxes as rule

    editor = SalGGAN.__new__(SalGGAN)  # attention() and boxes() read the config only
    editor.config = SalGGANConfig(image_size=(48, 64))
    c = editor.config
    assert (c.saf_alpha, c.saf_beta, c.attention_threshold, c.box_threshold, c.box_min_difference, c.box_link,
            c.box_margin, c.box_min_area, c.max_boxes) == (
        rule.SAF_ALPHA, rule.SAF_BETA, rule.ATTENTION_THRESHOLD, rule.BOX_THRESHOLD, rule.BOX_MIN_DIFFERENCE,
        rule.BOX_LINK, rule.BOX_MARGIN, rule.BOX_MIN_AREA, rule.MAX_BOXES)
    maps = editor.attention(torch.from_numpy(source)[None, None].float(), torch.from_numpy(target)[None, None].float())
    model_map, twin = maps.difference[0, 0].numpy(), difference_map(source, target)
    clear = np.abs(twin - c.attention_threshold) > 1e-4  # float32 against float64 right at the threshold
    np.testing.assert_allclose(model_map[clear], twin[clear], atol=1e-5)
    assert (twin == 0).mean() > 0.5  # exactly 0 where the maps agree
    assert editor.boxes(maps.difference)[0] == salggan_boxes(source, target)
