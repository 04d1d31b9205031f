"""What FGTransform and SaGIM share as target-map editors: edit shapes and ranges, and refusing bad maps."""
import pytest
import torch

from support.target_map_editors import H, W, blob, fixed_batch, make_editor

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("name", ["fgtransform", "sagim"])
def test_edit_shapes_and_range_at_any_size(name):
    editor = make_editor(name)
    batch = fixed_batch()
    out = editor.edit(batch["image"], batch["target_map"])
    assert out.shape == (2, 3, H, W) and out.dtype == torch.float32
    assert float(out.min()) >= 0 and float(out.max()) <= 1
    odd = editor.edit(torch.rand(1, 3, 21, 27), blob(10, 13, (21, 27)))  # sizes the networks must pad and crop
    assert odd.shape == (1, 3, 21, 27)
    assert editor.guidance == "target_map" and editor.weights_info["random_backbone"] is True
    assert editor.weights_info["predictor"]["name"] == "tiny_test_predictor"


@pytest.mark.parametrize("name", ["fgtransform", "sagim"])
def test_bad_target_maps_raise(name):
    editor = make_editor(name)
    image, target = torch.rand(1, 3, H, W), blob(5, 5)
    with pytest.raises(ValueError, match="not a density"):
        editor.edit(image, 2 * target)
    with pytest.raises(ValueError, match=">= 0"):
        editor.edit(image, target - target.mean())
    with pytest.raises(ValueError, match=r"\(1, 1, 24, 30\).*\(1, 3, 24, 32\)"):
        editor.edit(image, blob(5, 5, (24, 30)))
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        editor.edit(image, target.expand(1, 3, H, W))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        editor.edit(image[:, :1], target)
    with pytest.raises(ValueError, match="not a density"):
        editor.train_step({"image": image, "target_map": 0.5 * target})
