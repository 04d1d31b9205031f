"""What FGTransform and SaGIM share as target-map editors: edit shapes and ranges, refusing bad
maps, the target map changing the output, identical outputs after save
and load, exact resume, training with SalGAN, bf16 on CUDA."""
import pytest
import torch

from models.base import build_model, load_trained
from models.trainer import Trainer
from support.target_map_editors import H, W, TinyPredictor, blob, fixed_batch, make_editor

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


@pytest.mark.parametrize("name", ["fgtransform", "sagim"])
def test_target_map_changes_the_output_at_init_and_after_training(name):
    editor = make_editor(name)
    image = torch.rand(1, 3, H, W, generator=torch.Generator().manual_seed(3))

    def difference():
        return (editor.edit(image, blob(4, 5)) - editor.edit(image, blob(20, 27))).abs()

    at_init = difference()
    assert float(at_init.mean()) > 1e-2 and float(at_init.max()) > 0.1
    batch = fixed_batch()
    for _ in range(5):
        editor.train_step(batch)
    trained = difference()
    assert float(trained.mean()) > 1e-2 and float(trained.max()) > 0.1


@pytest.mark.parametrize("name", ["fgtransform", "sagim"])
def test_save_and_load_give_identical_outputs(name, scene_dataset, tmp_path):
    editor = make_editor(name)
    Trainer(editor, editor.make_dataset(scene_dataset.path), out_dir=tmp_path, max_steps=2, batch_size=2,
            device="cpu", progress=False).train()
    loaded = load_trained(tmp_path / "checkpoints/last.pt", kind="editor")
    assert type(loaded) is type(editor) and loaded.weights_info["random_backbone"] is True
    assert loaded.weights_info["predictor"]["name"] == "tiny_test_predictor"
    batch = fixed_batch()
    editor.eval()
    image, target = batch["image"], batch["target_map"]
    assert torch.equal(editor.edit(image, target), loaded.edit(image, target))


@pytest.mark.parametrize("name", ["fgtransform", "sagim"])
def test_resume_equals_an_uninterrupted_run(name, scene_dataset, tmp_path):
    def run(max_steps, out_dir, resume=False):
        editor = make_editor(name)
        Trainer(editor, editor.make_dataset(scene_dataset.path), out_dir=out_dir, max_steps=max_steps,
                batch_size=2, device="cpu", progress=False, resume=resume).train()
        return editor

    full = run(4, tmp_path / "full")
    run(2, tmp_path / "split")
    resumed = run(4, tmp_path / "split", resume=True)
    for (key, a), (_, b) in zip(full.state_dict().items(), resumed.state_dict().items()):
        assert torch.equal(a, b), key


@pytest.mark.parametrize("name", ["fgtransform", "sagim"])
def test_trains_with_the_tiny_salgan_predictor(name):
    torch.manual_seed(0)
    editor = build_model("editor", name, "tiny")
    predictor = build_model("predictor", "salgan", "tiny")
    editor.attach_predictor(predictor)
    frozen = {k: v.clone() for k, v in predictor.state_dict().items()}
    found = editor.train_step(fixed_batch())
    assert all(torch.isfinite(v) for v in found.values())
    assert all(torch.equal(frozen[k], v) for k, v in predictor.state_dict().items())
    assert editor.weights_info["predictor"]["name"] == "salgan"


@pytest.mark.gpu
@pytest.mark.parametrize("name", ["fgtransform", "sagim"])
def test_paper_preset_trains_under_bf16_on_cuda(name):
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    torch.manual_seed(0)
    editor = build_model("editor", name, "paper", {"backbone_weights": "random"})
    editor.attach_predictor(TinyPredictor())
    editor.cuda()
    height, width = editor.config.image_size
    image = torch.rand(2, 3, height, width, device="cuda")
    size = (height, width)
    target = torch.cat([blob(height // 4, width // 4, size), blob(3 * height // 4, 3 * width // 4, size)]).cuda()
    for _ in range(2):
        with torch.autocast("cuda", dtype=torch.bfloat16):
            found = editor.train_step({"image": image, "target_map": target})
        assert all(torch.isfinite(torch.as_tensor(v)).all() for v in found.values())
    out = editor.edit(image, target)
    assert out.shape == image.shape and float(out.min()) >= 0 and float(out.max()) <= 1
