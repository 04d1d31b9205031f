"""FGTransform (Gatys et al.) on the tiny preset with a random VGG and an in-test saliency predictor."""

import math

import pytest
import torch

from models.base import build_model
from models.arrays import collate
from models.data import targets_from_predictor
from models.editors.fgtransform import FGTransform, FGTransformConfig, chain_edit, edit_chain
from support import target_map_editors
from support.target_map_editors import H, W, blob, fixed_batch

pytestmark = pytest.mark.usefixtures("one_thread")


def make_editor(seed=0, **overrides) -> FGTransform:
    return target_map_editors.make_editor("fgtransform", seed, **overrides)


def test_paper_feature_stack_is_2560_channels_at_one_sixteenth():
    torch.manual_seed(0)
    editor = build_model("editor", "fgtransform", "paper", {"backbone_weights": "random"})
    assert editor.config.res_channels == 1024 and editor.config.n_res_blocks == 6
    features = editor.features(torch.rand(1, 3, 64, 64))
    assert features.shape == (1, 2560, 4, 4)
    net = editor.transformer
    assert net.res_blocks[0].body[0].in_channels == 2564 and len(net.res_blocks) == 6
    assert [stage[1].in_channels for stage in net.up_stages] == [1028, 516, 260, 132]
    assert [stage[1].out_channels for stage in net.up_stages] == [512, 256, 128, 64]
    assert net.to_image.in_channels == 68
    assert (editor.config.lambda_saliency, editor.config.lambda_feature, editor.config.lambda_texture,
            editor.config.lambda_adversarial, editor.config.lr) == (1.0, 1e-2, 2e-2, 1e-1, 1e-3)


def test_gradients_reach_every_trainable_parameter():
    editor = make_editor()
    batch = fixed_batch()
    found = editor.generator_losses(batch["image"], batch["target_map"])
    assert set(found) == {"loss", "saliency", "feature", "texture", "adversarial", "output"}
    found["loss"].backward()
    for name, parameter in editor.transformer.named_parameters():
        assert parameter.grad is not None and bool(parameter.grad.abs().sum() > 0), name
    assert all(p.grad is None for p in editor.vgg.parameters())  # frozen backbone
    assert all(p.grad is None for p in editor.predictor.parameters())  # frozen predictor
    editor.discriminator.zero_grad(set_to_none=True)
    editor.discriminator_loss(batch["image"], found["output"]).backward()
    for name, parameter in editor.discriminator.named_parameters():
        assert parameter.grad is not None and bool(parameter.grad.abs().sum() > 0), name


def test_overfitting_a_fixed_batch_lowers_the_loss():
    editor = make_editor()
    batch = fixed_batch()
    history = [editor.train_step(batch) for _ in range(30)]
    assert set(history[0]) == {"loss", "saliency", "feature", "texture", "adversarial", "discriminator"}
    first = float(history[0]["saliency"])
    last = sum(float(step["saliency"]) for step in history[-3:]) / 3
    assert last < 0.85 * first
    assert sum(float(step["loss"]) for step in history[-3:]) / 3 < 0.9 * float(history[0]["loss"])


@pytest.mark.parametrize("transform", ["local_shift", "global_scale"])
def test_make_dataset_items_with_targets_from_human_maps(scene_dataset, transform):
    editor = make_editor(transform=transform, target_source="human")
    data = editor.make_dataset(scene_dataset.path)
    assert len(data) == 12  # X and Y of 6 pairs
    torch.manual_seed(5)
    item = data[0]
    extra = {"k_sh", "mask_id"} if transform == "local_shift" else {"k_sc"}
    assert set(item) == {"image", "saliency_map", "target_map", "pair_id"} | extra
    assert item["image"].shape == (3, H, W) and item["target_map"].shape == (1, H, W)
    assert item["saliency_map"].shape == (1, H, W)
    assert abs(float(item["target_map"].sum()) - 1) < 1e-4 and float(item["target_map"].min()) >= 0
    assert not torch.allclose(item["target_map"], item["saliency_map"])
    if transform == "local_shift":
        assert -4 <= float(item["k_sh"]) <= 4 and int(item["mask_id"]) >= 1
    else:
        assert 0.5 <= float(item["k_sc"]) <= 2
    torch.manual_seed(5)
    assert torch.equal(data[0]["target_map"], item["target_map"])  # drawn from the global torch RNG
    batch = collate([data[i] for i in range(3)])
    assert batch["target_map"].shape == (3, 1, H, W)


@pytest.mark.parametrize("transform", ["local_shift", "global_scale"])
def test_targets_come_from_the_predictors_map_of_the_input_by_default(scene_dataset, transform):
    editor = make_editor(transform=transform)
    assert editor.config.target_source == "predictor"
    data = editor.make_dataset(scene_dataset.path)
    item = data[0]
    assert set(item) == {"image", "pair_id"} | ({"mask"} if transform == "local_shift" else set())
    batch = collate([data[i] for i in range(3)])
    torch.manual_seed(5)
    found = targets_from_predictor(editor.predictor, batch, editor.make_target)
    predicted = editor.predictor.density(batch["image"])
    assert torch.allclose(found["saliency_map"], predicted)
    assert found["target_map"].shape == (3, 1, H, W) and not torch.allclose(found["target_map"], predicted)
    assert torch.allclose(found["target_map"].flatten(1).sum(1), torch.ones(3), atol=1e-4)
    key, low, high = ("k_sh", -4, 4) if transform == "local_shift" else ("k_sc", 0.5, 2)
    assert found[key].shape == (3,) and bool(((found[key] >= low) & (found[key] <= high)).all())
    torch.manual_seed(5)
    assert torch.equal(targets_from_predictor(editor.predictor, batch, editor.make_target)["target_map"],
                       found["target_map"])
    losses = editor.train_step(batch)
    assert all(math.isfinite(float(v)) for v in losses.values())


def test_paper_run_length_is_150k_iterations():
    assert FGTransformConfig().max_steps == 150_000


def test_chain_edit_applies_every_instance_in_order():
    local, scale = make_editor(0, transform="local_shift"), make_editor(1, transform="global_scale")
    image = torch.rand(1, 3, H, W, generator=torch.Generator().manual_seed(4))
    shift_target, scale_target = blob(5, 6), blob(12, 16, sigma=8.0)
    chained = chain_edit([local, scale], image, [shift_target, scale_target])
    assert torch.equal(chained, scale.edit(local.edit(image, shift_target), scale_target))
    assert not torch.allclose(chained, local.edit(image, shift_target), atol=1e-3)
    assert not torch.allclose(chained, scale.edit(image, scale_target), atol=1e-3)
    same = edit_chain([local, scale], image, shift_target)  # one map for every stage
    assert torch.equal(same, scale.edit(local.edit(image, shift_target), shift_target))
    with pytest.raises(ValueError, match="2 target maps for 1 editors"):
        chain_edit([local], image, [shift_target, scale_target])
    with pytest.raises(ValueError, match="at least one editor"):
        chain_edit([], image, shift_target)
